package pipeline

import (
	"context"
	"time"
)

// Restart policy of a plugin process.
const (
	// restartMin is the first restart delay after a crash; it doubles up to restartMax.
	restartMin = 100 * time.Millisecond
	restartMax = 10 * time.Second
	// healthyReset: a process that ran this long before failing restarts after restartMin again,
	// so a stage that crashes once a day is not penalised for last week's crash loop.
	healthyReset = 30 * time.Second
	// watchTick is how often a supervisor checks its process; go-plugin reports an exit only
	// through a flag. A failed call wakes the supervisor at once instead.
	watchTick = 100 * time.Millisecond
	// pingEvery is how often a live process is health-checked over gRPC.
	pingEvery = 5 * time.Second
)

// supervise watches the instance's plugin process until ctx ends: it restarts a process that
// exited, was found hung (hangTimeouts timeouts in a row) or failed its health check. While the
// process is down the instance has no current process, so batches follow the stage's failure
// policy at once instead of waiting.
func (in *instance) supervise(ctx context.Context) {
	tick := time.NewTicker(watchTick)
	defer tick.Stop()
	backoff := restartMin
	lastPing := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-in.kick:
		}
		pr := in.cur.Load()
		if pr == nil {
			// Down: the previous restart failed for good, or the stage was installed down.
			in.restart(ctx, &backoff)
			continue
		}
		why := ""
		switch {
		case pr.exited():
			why = "exited"
		case pr.hung.Load():
			why = "hung"
		case time.Since(lastPing) >= pingEvery:
			lastPing = time.Now()
			if err := pr.healthy(ctx); err != nil {
				why = "failed its health check: " + err.Error()
			}
		}
		if why == "" {
			continue
		}
		// A concurrent swap may have replaced pr already; then the new process is not ours to judge.
		if !in.cur.CompareAndSwap(pr, nil) {
			continue
		}
		in.log.Warn("stage process "+why+"; restarting", "pid", pr.pid, "uptime", time.Since(pr.started).Round(time.Millisecond))
		pr.signalKill()
		// Reaping may wait on the process's pipes; it must not hold the restart up.
		in.p.workers.Add(1)
		go func() {
			defer in.p.workers.Done()
			pr.stop()
		}()
		if time.Since(pr.started) >= healthyReset {
			backoff = restartMin
		}
		in.restart(ctx, &backoff)
		lastPing = time.Now()
	}
}

// restart waits the backoff, then starts a process and installs it; it retries with a doubled
// backoff until one starts or ctx ends.
func (in *instance) restart(ctx context.Context, backoff *time.Duration) {
	for {
		t := time.NewTimer(*backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		*backoff = min(2**backoff, restartMax)
		if in.cur.Load() != nil {
			return // a swap installed a process while we waited
		}
		spec := in.currentSpec()
		pr, err := in.startProc(ctx, spec)
		if err != nil {
			in.log.Error("restarting stage process", "error", err, "next_attempt_in", *backoff)
			continue
		}
		if ctx.Err() != nil || !in.cur.CompareAndSwap(nil, pr) {
			// Retired meanwhile, or a swap installed a process: ours is not needed.
			pr.stop()
			return
		}
		in.restarts.Add(1)
		in.p.metrics.restart(in)
		in.log.Info("stage process restarted", "pid", pr.pid, "restarts", in.restarts.Load())
		return
	}
}
