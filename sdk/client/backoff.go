package client

import (
	"context"
	"time"
)

// backoff is the pause before reconnect attempt n (from 0): a random duration in [0, min(ceiling,
// base·2ⁿ)], drawn by rnd (rand.Int64N). The whole range, not just a slice of it, is random ("full
// jitter"): devices a gateway restart dropped at the same instant then spread their attempts over
// the whole window instead of arriving in waves.
func backoff(n int, base, ceiling time.Duration, rnd func(int64) int64) time.Duration {
	if base <= 0 || ceiling <= 0 {
		return 0
	}
	bound := ceiling
	// base<<n overflows for a large n; once it passes the ceiling, the ceiling is the bound.
	if n < 63 && base <= ceiling>>n {
		bound = base << n
	}
	return time.Duration(rnd(int64(bound) + 1))
}

// heartbeatJitter is the share of the interval added at random to each heartbeat's wait: devices
// that logged in together (after a gateway restart) then drift apart instead of beating in step.
const heartbeatJitter = 10 // percent

// heartbeatDelay is how long to stay idle before the next heartbeat: the server's interval plus up
// to heartbeatJitter percent of it, well inside the server's timeout of three intervals.
func heartbeatDelay(interval time.Duration, rnd func(int64) int64) time.Duration {
	extra := interval * heartbeatJitter / 100
	if extra <= 0 {
		return interval
	}
	return interval + time.Duration(rnd(int64(extra)+1))
}

// sleep waits d, and reports false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
