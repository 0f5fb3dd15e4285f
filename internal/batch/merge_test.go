package batch

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/poll"
)

// laneKeys returns one key per lane of b, the key of lane i at index i.
func laneKeys[T any](b *Batcher[T]) []uint64 {
	keys := make([]uint64, len(b.lanes))
	found := make([]bool, len(b.lanes))
	for k, left := uint64(0), len(keys); left > 0; k++ {
		if i := b.index(k); !found[i] {
			keys[i], found[i] = k, true
			left--
		}
	}
	return keys
}

// idleLanes waits until every lane goroutine of b has started and waits for items, so that a test
// decides which lane sends first.
func idleLanes[T any](t *testing.T, b *Batcher[T]) {
	t.Helper()
	poll.Until(t, "the lanes idle", func() bool {
		for _, l := range b.lanes {
			l.mu.Lock()
			s := l.state
			l.mu.Unlock()
			if s != stateIdle {
				return false
			}
		}
		return true
	})
}

// noSendFor fails t if a send starts within d: what the merged lanes must not do while a send is
// in flight. Only a short window can be watched; the merged send that follows checks the rest.
func noSendFor(t *testing.T, bl *blocker, d time.Duration, why string) {
	t.Helper()
	select {
	case n := <-bl.entered:
		t.Fatalf("%s: a send of %d items started", why, n)
	case <-time.After(d):
	}
}

// With MergeWait, a hop has one send in flight: what the other lanes queue meanwhile waits for it
// and goes out in one send when it returns, each key's items in Add order.
func TestMergedSendCarriesEveryLane(t *testing.T) {
	bl := newBlocker()
	b := New(Config{MaxSize: 64, Lanes: 4, MergeWait: time.Hour}, bl.send)
	keys := laneKeys(b)
	idleLanes(t, b)
	b.Add(keys[0], item{keys[0], 0})
	if n := <-bl.entered; n != 1 {
		t.Fatalf("first send %d items, want 1: an idle hop sends at once", n)
	}
	for i := 1; i <= 3; i++ {
		for _, k := range keys {
			if err := b.Add(k, item{k, i - btoi(k != keys[0])}); err != nil {
				t.Fatal(err)
			}
		}
	}
	noSendFor(t, bl, 50*time.Millisecond, "other lanes while a send was in flight")
	bl.release <- struct{}{}
	if n := <-bl.entered; n != 12 {
		t.Fatalf("merged send %d items, want the 12 every lane queued", n)
	}
	close(bl.release)
	closeOK(t, b)
	next := map[uint64]int{}
	for _, batch := range bl.batches {
		for _, it := range batch {
			if it.seq != next[it.key] {
				t.Fatalf("key %d: got seq %d, want %d", it.key, it.seq, next[it.key])
			}
			next[it.key]++
		}
	}
	for _, k := range keys {
		if want := 3 + btoi(k == keys[0]); next[k] != want {
			t.Fatalf("key %d: %d items, want %d", k, next[k], want)
		}
	}
}

// Concurrent producers, a callee that is sometimes slow, sends that may stall past MergeWait:
// every item arrives once, each key's items in Add order, no send beyond the cap and no two sends
// with items of one lane at once; and most sends merge lanes.
func TestMergeOrderUnderLoad(t *testing.T) {
	// Producers as fast as they can fill every lane: full lanes send on their own.
	t.Run("backlog", func(t *testing.T) { mergeUnderLoad(t, 32, 0) })
	// Paced producers: lanes rarely fill, and their items wait for the send in flight.
	t.Run("paced", func(t *testing.T) { mergeUnderLoad(t, 1024, 20*time.Microsecond) })
}

func mergeUnderLoad(t *testing.T, maxSize int, pace time.Duration) {
	const producers, perProducer, lanes = 8, 4000, 4
	var rec recorder
	var mu sync.Mutex
	busy := make(map[int]bool)
	var overlap string
	merged := 0
	var b *Batcher[item]
	b = New(Config{MaxSize: maxSize, Lanes: lanes, MergeWait: time.Millisecond}, func(ctx context.Context, items []item) {
		seen := map[int]bool{}
		for _, it := range items {
			seen[b.index(it.key)] = true
		}
		mu.Lock()
		for l := range seen {
			if busy[l] {
				overlap = "two sends in flight with items of one lane"
			}
			busy[l] = true
		}
		if len(seen) > 1 {
			merged++
		}
		mu.Unlock()
		switch r := rand.IntN(50); {
		case r == 0:
			time.Sleep(3 * time.Millisecond) // past MergeWait
		case r < 10:
			time.Sleep(50 * time.Microsecond)
		}
		rec.send(ctx, items)
		mu.Lock()
		for l := range seen {
			busy[l] = false
		}
		mu.Unlock()
	})
	produce(t, b, producers, perProducer, pace)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := b.Barrier(ctx); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	if n := rec.total(); n != producers*perProducer {
		t.Fatalf("Barrier returned with %d of %d items sent", n, producers*perProducer)
	}
	closeOK(t, b)
	b.lanes[0].mu.Lock()
	m := *b.merge
	b.lanes[0].mu.Unlock()
	if m.inflight != 0 || m.merging != 0 {
		t.Fatalf("after Close: %d sends in flight, %d lanes merging; want none", m.inflight, m.merging)
	}
	if overlap != "" {
		t.Fatal(overlap)
	}
	checkOrder(t, rec.batches, maxSize, producers, perProducer)
	if pace > 0 && merged == 0 {
		t.Fatal("no send carried more than one lane's items")
	}
	t.Logf("%d sends, %d merged", len(rec.batches), merged)
}

// Close while lanes are carried by a send in flight: Add is refused, and once the send returns
// everything queued behind it is flushed; no lane goroutine is left.
func TestMergeCloseFlushesCarriedLanes(t *testing.T) {
	before := runtime.NumGoroutine()
	bl := newBlocker()
	b := New(Config{MaxSize: 4, Lanes: 3, MergeWait: time.Hour}, bl.send)
	keys := laneKeys(b)
	idleLanes(t, b)
	b.Add(keys[0], item{keys[0], 0})
	<-bl.entered
	for _, k := range keys[1:] {
		b.Add(k, item{k, 0})
	}
	bl.release <- struct{}{}
	if n := <-bl.entered; n != 2 {
		t.Fatalf("merged send %d items, want 2", n)
	}
	// Lanes 1 and 2 are carried by that send; queue more behind it on every lane.
	for _, k := range keys {
		for i := 1; i <= 5; i++ {
			b.Add(k, item{k, i})
		}
	}
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		closed <- b.Close(ctx)
	}()
	accepted := 3 + 3*5 // until Close marks the lanes closed, Adds still get in, and must be flushed too
	poll.Until(t, "Add refused once Close began", func() bool {
		err := b.Add(keys[1], item{keys[1], 6})
		if err == nil {
			accepted++
		}
		return errors.Is(err, ErrClosed)
	})
	close(bl.release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if bl.total() != accepted {
		t.Fatalf("Close flushed %d of %d items", bl.total(), accepted)
	}
	poll.Until(t, "the lane goroutines gone", func() bool { return runtime.NumGoroutine() <= before })
}

func TestMergeSteadyStateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	b := New(Config{MaxDelay: -1, Lanes: 4, MergeWait: time.Millisecond}, func(context.Context, []int) {})
	defer closeOK(t, b)
	for i := range 10000 { // grow the rings to their working size
		b.Add(uint64(i), i)
	}
	i := uint64(0)
	allocs := testing.AllocsPerRun(10000, func() {
		i++
		for b.Add(i, 1) != nil {
			runtime.Gosched()
		}
	})
	if allocs > 0.01 {
		t.Fatalf("%.3f allocations per item in the steady state", allocs)
	}
}

// Items for several lanes of an idle hop, added before any lane goroutine runs: one lane takes the
// send, and the others' items wait for it (or ride in it) instead of each waking its own goroutine
// to find the hop idle and send apart.
func TestMergeIdleHopWakesOneLane(t *testing.T) {
	bl := newBlocker()
	b := New(Config{MaxSize: 64, Lanes: 4, MergeWait: time.Hour}, bl.send)
	keys := laneKeys(b)
	idleLanes(t, b)
	for _, k := range keys {
		b.Add(k, item{k, 0})
	}
	first := <-bl.entered
	noSendFor(t, bl, 50*time.Millisecond, "a second lane of a hop whose first send is in flight")
	bl.release <- struct{}{}
	if first < len(keys) {
		if n := <-bl.entered; first+n != len(keys) {
			t.Fatalf("sends of %d and %d items, want the %d items in at most two", first, n, len(keys))
		}
	}
	close(bl.release)
	closeOK(t, b)
}
