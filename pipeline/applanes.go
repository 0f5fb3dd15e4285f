package pipeline

import (
	"context"
	"errors"
	"sync"

	"github.com/platoim/plato/internal/batch"
)

// appLanes gives every app lanes of its own, made at its first signal: one app's slow or stuck
// stage, or its flood, fills and blocks its own lanes and never another app's (docs/pipeline.md,
// isolation). The apps are the declared ones (the state server only runs signals of connections
// and pushes of declared apps), so their number is the configuration's.
type appLanes struct {
	newLanes func() *batch.Batcher[item]

	mu     sync.RWMutex
	byApp  map[string]*batch.Batcher[item]
	closed bool
}

// of returns app's lanes, or nil after close.
func (a *appLanes) of(app string) *batch.Batcher[item] {
	a.mu.RLock()
	b, closed := a.byApp[app], a.closed
	a.mu.RUnlock()
	if b != nil || closed {
		return b
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	if b = a.byApp[app]; b == nil {
		if a.byApp == nil {
			a.byApp = map[string]*batch.Batcher[item]{}
		}
		b = a.newLanes()
		a.byApp[app] = b
	}
	return b
}

// add queues it on its app's lane for key, from the lane's reserve when reserved.
func (a *appLanes) add(app string, key uint64, it item, reserved bool) error {
	b := a.of(app)
	if b == nil {
		return batch.ErrClosed
	}
	if reserved {
		return b.AddReserved(key, it)
	}
	return b.Add(key, it)
}

// fill is the fullest lane of any app (batch.Batcher.Fill).
func (a *appLanes) fill() float64 {
	a.mu.RLock()
	defer a.mu.RUnlock()
	most := 0.0
	for _, b := range a.byApp {
		most = max(most, b.Fill())
	}
	return most
}

// close lets every app's lanes finish what is queued, as batch.Batcher.Close does.
func (a *appLanes) close(ctx context.Context) error {
	a.mu.Lock()
	a.closed = true
	all := a.byApp
	a.mu.Unlock()
	var errs []error
	for _, b := range all {
		if err := b.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
