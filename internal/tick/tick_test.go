package tick

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/poll"
)

func TestEveryTicksUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(ctx, time.Millisecond, func(time.Time) { n.Add(1) })
	}()
	poll.Until(t, "three ticks", func() bool { return n.Load() >= 3 })
	cancel()
	select {
	case <-done:
	case <-time.After(poll.Timeout):
		t.Fatal("Every did not return after its context ended")
	}
	after := n.Load()
	time.Sleep(10 * time.Millisecond) // nothing to wait for: the point is that nothing happens
	if n.Load() != after {
		t.Error("f ran after Every returned")
	}
}

func TestEveryOrRunsAtOnceWhenWoken(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	wake := make(chan struct{})
	var asked atomic.Int32
	early := func() <-chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		asked.Add(1)
		return wake
	}
	calls := make(chan time.Time, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// An hour: only a wake-up can call f within the test.
		EveryOr(ctx, time.Hour, early, func(now time.Time) { calls <- now })
	}()
	for i := range 3 {
		// Close the channel EveryOr holds, not one it has yet to ask for.
		poll.Until(t, "EveryOr to ask for the channel", func() bool { return asked.Load() > int32(i) })
		mu.Lock()
		close(wake)
		wake = make(chan struct{})
		mu.Unlock()
		select {
		case <-calls:
		case <-time.After(poll.Timeout):
			t.Fatalf("wake-up %d did not call f", i)
		}
	}
	cancel()
	<-done
	if len(calls) != 0 {
		t.Errorf("%d calls more than wake-ups", len(calls))
	}
}

func TestEveryOrWithNilTicks(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		EveryOr(ctx, time.Millisecond, func() <-chan struct{} { return nil }, func(time.Time) { n.Add(1) })
	}()
	poll.Until(t, "three ticks", func() bool { return n.Load() >= 3 })
	cancel()
	<-done
}

func TestEveryOrNudgedRunsOncePerNudge(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nudge := make(chan struct{}, 1)
	calls := make(chan time.Time, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// An hour, and no early channel: only a nudge can call f within the test.
		EveryOrNudged(ctx, time.Hour, func() <-chan struct{} { return nil }, nudge, func(now time.Time) { calls <- now })
	}()
	for i := range 3 {
		nudge <- struct{}{}
		select {
		case <-calls:
		case <-time.After(poll.Timeout):
			t.Fatalf("nudge %d did not call f", i)
		}
	}
	cancel()
	<-done
	if len(calls) != 0 {
		t.Errorf("%d calls more than nudges", len(calls))
	}
}
