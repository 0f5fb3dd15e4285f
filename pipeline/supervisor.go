package pipeline

import (
	"context"
	"time"
)

const (
	// watchTick is how often a supervisor looks at its process: for a health check due, a hung
	// flag, the breaker to close, and an exit the kernel could not report (watchExit).
	watchTick = 100 * time.Millisecond
	// pingEvery is how often a live process is health-checked over gRPC.
	pingEvery = 5 * time.Second
)

// supervise watches the instance's plugin process until ctx ends. It relaunches a process that
// exited (woken by watchExit at once), was found hung (hangTimeouts timeouts in a row) or failed
// its health check, and keeps the crash-loop breaker (breaker.go). While the stage has no process,
// batches get its failure policy at once instead of waiting (callStep).
func (in *instance) supervise(ctx context.Context) {
	tick := time.NewTicker(watchTick)
	defer tick.Stop()
	lastPing := time.Now()
	for {
		var gone <-chan struct{}
		if pr := in.cur.Load(); pr != nil {
			gone = pr.gone
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-in.kick:
		case <-gone:
		}
		pr := in.cur.Load()
		if pr == nil {
			// Down: only a relaunch cut short by ctx leaves it so, but never stay down.
			in.relaunch(ctx, time.Now())
			lastPing = time.Now()
			continue
		}
		now := time.Now()
		reason, detail := numCrashReasons, ""
		switch {
		case pr.exited():
			reason = crashExited
		case pr.hung.Load():
			reason, detail = crashHung, "its calls timed out 3 times in a row with no answer"
		case pr.fault() != nil:
			// It wrote something no plugin of the SDK writes: the host has cut its data socket off
			// already, and a process that does that cannot be trusted with the next batch.
			reason, detail = crashUnhealthy, pr.fault().Error()
		case now.Sub(lastPing) >= pingEvery:
			lastPing = now
			if err := pr.healthy(ctx); err != nil {
				reason, detail = crashUnhealthy, err.Error()
			}
		}
		if reason == numCrashReasons {
			if closed, openFor := in.breaker.up(now, pr.started); closed {
				in.log.Info("pipeline stage recovered: its plugin stayed up, the crash-loop breaker is closed",
					"pid", pr.pid, "up_for", now.Sub(pr.started).Round(time.Millisecond), "was_open_for", openFor.Round(time.Millisecond))
			}
			continue
		}
		// A concurrent swap may have replaced pr already; then the new process is not ours to judge.
		if !in.cur.CompareAndSwap(pr, nil) {
			continue
		}
		in.crashed(pr, reason, detail, now)
		in.relaunch(ctx, now)
		lastPing = time.Now()
	}
}

// crashed records the crash of pr, which the supervisor just took out of service: the breaker, the
// metric, and, once the process is reaped and its stderr read to the end, the log line.
func (in *instance) crashed(pr *proc, r crashReason, detail string, now time.Time) {
	recent, opened := in.breaker.crash(now, r)
	in.p.metrics.crash(in, r)
	uptime := now.Sub(pr.started)
	pr.signalKill()
	// Reaping may wait on the process's pipes; it must not hold the relaunch up.
	in.p.workers.Add(1)
	go func() {
		defer in.p.workers.Done()
		pr.stop()
		attrs := []any{"reason", r.String()}
		if detail != "" {
			attrs = append(attrs, "detail", detail)
		}
		attrs = append(attrs, "pid", pr.pid, "exit", pr.exitStatus(), "uptime", uptime.Round(time.Millisecond))
		in.logCrash(opened, recent, pr.tail.last(), attrs...)
	}()
}

// logCrash writes the line of one crash: a warning, or an error for the crash that opened the
// breaker. stderr is the plugin's last lines.
func (in *instance) logCrash(opened bool, recent int, stderr []string, attrs ...any) {
	cfg := in.breaker.cfg
	attrs = append(attrs, "crashes_in_window", recent, "window", cfg.Window)
	if len(stderr) > 0 {
		attrs = append(attrs, "stderr", stderr)
	}
	if opened {
		in.log.Error("pipeline stage is crash-looping: crash-loop breaker open; its signals get its on_failure answer while it is down, and it is relaunched every probe_interval until a process stays up recover_after",
			append(attrs, "probe_interval", cfg.ProbeInterval, "recover_after", cfg.RecoverAfter)...)
		return
	}
	in.log.Warn("stage process crashed; relaunching", attrs...)
}

// relaunch starts a process and installs it, retrying until one starts or ctx ends: at once
// after a crash, then with a doubling backoff of at most retryMax per failed launch, or at the
// probe pace while the breaker is open (breaker.delay). down is when the stage lost its process.
func (in *instance) relaunch(ctx context.Context, down time.Time) {
	for failures := 0; ; failures++ {
		t := time.NewTimer(in.breaker.delay(time.Now(), failures))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if in.cur.Load() != nil {
			return // a swap installed a process while we waited
		}
		in.breaker.launching(time.Now())
		pr, err := in.startProc(ctx, in.currentSpec())
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			recent, opened := in.breaker.crash(time.Now(), crashStart)
			in.p.metrics.crash(in, crashStart)
			in.logCrash(opened, recent, nil, "reason", crashStart.String(), "error", err, "failed_launches", failures+1)
			continue
		}
		// Under mu, as install: the instance's declaration is always its current process's.
		in.mu.Lock()
		installed := ctx.Err() == nil && in.cur.CompareAndSwap(nil, pr)
		if installed {
			in.noteActs(pr)
		}
		in.mu.Unlock()
		if !installed {
			// Retired meanwhile, or a swap installed a process: ours is not needed.
			pr.stop()
			return
		}
		in.restarts.Add(1)
		in.p.metrics.restart(in)
		in.log.Info("stage process relaunched", "pid", pr.pid, "restarts", in.restarts.Load(),
			"down_for", time.Since(down).Round(time.Millisecond), "breaker", in.breakerState().String())
		return
	}
}
