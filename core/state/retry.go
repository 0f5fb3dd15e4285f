package state

import (
	"context"
	"sync"
	"time"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// Retries of events (CONNECTED, DISCONNECTED, RESUMED, UNDELIVERED) whose Deliver call failed.
// Uplinks are never retried here: their device got 1301/1302 and sends them again. The first
// retry comes retryBase after the failure, each next one twice as late up to retryMaxDelay, and
// an event is given up after retryAttempts retries (about 90 s in all), so a business server
// that is down for a deploy loses nothing, and one that is gone for good costs bounded memory.
const (
	retryBase     = 500 * time.Millisecond
	retryMaxDelay = 30 * time.Second
	retryAttempts = 8
	// retryQueueMax bounds the events one app may have waiting for a retry; beyond it new
	// failures are given up at once (and counted), never blocking anything.
	retryQueueMax = 10000
	// retryBatchMax is the most events one retry call carries.
	retryBatchMax = 128
)

type retryItem struct {
	ev      *api.Event
	attempt int // retries made so far
	due     time.Time
}

// eventRetry is one app's queue of events to deliver again. It runs a goroutine only while it
// holds events, apart from the app's batcher, so retries never hold up uplinks, and another
// app's retries are another queue.
type eventRetry struct {
	s *Server
	l *businessLink
	// The schedule and bounds: the constants above (tests shrink them).
	base, maxDelay     time.Duration
	attempts, queueMax int
	mu                 sync.Mutex
	q                  []retryItem
	running            bool
	closed             bool
	quit               chan struct{}
}

func newEventRetry(s *Server, l *businessLink) *eventRetry {
	return &eventRetry{s: s, l: l, quit: make(chan struct{}),
		base: retryBase, maxDelay: retryMaxDelay, attempts: retryAttempts, queueMax: retryQueueMax}
}

func (r *eventRetry) delay(attempt int) time.Duration {
	return min(r.base<<min(attempt, 16), r.maxDelay)
}

// add queues events that failed their first delivery.
func (r *eventRetry) add(evs []*api.Event) {
	if len(evs) == 0 {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	dropped := 0
	for _, ev := range evs {
		if r.closed || len(r.q) >= r.queueMax {
			dropped++
			continue
		}
		r.q = append(r.q, retryItem{ev: ev, due: now.Add(r.delay(0))})
	}
	if dropped > 0 {
		r.s.metrics.businessGaveUp.Add(int64(dropped))
		r.s.log.Warn("business events given up: the retry queue is full", "addr", r.l.addr, "events", dropped)
	}
	if !r.running && len(r.q) > 0 {
		r.running = true
		go r.run()
	}
}

func (r *eventRetry) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	close(r.quit)
	if n := len(r.q); n > 0 {
		r.s.metrics.businessGaveUp.Add(int64(n))
		r.s.log.Warn("business events given up: stopping with retries pending", "addr", r.l.addr, "events", n)
		r.q = nil
	}
}

// run sends the due events in batches until the queue is empty.
func (r *eventRetry) run() {
	defer func() {
		if v := recover(); v != nil {
			r.s.log.Error("business event retry panicked", "addr", r.l.addr, "panic", v)
			r.mu.Lock()
			r.running = false
			r.mu.Unlock()
		}
	}()
	for {
		r.mu.Lock()
		if r.closed || len(r.q) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		next := r.q[0].due
		for _, it := range r.q[1:] {
			if it.due.Before(next) {
				next = it.due
			}
		}
		r.mu.Unlock()
		if wait := time.Until(next); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-r.quit:
				t.Stop()
				continue
			case <-t.C:
			}
		}
		r.mu.Lock()
		now := time.Now()
		var batch []retryItem
		keep := r.q[:0]
		for _, it := range r.q {
			if len(batch) < retryBatchMax && !it.due.After(now) {
				batch = append(batch, it)
			} else {
				keep = append(keep, it)
			}
		}
		clear(r.q[len(keep):])
		r.q = keep
		r.mu.Unlock()
		if len(batch) > 0 {
			r.send(batch)
		}
	}
}

func (r *eventRetry) send(batch []retryItem) {
	events := make([]*api.Event, len(batch))
	for i, it := range batch {
		events[i] = it.ev
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-r.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	_, err := r.l.cli.Deliver(ctx, &api.DeliverRequest{Events: events})
	cancel()
	if err == nil {
		r.s.log.Debug("business events delivered on a retry", "addr", r.l.addr, "events", len(batch))
		return
	}
	r.s.metrics.rpcError(peerBusiness, err)
	now := time.Now()
	gaveUp := 0
	r.mu.Lock()
	for _, it := range batch {
		it.attempt++
		if it.attempt >= r.attempts || r.closed {
			gaveUp++
			continue
		}
		it.due = now.Add(r.delay(it.attempt))
		r.q = append(r.q, it)
	}
	r.mu.Unlock()
	if gaveUp > 0 {
		r.s.metrics.businessGaveUp.Add(int64(gaveUp))
		r.s.log.Warn("business events given up after their last retry", "addr", r.l.addr, "events", gaveUp, "err", err)
	} else {
		r.s.log.Debug("business event retry failed", "addr", r.l.addr, "events", len(batch), "err", err)
	}
}
