package demo

import (
	"slices"
	"sync"
)

// rooms remembers which rooms each device joined, so that the Sessions callback can answer at its
// next login: Plato forgets a connection's sessions when it closes, the business remembers them. In
// memory: a demo restart forgets them too.
type rooms struct {
	mu       sync.Mutex
	byDevice map[device]map[string]struct{}
}

type device struct{ app, did string }

func newRooms() *rooms { return &rooms{byDevice: map[device]map[string]struct{}{}} }

// join records did in room; added is false when it already was. A device in MaxRooms rooms is refused.
func (r *rooms) join(app, did, room string) (added bool, ref *refusal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := device{app, did}
	set := r.byDevice[d]
	if _, ok := set[room]; ok {
		return false, nil
	}
	if len(set) >= MaxRooms {
		return false, &refusal{CodeTooManyRooms, "you are in too many rooms: leave one first"}
	}
	if set == nil {
		set = map[string]struct{}{}
		r.byDevice[d] = set
	}
	set[room] = struct{}{}
	return true, nil
}

// leave forgets did in room; removed is false when it was not there.
func (r *rooms) leave(app, did, room string) (removed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := device{app, did}
	set := r.byDevice[d]
	if _, ok := set[room]; !ok {
		return false
	}
	delete(set, room)
	if len(set) == 0 {
		delete(r.byDevice, d)
	}
	return true
}

func (r *rooms) has(app, did, room string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.byDevice[device{app, did}][room]
	return ok
}

// of returns did's rooms, sorted.
func (r *rooms) of(app, did string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.byDevice[device{app, did}]
	out := make([]string, 0, len(set))
	for room := range set {
		out = append(out, room)
	}
	slices.Sort(out)
	return out
}
