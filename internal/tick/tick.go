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

// EveryOr is Every that also calls f as soon as the channel early returns is closed, and then
// counts the interval from there. early is asked again before each call of f, so that an event
// during f is not missed; a nil channel never fires.
func EveryOr(ctx context.Context, interval time.Duration, early func() <-chan struct{}, f func(now time.Time)) {
	EveryOrNudged(ctx, interval, early, nil, f)
}

// EveryOrNudged is EveryOr that also calls f, and counts the interval from there, each time nudge
// receives (a nil nudge never does). A nudge sent during f is one more call after it; the sender
// keeps nudges from piling up (a channel of capacity 1, sent to without blocking).
func EveryOrNudged(ctx context.Context, interval time.Duration, early func() <-chan struct{}, nudge <-chan struct{}, f func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	wake := early()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			wake = early()
			f(now)
		case <-wake:
			wake = early()
			t.Reset(interval)
			f(time.Now())
		case <-nudge:
			wake = early()
			t.Reset(interval)
			f(time.Now())
		}
	}
}
