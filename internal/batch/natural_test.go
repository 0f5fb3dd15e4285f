package batch

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/poll"
)

// The zero Config batches naturally: these tests use MaxDelay 0 (the default), and one of them -1,
// which means the same.

func TestNaturalIsTheDefault(t *testing.T) {
	b := New(Config{}, func(context.Context, []int) {})
	defer closeOK(t, b)
	if b.delay > 0 {
		t.Fatalf("default delay %v, want natural batching (<= 0)", b.delay)
	}
}

// An idle lane sends its first item alone and at once: it does not wait for company, a full batch
// or a timer. A lingering Batcher (TestLingerThenFull) holds the same item back.
func TestNaturalIdleLaneSendsAtOnce(t *testing.T) {
	for _, delay := range []time.Duration{0, -1} {
		bl := newBlocker()
		b := New(Config{MaxSize: 64, MaxDelay: delay, Lanes: 1}, bl.send)
		if err := b.Add(0, item{0, 0}); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-bl.entered:
			if n != 1 {
				t.Fatalf("delay %v: first batch %d items, want 1", delay, n)
			}
		case <-time.After(waitLimit):
			t.Fatalf("delay %v: a lone item on an idle lane was not sent", delay)
		}
		close(bl.release)
		closeOK(t, b)
	}
}

// While a batch is in flight, what arrives accumulates and goes out as one batch when the send
// returns, in Add order, at most MaxSize at a time; the lane then is idle again and sends the next
// lone item at once.
func TestNaturalAccumulatesWhileInFlightUpToTheCap(t *testing.T) {
	const maxSize = 16
	bl := newBlocker()
	b := New(Config{MaxSize: maxSize, Lanes: 1}, bl.send)
	b.Add(0, item{0, 0})
	if n := <-bl.entered; n != 1 {
		t.Fatalf("first batch %d items, want 1", n)
	}
	const backlog = 2*maxSize + 5
	for i := 1; i <= backlog; i++ {
		if err := b.Add(0, item{0, i}); err != nil {
			t.Fatal(err)
		}
	}
	// One send in flight per lane: nothing else may start before the first returns.
	select {
	case n := <-bl.entered:
		t.Fatalf("a batch of %d started while another was in flight", n)
	default:
	}
	for _, want := range []int{maxSize, maxSize, 5} {
		bl.release <- struct{}{}
		if n := <-bl.entered; n != want {
			t.Fatalf("batch of %d items, want %d", n, want)
		}
	}
	bl.release <- struct{}{} // the lane is idle again
	b.Add(0, item{0, backlog + 1})
	if n := <-bl.entered; n != 1 {
		t.Fatalf("batch after the backlog %d items, want 1", n)
	}
	close(bl.release)
	closeOK(t, b)
	bl.mu.Lock()
	defer bl.mu.Unlock()
	seq := 0
	for _, batch := range bl.batches {
		for _, it := range batch {
			if it.seq != seq {
				t.Fatalf("got seq %d, want %d", it.seq, seq)
			}
			seq++
		}
	}
	if seq != backlog+2 {
		t.Fatalf("sent %d items, want %d", seq, backlog+2)
	}
}

// Concurrent producers over several lanes, with a callee that is sometimes slow: every item
// arrives once, each key's items in Add order, no batch beyond the cap, and batches do grow.
func TestNaturalOrderUnderLoad(t *testing.T) {
	const producers, perProducer, maxSize = 8, 5000, 32
	var rec recorder
	b := New(Config{MaxSize: maxSize, Lanes: 3}, func(ctx context.Context, items []item) {
		if items[0].seq%5 == 0 {
			time.Sleep(100 * time.Microsecond)
		}
		rec.send(ctx, items)
	})
	produce(t, b, producers, perProducer, 0)
	closeOK(t, b)
	largest := checkOrder(t, rec.batches, maxSize, producers, perProducer)
	// 40,000 items through 3 lanes whose sends sleep: batches of one only would mean the backlog
	// was not batched at all.
	if largest < 2 {
		t.Fatalf("largest batch %d: items added during a send were not batched", largest)
	}
	t.Logf("%d batches, largest %d", len(rec.batches), largest)
}

// The admission rules hold in natural mode: the batch in flight does not count, MaxQueue waiting
// items refuse ordinary ones, reserved items still get in, in order behind the others.
func TestNaturalQueueLimitAndReserve(t *testing.T) {
	bl := newBlocker()
	b := New(Config{MaxSize: 8, MaxQueue: 4, Lanes: 1}, bl.send)
	b.Add(0, item{0, 0})
	<-bl.entered
	for i := 1; i <= 4; i++ {
		if err := b.Add(0, item{0, i}); err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
	}
	if err := b.Add(0, item{0, 99}); !errors.Is(err, ErrFull) {
		t.Fatalf("Add to a full lane: %v, want ErrFull", err)
	}
	if err := b.AddReserved(0, item{0, 5}); err != nil {
		t.Fatalf("AddReserved to a full lane: %v", err)
	}
	if f := b.Fill(); f <= 1 {
		t.Fatalf("Fill %v with a reserved item beyond MaxQueue, want > 1", f)
	}
	close(bl.release)
	poll.Until(t, "the backlog sent", func() bool { return bl.total() == 6 })
	closeOK(t, b)
	bl.mu.Lock()
	defer bl.mu.Unlock()
	seq := 0
	for _, batch := range bl.batches {
		if len(batch) > 4 { // the cap is min(MaxSize, MaxQueue)
			t.Fatalf("batch of %d items beyond MaxQueue 4", len(batch))
		}
		for _, it := range batch {
			if it.seq != seq {
				t.Fatalf("got seq %d, want %d", it.seq, seq)
			}
			seq++
		}
	}
}

// Close waits for the batch in flight, then flushes what accumulated behind it, and refuses new
// items meanwhile.
func TestNaturalCloseFlushesBehindTheBatchInFlight(t *testing.T) {
	bl := newBlocker()
	b := New(Config{MaxSize: 4, Lanes: 2}, bl.send)
	b.Add(0, item{0, 0})
	<-bl.entered
	for i := 1; i <= 9; i++ {
		b.Add(0, item{0, i})
	}
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		closed <- b.Close(ctx)
	}()
	accepted := 10 // until Close marks the lanes closed, Adds still get in, and must be flushed too
	poll.Until(t, "Add refused once Close began", func() bool {
		err := b.Add(1, item{1, accepted})
		if err == nil {
			accepted++
		}
		return errors.Is(err, ErrClosed)
	})
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a batch was in flight", err)
	default:
	}
	close(bl.release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if bl.total() != accepted {
		t.Fatalf("Close flushed %d of %d items", bl.total(), accepted)
	}
}
