package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// workerEvent is a report, or the end of a worker's stdout.
type workerEvent struct {
	worker int
	rep    Report
	eof    bool
}

// collector gathers the workers' reports through one channel, keeping every report by type so a
// report that arrives before the parent waits for it (a result right after ready, on an early stop)
// is not lost.
type collector struct {
	r    *runner
	hs   []*workerHandle
	ev   chan workerEvent
	got  map[string]map[int]Report
	gone map[int]bool
}

func newCollector(r *runner, hs []*workerHandle) *collector {
	c := &collector{r: r, hs: hs, ev: make(chan workerEvent, 64), got: map[string]map[int]Report{}, gone: map[int]bool{}}
	var wg sync.WaitGroup
	for _, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rep := range h.reports {
				c.ev <- workerEvent{worker: h.id, rep: rep}
			}
			c.ev <- workerEvent{worker: h.id, eof: true}
		}()
	}
	go func() { wg.Wait(); close(c.ev) }()
	return c
}

// discard reads what is left, so no worker blocks writing to a parent that stopped listening.
func (c *collector) discard() {
	go func() {
		for range c.ev {
		}
	}()
}

// wait returns once every worker sent a report of type want, feeding ticks to the progress line.
// When ctx ends it tells every worker to stop (once) and keeps collecting: an interrupted run still
// reports what it measured. stopWhen, polled, decides when the parent ends the drain.
func (c *collector) wait(ctx context.Context, want string, until time.Time, stopWhen func() bool) (map[int]Report, error) {
	timer := time.NewTimer(time.Until(until))
	defer timer.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	done := ctx.Done()
	for len(c.got[want]) < len(c.hs) {
		for w := range c.gone {
			if _, ok := c.got[want][w]; !ok {
				return nil, fmt.Errorf("worker %d ended without a %s report%s", w, want, c.hs[w].tail.suffix())
			}
		}
		select {
		case e, ok := <-c.ev:
			switch {
			case !ok:
				return nil, fmt.Errorf("every worker ended; %d sent no %s report", len(c.hs)-len(c.got[want]), want)
			case e.eof:
				c.gone[e.worker] = true
			case e.rep.Type == repError:
				return nil, fmt.Errorf("worker %d: %s%s", e.worker, e.rep.Error, c.hs[e.worker].tail.suffix())
			case e.rep.Type == repTick:
				c.r.prog.tick(e.rep)
			default:
				if c.got[e.rep.Type] == nil {
					c.got[e.rep.Type] = map[int]Report{}
				}
				c.got[e.rep.Type][e.worker] = e.rep
			}
		case <-done:
			stopAll(c.hs)
			done = nil
		case <-poll.C:
			if stopWhen != nil && stopWhen() {
				stopAll(c.hs)
				stopWhen = nil
			}
		case <-timer.C:
			return nil, fmt.Errorf("%d of %d workers sent no %s report in time", len(c.hs)-len(c.got[want]), len(c.hs), want)
		}
	}
	return c.got[want], nil
}

func stopAll(hs []*workerHandle) {
	for _, h := range hs {
		_ = h.send("stop")
	}
}
