package batch

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/poll"
)

// Generous bounds: these tests assert behaviour, not speed, and must pass on a loaded CI box.
const waitLimit = 5 * time.Second

type item struct {
	key uint64
	seq int
}

// recorder is a SendFunc that keeps every batch it is given (copied, since the slice is reused).
type recorder struct {
	mu      sync.Mutex
	batches [][]item
	at      []time.Time
	items   int
}

func (r *recorder) send(_ context.Context, items []item) {
	r.mu.Lock()
	r.batches = append(r.batches, slices.Clone(items))
	r.at = append(r.at, time.Now())
	r.items += len(items)
	r.mu.Unlock()
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.items
}

func closeOK[T any](t *testing.T, b *Batcher[T]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	b := New(Config{}, func(context.Context, []int) {})
	defer closeOK(t, b)
	if b.maxSize != 128 || b.delay != 0 || len(b.lanes) != 4 || b.maxQueue != 8192 {
		t.Fatalf("defaults: size %d delay %v lanes %d queue %d", b.maxSize, b.delay, len(b.lanes), b.maxQueue)
	}
	c := New(Config{MaxSize: 64, MaxDelay: -1, Lanes: 3, MaxQueue: 16}, func(context.Context, []int) {})
	defer closeOK(t, c)
	if c.maxSize != 16 || c.delay >= 0 || len(c.lanes) != 3 || c.maxQueue != 16 {
		t.Fatalf("explicit: size %d delay %v lanes %d queue %d", c.maxSize, c.delay, len(c.lanes), c.maxQueue)
	}
}

func TestLaneIndexSpread(t *testing.T) {
	b := New(Config{Lanes: 4}, func(context.Context, []int) {})
	defer closeOK(t, b)
	var hits [4]int
	for k := uint64(0); k < 4000; k += 2 { // even keys only: a plain modulo would use two lanes
		hits[b.index(k)]++
	}
	for i, h := range hits {
		if h < 300 {
			t.Fatalf("lane %d got %d of 2000 keys: %v", i, h, hits)
		}
	}
}

// TestOrderAndSize checks per-key order and the MaxSize bound with concurrent producers and a
// send slow enough that queues build up beyond one batch.
func TestOrderAndSize(t *testing.T) {
	const producers, perProducer, maxSize = 8, 5000, 32
	var rec recorder
	b := New(Config{MaxSize: maxSize, MaxDelay: 100 * time.Microsecond, Lanes: 3}, func(ctx context.Context, items []item) {
		if len(items) > 0 && items[0].seq%7 == 0 {
			time.Sleep(50 * time.Microsecond)
		}
		rec.send(ctx, items)
	})
	produce(t, b, producers, perProducer, 0)
	closeOK(t, b)
	largest := checkOrder(t, rec.batches, maxSize, producers, perProducer)
	t.Logf("%d batches, largest %d", len(rec.batches), largest)
}

// produce has producers goroutines each Add perProducer items under its own key (the producer's
// number), in seq order, retrying ErrFull; with pace, each sleeps that long every 8 items.
func produce(t *testing.T, b *Batcher[item], producers, perProducer int, pace time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := 0; i < perProducer; {
				if err := b.Add(uint64(p), item{uint64(p), i}); err == nil {
					i++
					if pace > 0 && i%8 == 0 {
						time.Sleep(pace)
					}
				} else if errors.Is(err, ErrFull) {
					runtime.Gosched()
				} else {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// checkOrder fails t unless batches hold every item produce made, once, each key's in seq order,
// no batch empty or beyond maxSize; it returns the largest batch.
func checkOrder(t *testing.T, batches [][]item, maxSize, producers, perProducer int) int {
	t.Helper()
	next := make(map[uint64]int)
	largest := 0
	for _, batch := range batches {
		if len(batch) == 0 || len(batch) > maxSize {
			t.Fatalf("batch of %d items, want 1..%d", len(batch), maxSize)
		}
		largest = max(largest, len(batch))
		for _, it := range batch {
			if it.seq != next[it.key] {
				t.Fatalf("key %d: got seq %d, want %d", it.key, it.seq, next[it.key])
			}
			next[it.key]++
		}
	}
	for p := range producers {
		if next[uint64(p)] != perProducer {
			t.Fatalf("key %d: %d items delivered, want %d", p, next[uint64(p)], perProducer)
		}
	}
	return largest
}

func TestLoneItemWaitsMaxDelay(t *testing.T) {
	const delay = 30 * time.Millisecond
	var rec recorder
	b := New(Config{MaxDelay: delay}, rec.send)
	defer closeOK(t, b)
	start := time.Now()
	if err := b.Add(1, item{1, 0}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "lone item to be sent", func() bool { return rec.total() == 1 })
	if el := rec.at[0].Sub(start); el < delay {
		t.Fatalf("lone item sent after %v, before MaxDelay %v", el, delay)
	}
}

func TestLingerThenFull(t *testing.T) {
	// With an hour of linger, only a full batch or Close can send.
	var rec recorder
	b := New(Config{MaxSize: 4, MaxDelay: time.Hour, Lanes: 1}, rec.send)
	for i := range 3 {
		b.Add(0, item{0, i})
	}
	time.Sleep(30 * time.Millisecond)
	if rec.total() != 0 {
		t.Fatal("partial batch sent before MaxDelay")
	}
	b.Add(0, item{0, 3})
	poll.Until(t, "full batch to be sent", func() bool { return rec.total() == 4 })
	b.Add(0, item{0, 4})
	closeOK(t, b) // Close must not wait for the hour
	if rec.total() != 5 || len(rec.batches) != 2 {
		t.Fatalf("got %d items in %d batches, want 5 in 2", rec.total(), len(rec.batches))
	}
}

func TestNegativeDelaySendsAtOnce(t *testing.T) {
	var rec recorder
	b := New(Config{MaxDelay: -1}, rec.send)
	defer closeOK(t, b)
	b.Add(0, item{})
	poll.Until(t, "immediate send", func() bool { return rec.total() == 1 })
}

// blocker is a SendFunc that holds every send until released, to build up a backlog.
type blocker struct {
	recorder
	entered chan int // length of each batch, as its send starts
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan int, 100), release: make(chan struct{})}
}

func (bl *blocker) send(ctx context.Context, items []item) {
	bl.recorder.send(ctx, items)
	bl.entered <- len(items)
	<-bl.release
}

func TestSlowSendGrowsNextBatch(t *testing.T) {
	bl := newBlocker()
	b := New(Config{MaxSize: 64, MaxDelay: -1, Lanes: 1}, bl.send)
	b.Add(0, item{0, 0})
	if n := <-bl.entered; n != 1 {
		t.Fatalf("first batch %d items, want 1", n)
	}
	for i := 1; i <= 100; i++ { // piles up behind the in-flight send
		b.Add(0, item{0, i})
	}
	bl.release <- struct{}{}
	if n := <-bl.entered; n != 64 {
		t.Fatalf("second batch %d items, want a full 64", n)
	}
	bl.release <- struct{}{}
	if n := <-bl.entered; n != 36 {
		t.Fatalf("third batch %d items, want the remaining 36", n)
	}
	close(bl.release)
	closeOK(t, b)
}

func TestErrFull(t *testing.T) {
	bl := newBlocker()
	b := New(Config{MaxQueue: 10, MaxDelay: -1, Lanes: 1}, bl.send)
	b.Add(0, item{0, 0})
	<-bl.entered // the in-flight batch does not count against MaxQueue
	for i := 1; i <= 10; i++ {
		if err := b.Add(0, item{0, i}); err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
	}
	if err := b.Add(0, item{0, 11}); !errors.Is(err, ErrFull) {
		t.Fatalf("Add beyond MaxQueue: %v, want ErrFull", err)
	}
	close(bl.release)
	poll.Until(t, "room after the backlog drains", func() bool { return b.Add(0, item{0, 11}) == nil })
	closeOK(t, b)
	if bl.total() != 12 {
		t.Fatalf("sent %d items, want 12", bl.total())
	}
}

// A full lane still takes reserved items, in order behind the others, and refuses ordinary ones
// until the reserved items are sent too.
func TestAddReservedPassesAFullLane(t *testing.T) {
	bl := newBlocker()
	b := New(Config{MaxQueue: 4, MaxDelay: -1, Lanes: 1}, bl.send)
	b.Add(0, item{0, 0})
	<-bl.entered
	for i := 1; i <= 4; i++ {
		if err := b.Add(0, item{0, i}); err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
	}
	if f := b.Fill(); f != 1 {
		t.Fatalf("Fill of a full lane = %v, want 1", f)
	}
	for i := 5; i <= 6; i++ {
		if err := b.AddReserved(0, item{0, i}); err != nil {
			t.Fatalf("AddReserved %d on a full lane: %v", i, err)
		}
	}
	if f := b.Fill(); f != 1.5 {
		t.Fatalf("Fill overfilled by reserved items = %v, want 1.5", f)
	}
	if err := b.Add(0, item{0, 7}); !errors.Is(err, ErrFull) {
		t.Fatalf("Add on an overfilled lane: %v, want ErrFull", err)
	}
	close(bl.release)
	closeOK(t, b)
	if err := b.AddReserved(0, item{0, 8}); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddReserved after Close: %v, want ErrClosed", err)
	}
	var got []int
	bl.mu.Lock()
	for _, batch := range bl.batches {
		for _, it := range batch {
			got = append(got, it.seq)
		}
	}
	bl.mu.Unlock()
	if !slices.Equal(got, []int{0, 1, 2, 3, 4, 5, 6}) {
		t.Fatalf("sent %v, want 0..6 in order", got)
	}
}

func TestCloseFlushesAndRefuses(t *testing.T) {
	var rec recorder
	b := New(Config{MaxSize: 16, MaxDelay: time.Hour, Lanes: 4}, rec.send)
	const n = 1000
	for i := range n {
		if err := b.Add(uint64(i%10), item{uint64(i % 10), i}); err != nil {
			t.Fatal(err)
		}
	}
	closeOK(t, b)
	if rec.total() != n {
		t.Fatalf("Close flushed %d of %d items", rec.total(), n)
	}
	if err := b.Add(0, item{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close: %v, want ErrClosed", err)
	}
	closeOK(t, b) // a second Close is harmless
}

func TestCloseContextExpires(t *testing.T) {
	var sawCancel atomic.Bool
	entered := make(chan struct{}, 10)
	b := New(Config{MaxDelay: -1, Lanes: 1}, func(ctx context.Context, _ []item) {
		entered <- struct{}{}
		<-ctx.Done() // a send stuck until the batcher gives up on it
		sawCancel.Store(true)
	})
	b.Add(0, item{})
	<-entered
	b.Add(0, item{}) // queued behind the stuck send
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want DeadlineExceeded", err)
	}
	// The send context is now cancelled, so the lane drains (handing the queued item over with the
	// cancelled context) and exits.
	closeOK(t, b)
	if !sawCancel.Load() || len(entered) != 1 {
		t.Fatalf("cancel seen %v, later sends %d; want true, 1", sawCancel.Load(), len(entered))
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 5 {
		var rec recorder
		b := New(Config{Lanes: 8}, rec.send)
		for i := range 100 {
			b.Add(uint64(i), item{})
		}
		closeOK(t, b)
	}
	poll.Until(t, "lane goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}

func TestSendMayAdd(t *testing.T) {
	var b *Batcher[int]
	var got atomic.Int64
	done := make(chan struct{})
	b = New(Config{MaxDelay: -1, Lanes: 2}, func(_ context.Context, items []int) {
		for _, v := range items {
			got.Add(1)
			switch {
			case v < 100:
				b.Add(uint64(v), v+1) // feeding back into the batcher must not deadlock
			case v == 100:
				close(done)
			}
		}
	})
	b.Add(0, 0)
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("chain of Adds from SendFunc stalled")
	}
	closeOK(t, b)
}

func TestSteadyStateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	b := New(Config{MaxDelay: -1, Lanes: 1}, func(context.Context, []int) {})
	defer closeOK(t, b)
	for i := range 10000 { // grow the ring to its working size
		b.Add(0, i)
	}
	allocs := testing.AllocsPerRun(10000, func() {
		for b.Add(0, 1) != nil {
			runtime.Gosched()
		}
	})
	if allocs > 0.01 {
		t.Fatalf("%.3f allocations per item in the steady state", allocs)
	}
}

func TestBarrierWaitsForItemsQueuedBefore(t *testing.T) {
	release := make(chan struct{})
	var sent atomic.Int64
	b := New(Config{MaxSize: 4, MaxDelay: -1, Lanes: 2}, func(_ context.Context, items []int) {
		<-release
		sent.Add(int64(len(items)))
	})
	defer b.Close(context.Background())
	for i := range 10 {
		if err := b.Add(uint64(i), i); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	if err := b.Barrier(ctx); err == nil {
		t.Fatal("Barrier returned while the sends were blocked")
	}
	cancel()
	close(release)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Barrier(ctx); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	if got := sent.Load(); got != 10 {
		t.Fatalf("Barrier returned with %d of 10 items sent", got)
	}
}
