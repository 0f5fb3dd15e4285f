package pipeline

import "sync"

// scope is what a stage keeps in the host: its Host.Put state and its Host.SetTimer timers. It
// belongs to the pair (pipeline, stage name), not to a process or an instance, so it survives the
// stage's process restarting, a binary swap, and a reload that keeps the stage's name; a reload
// that removes the name drops it.
type scope struct {
	pipeline string
	name     string
	kv       *kvStore
	timers   *timerSet
}

type scopeKey struct{ pipeline, name string }

// scopes is the registry of every live scope.
type scopes struct {
	mu sync.Mutex
	m  map[scopeKey]*scope
}

func newScopes() *scopes { return &scopes{m: map[scopeKey]*scope{}} }

// get returns the scope of (pipeline, name), creating it with the given limits.
func (s *scopes) get(pipeline, name string, stateLimit int64, timerLimit int) *scope {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := scopeKey{pipeline, name}
	if sc := s.m[k]; sc != nil {
		return sc
	}
	sc := &scope{pipeline: pipeline, name: name, kv: newKVStore(stateLimit), timers: newTimerSet(timerLimit)}
	s.m[k] = sc
	return sc
}

// prune drops the scopes of pipeline whose stage name keep does not hold: their timers are
// cancelled and their state forgotten.
func (s *scopes) prune(pipeline string, keep map[string]bool) {
	s.mu.Lock()
	var gone []*scope
	for k, sc := range s.m {
		if k.pipeline == pipeline && !keep[k.name] {
			gone = append(gone, sc)
			delete(s.m, k)
		}
	}
	s.mu.Unlock()
	for _, sc := range gone {
		sc.drop()
	}
}

// all lists the live scopes.
func (s *scopes) all() []*scope {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*scope, 0, len(s.m))
	for _, sc := range s.m {
		out = append(out, sc)
	}
	return out
}

// clear drops every scope (Close).
func (s *scopes) clear() {
	s.mu.Lock()
	gone := s.m
	s.m = map[scopeKey]*scope{}
	s.mu.Unlock()
	for _, sc := range gone {
		sc.drop()
	}
}

func (sc *scope) drop() {
	sc.timers.stopAll()
	sc.kv.clear()
}
