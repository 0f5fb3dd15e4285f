package pipeline

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/platoim/plato/internal/timewheel"
)

// ErrTooManyTimers is returned by a stage's Host.SetTimer when the stage already has
// Config.TimerLimit timers pending.
var ErrTooManyTimers = errors.New("pipeline: stage timer limit reached")

// timerSet is one stage's pending Host.SetTimer timers, keyed by (app, key). The timers live on
// the host's timing wheel: a pending timer is a 48-byte wheel node, not a runtime timer.
type timerSet struct {
	mu    sync.Mutex
	m     map[kvKey]*timerEntry
	limit int
	dead  bool // the stage's scope was dropped: no more timers
}

type timerEntry struct {
	t    *timewheel.Timer
	data []byte
}

func newTimerSet(limit int) *timerSet { return &timerSet{m: map[kvKey]*timerEntry{}, limit: limit} }

// set arms (or re-arms) the timer of (app, key) to fire after d with data.
func (p *Pipelines) setTimer(sc *scope, app, key string, d time.Duration, data []byte) error {
	ts := sc.timers
	k := kvKey{app, key}
	e := &timerEntry{data: append([]byte(nil), data...)}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.dead {
		return fmt.Errorf("setting timer %q: %w", key, ErrClosed)
	}
	old := ts.m[k]
	if old == nil && len(ts.m) >= ts.limit {
		return fmt.Errorf("setting timer %q: %w (%d)", key, ErrTooManyTimers, ts.limit)
	}
	if old != nil {
		old.t.Stop()
	}
	ts.m[k] = e
	// Armed under ts.mu: the callback takes ts.mu first, so it always sees e in the map.
	e.t = p.wheel.AfterFunc(d, func() { p.fireTimer(sc, k, e) })
	return nil
}

func (p *Pipelines) cancelTimer(sc *scope, app, key string) {
	ts := sc.timers
	k := kvKey{app, key}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if e := ts.m[k]; e != nil {
		e.t.Stop()
		delete(ts.m, k)
	}
}

// fireTimer runs on the wheel goroutine, so it must not block: it queues the timer signal on a
// lane. A full lane does not lose the timer: it is tried again one tick later.
func (p *Pipelines) fireTimer(sc *scope, k kvKey, e *timerEntry) {
	ts := sc.timers
	ts.mu.Lock()
	if ts.m[k] != e { // replaced or cancelled after this firing was committed
		ts.mu.Unlock()
		return
	}
	delete(ts.m, k)
	ts.mu.Unlock()
	err := p.enqueueTimer(sc, k.app, k.key, e.data)
	if !errors.Is(err, ErrBackpressure) {
		return // queued, or the host is closing
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.dead || ts.m[k] != nil { // gone, or the stage set the key again meanwhile
		return
	}
	ts.m[k] = e
	e.t = p.wheel.AfterFunc(p.cfg.TimerTick, func() { p.fireTimer(sc, k, e) })
}

func (ts *timerSet) stopAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.dead = true
	for k, e := range ts.m {
		e.t.Stop()
		delete(ts.m, k)
	}
}
