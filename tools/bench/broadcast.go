package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// The broadcast scenario binds every device to one session through Plato's RPC, then pushes one
// at-most-once message to that session per round: the app's pipeline (qosroute) picks the path,
// a NATS broadcast for sessions of at least broadcast_min_members. The baseline's echo server has
// no sessions: it fans one frame out to the dids of each push connection.

// roundOutcome is what the push of one round returned.
type roundOutcome struct {
	expected uint64 // targets the server sent it to
	refused  uint64
}

// startBroadcast pushes rounds from the parent while the workers run, and returns stopWhen, which
// reports when every round has been received (or the drain ran out), and wait, which returns once
// the pushes are over.
func (r *runner) startBroadcast(ctx context.Context, tg target, start time.Time, out *targetResult) (stopWhen func() bool, wait func(), err error) {
	o := r.opts
	if !tg.echoPush {
		return r.startSessionBroadcast(ctx, tg, start, out)
	}
	// The baseline's echo servers have no sessions: one frame fanned out to the dids of each push.
	p, err := newEchoPusher(tg.endpoints, o.AppID, -1)
	chunk := maxEchoPush
	if err != nil {
		return nil, nil, err
	}
	runID := r.runID + "-" + tg.name
	targets := make([]pushTarget, o.Devices)
	for i := range targets {
		targets[i] = pushTarget{idx: i, did: didOf(runID, i)}
	}
	n := maxRounds(o.Duration, o.Interval)
	out.rounds = make([]roundOutcome, n+1)
	per := (o.Devices + len(tg.endpoints) - 1) / len(tg.endpoints)
	out.calls = len(tg.endpoints) * ((per + chunk - 1) / chunk)
	stopWhen, pushed := r.driveRounds(ctx, start, n, out, func(k int, record func(func())) {
		st := p.push(ctx, targets, newPayload(kindBroadcast, broadcastIdx, uint64(k)))
		record(func() {
			for _, s := range st {
				if s == "" {
					out.rounds[k].expected++
				} else {
					out.rounds[k].refused++
					out.pushCodes = mergeCounts(out.pushCodes, map[string]int{s: 1})
				}
			}
		})
	})
	return stopWhen, func() { pushed(); p.close() }, nil
}

// driveRounds calls push for rounds 1..n, one every interval from start, each in its own goroutine
// (a slow round must not delay the next). push reports its outcome through record, which
// serialises the updates of out. stopWhen reports when every round has been received, or the drain
// ran out after the last push; wait returns once the pushes are over.
func (r *runner) driveRounds(ctx context.Context, start time.Time, n int, out *targetResult, push func(k int, record func(func()))) (stopWhen func() bool, wait func()) {
	o := r.opts
	var mu sync.Mutex
	record := func(f func()) {
		mu.Lock()
		defer mu.Unlock()
		f()
	}
	var finished atomic.Bool
	var finishedAt time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for k := 1; k <= n; k++ {
			at := start.Add(time.Duration(k-1) * o.Interval)
			if !at.Before(start.Add(o.Duration)) {
				break
			}
			select {
			case <-time.After(time.Until(at)):
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				push(k, record)
			}()
		}
		wg.Wait()
		mu.Lock()
		finishedAt = time.Now()
		mu.Unlock()
		finished.Store(true)
	}()
	stopWhen = func() bool {
		// Workers take "stop" during the measured phase as an interruption: never before its end.
		if !finished.Load() || time.Since(start) < o.Duration {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if time.Since(finishedAt) > o.Drain {
			return true
		}
		var want uint64
		for _, ro := range out.rounds {
			want += ro.expected
		}
		return r.prog.doneTotal() >= want
	}
	return stopWhen, func() { <-done }
}
