// Package tick runs periodic work: the one ticker loop that registry refreshes, configuration
// watches, state sweeps and load generators would otherwise each write again.
package tick

import (
	"context"
	"time"
)

// Every calls f with the tick's time every interval until ctx ends, and returns then. f runs on
// the caller's goroutine, one call at a time: a slow f delays the next tick, never overlaps it.
func Every(ctx context.Context, interval time.Duration, f func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f(now)
		}
	}
}
