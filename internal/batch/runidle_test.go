package batch

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/poll"
)

// TestRunIdleRunsOnTheCallerWhenIdle: on an idle lane fn runs before RunIdle returns, on the
// caller's goroutine; the lane is idle again afterwards and sends the next item as usual.
func TestRunIdleRunsOnTheCallerWhenIdle(t *testing.T) {
	r := &recorder{}
	b := New(Config{Lanes: 1}, r.send)
	defer closeOK(t, b)
	poll.Until(t, "the lane to be idle", func() bool { return laneState(b) == stateIdle })
	ran := false
	if !b.RunIdle(1, func() { ran = true }) || !ran {
		t.Fatalf("RunIdle on an idle lane: ran=%v", ran)
	}
	if s := laneState(b); s != stateIdle {
		t.Fatalf("lane state %d after RunIdle, want idle", s)
	}
	if err := b.Add(1, item{1, 1}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the next item to be sent", func() bool { return r.total() == 1 })
}

// TestRunIdleRefusesABusyLane: while a batch is in flight, or items wait, RunIdle does not run fn
// (the caller queues instead); nor after Close.
func TestRunIdleRefusesABusyLane(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	b := New(Config{Lanes: 1}, func(_ context.Context, items []item) {
		started <- struct{}{}
		<-release
	})
	if err := b.Add(1, item{1, 1}); err != nil {
		t.Fatal(err)
	}
	<-started
	if b.RunIdle(2, func() { t.Error("fn ran while a batch was in flight") }) {
		t.Fatal("RunIdle ran on a lane with a batch in flight")
	}
	if err := b.Add(1, item{1, 2}); err != nil {
		t.Fatal(err)
	}
	if b.RunIdle(2, func() { t.Error("fn ran while an item waited") }) {
		t.Fatal("RunIdle ran on a lane with an item waiting")
	}
	close(release)
	<-started
	closeOK(t, b)
	if b.RunIdle(2, func() { t.Error("fn ran after Close") }) {
		t.Fatal("RunIdle ran after Close")
	}
}

// TestRunIdleKeepsTheLaneOrder: items queued while fn runs are sent after fn returns, in order,
// as behind a batch in flight; a Close meanwhile still flushes them, after fn.
func TestRunIdleKeepsTheLaneOrder(t *testing.T) {
	var mu sync.Mutex
	var events []int
	b := New(Config{Lanes: 1}, func(_ context.Context, items []item) {
		mu.Lock()
		for _, it := range items {
			events = append(events, it.seq)
		}
		mu.Unlock()
	})
	poll.Until(t, "the lane to be idle", func() bool { return laneState(b) == stateIdle })
	inFn := make(chan struct{})
	finish := make(chan struct{})
	ran := make(chan bool)
	go func() {
		ran <- b.RunIdle(1, func() {
			close(inFn)
			<-finish
			mu.Lock()
			events = append(events, 0)
			mu.Unlock()
		})
	}()
	<-inFn
	for i := 1; i <= 3; i++ {
		if err := b.Add(1, item{1, i}); err != nil {
			t.Fatal(err)
		}
	}
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		closed <- b.Close(ctx)
	}()
	time.Sleep(20 * time.Millisecond) // the lane goroutine, woken by Close, must wait for fn
	mu.Lock()
	early := len(events)
	mu.Unlock()
	if early != 0 {
		t.Fatalf("%d items sent while fn ran", early)
	}
	close(finish)
	if !<-ran {
		t.Fatal("RunIdle did not run fn")
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []int{0, 1, 2, 3}; len(events) != len(want) || events[0] != 0 || events[1] != 1 || events[2] != 2 || events[3] != 3 {
		t.Fatalf("order %v, want %v", events, want)
	}
}

// TestRunIdleAndAddConcurrently: many goroutines each RunIdle or Add their own key's sequence;
// every key's items and fns happen in its own order, none lost, none at once on one lane.
func TestRunIdleAndAddConcurrently(t *testing.T) {
	const keys, per = 8, 300
	var mu sync.Mutex
	last := map[uint64]int{}
	inside := 0
	bad := ""
	record := func(key uint64, seq int) {
		mu.Lock()
		defer mu.Unlock()
		if seq != last[key]+1 && bad == "" {
			bad = "out of order"
		}
		last[key] = seq
	}
	enter := func() {
		mu.Lock()
		inside++
		if inside > 1 && bad == "" {
			bad = "two sends at once on one lane"
		}
		mu.Unlock()
	}
	leave := func() { mu.Lock(); inside--; mu.Unlock() }
	b := New(Config{Lanes: 1}, func(_ context.Context, items []item) {
		enter()
		defer leave()
		for _, it := range items {
			record(it.key, it.seq)
		}
	})
	var wg sync.WaitGroup
	for k := range uint64(keys) {
		wg.Go(func() {
			for i := 1; i <= per; i++ {
				seq := i
				if i%2 == 0 && b.RunIdle(k, func() { enter(); record(k, seq); leave() }) {
					continue
				}
				for b.Add(k, item{k, seq}) != nil {
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	closeOK(t, b)
	mu.Lock()
	defer mu.Unlock()
	if bad != "" {
		t.Fatal(bad)
	}
	for k := range uint64(keys) {
		if last[k] != per {
			t.Fatalf("key %d reached %d of %d", k, last[k], per)
		}
	}
}

// laneState reads the first lane's state.
func laneState[T any](b *Batcher[T]) uint8 {
	l := b.lanes[0]
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}
