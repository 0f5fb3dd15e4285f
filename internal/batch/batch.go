package batch

import (
	"context"
	"errors"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrFull is returned by Add when the item's lane already holds Config.MaxQueue waiting items.
	ErrFull = errors.New("batch: lane queue full")
	// ErrClosed is returned by Add once Close has been called.
	ErrClosed = errors.New("batch: batcher closed")
)

// Config tunes a Batcher. The zero Config is valid and means all defaults.
type Config struct {
	// MaxSize is the largest batch handed to SendFunc. Default 128 (used when <= 0).
	MaxSize int
	// MaxDelay chooses how a lane that was idle treats its first item. Zero (the default) or
	// negative is natural batching: the item goes out at once, and what arrives while that batch
	// is in flight forms the next one, so a batch is never held back and grows only with load.
	// A positive value is a linger: an idle lane waits that long (or for a full batch) before
	// sending, trading latency for bigger batches at low rates (docs/adr/0010-natural-batching.md).
	MaxDelay time.Duration
	// Lanes is the number of independent ordered lanes, each with its own goroutine. Default 4
	// (used when <= 0).
	Lanes int
	// MaxQueue is how many items may wait in one lane, not counting the batch being sent, before
	// Add returns ErrFull. Default 8192 (used when <= 0).
	MaxQueue int
	// MergeWait, when positive, merges the lanes' sends (docs/adr/0016-merged-lanes.md): while a
	// send is in flight, the items of the other lanes wait for it and go out together, in one
	// send, when it returns, so a hop has one send in flight instead of one per lane and its
	// batches are as big as one lane's would be. A lane still sends on its own, in parallel, when
	// its batch is full, or when its items have waited MergeWait for a send that has not returned
	// (a slow callee then gets the lanes' parallelism back). Zero: each lane sends on its own.
	MergeWait time.Duration
}

const (
	defaultMaxSize  = 128
	defaultLanes    = 4
	defaultMaxQueue = 8192
)

// SendFunc delivers one batch. items is never empty, holds at most Config.MaxSize items in Add
// order, and is reused once SendFunc returns, so it must not be kept. ctx is owned by the Batcher
// and is cancelled only when the context given to Close expires; sends still pending then are
// made with the cancelled ctx so that the callee can fail them rather than have them vanish.
type SendFunc[T any] func(ctx context.Context, items []T)

// Batcher queues items per lane and sends them in batches. Make one with New; the zero Batcher is
// not usable. A Batcher runs one goroutine per lane until Close.
type Batcher[T any] struct {
	send     SendFunc[T]
	lanes    []*lane[T]
	maxSize  int
	maxQueue int
	delay    time.Duration // <= 0: natural batching, no linger
	merge    *merger       // nil unless Config.MergeWait > 0

	ctx    context.Context
	cancel context.CancelFunc

	closeOnce sync.Once
	live      atomic.Int32  // lane goroutines still running
	done      chan struct{} // closed when the last one returns
}

// New makes a Batcher with cfg's values (defaults for zero fields) and starts its lane
// goroutines. send must not be nil. Close must be called to stop the goroutines.
func New[T any](cfg Config, send SendFunc[T]) *Batcher[T] {
	if send == nil {
		panic("batch: New with nil SendFunc")
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = defaultMaxSize
	}
	if cfg.Lanes <= 0 {
		cfg.Lanes = defaultLanes
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = defaultMaxQueue
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Batcher[T]{
		send: send,
		// A batch can never be bigger than the queue it is taken from; capping here also lets a
		// full queue end the linger.
		maxSize:  min(cfg.MaxSize, cfg.MaxQueue),
		maxQueue: cfg.MaxQueue,
		delay:    cfg.MaxDelay,
		ctx:      ctx,
		cancel:   cancel,
		lanes:    make([]*lane[T], cfg.Lanes),
		done:     make(chan struct{}),
	}
	var shared *sync.Mutex
	if cfg.MergeWait > 0 {
		// One lock for every lane: a merged send takes items of several lanes at once.
		shared = new(sync.Mutex)
		b.merge = &merger{wait: cfg.MergeWait}
		b.merge.timer = time.AfterFunc(time.Hour, b.mergeTimeout)
		b.merge.timer.Stop()
	}
	b.live.Store(int32(cfg.Lanes))
	for i := range b.lanes {
		l := &lane[T]{index: i, wake: make(chan struct{}, 1), mu: shared}
		if l.mu == nil {
			l.mu = &l.own
		}
		b.lanes[i] = l
		go b.run(l)
	}
	return b
}

// Add queues item on the lane that key maps to (keys are hashed onto Config.Lanes lanes, so equal
// keys always share a lane). It never blocks: it returns ErrFull when that lane already holds
// Config.MaxQueue waiting items, and ErrClosed once Close has been called.
func (b *Batcher[T]) Add(key uint64, item T) error { return b.add(key, item, false) }

// AddReserved queues item like Add but is never refused for lack of room: it is for the items that
// keep state consistent (a connection closed, an ACK, a business notification), which must not be
// lost to a flood of ordinary ones. The caller bounds how many there can be (one close per
// connection, one ACK per frame sent), so this is a reserve, not an unbounded queue. Reserved
// items count toward the lane's queue, so ordinary items are refused sooner while they wait. It
// returns ErrClosed once Close has been called.
func (b *Batcher[T]) AddReserved(key uint64, item T) error { return b.add(key, item, true) }

// RunIdle runs fn on the caller's goroutine, in place of an item sent on the lane that key maps to,
// when that lane is idle: nothing queued and no batch being sent, so everything queued on it before
// has been sent. It reports whether it ran fn; when it did not (the lane is busy, or closed), the
// caller queues its item as usual. Items queued while fn runs wait for it and go after it, as they
// would behind a batch in flight: fn takes the place of the lane's one batch in flight, and the
// order of the lane's items is kept. It spares an idle lane the hand-off to its goroutine (a
// wake-up, and on a multi-core machine often another thread's) for work the caller can do at once:
// a pipeline signal no stage listens to (pipeline.Pipelines.Run). fn must not wait for the lane.
func (b *Batcher[T]) RunIdle(key uint64, fn func()) bool {
	l := b.lanes[b.index(key)]
	l.mu.Lock()
	if l.closed || l.state != stateIdle || l.count != 0 {
		l.mu.Unlock()
		return false
	}
	l.state = stateInline
	l.pushed++ // a Barrier waits for fn as for a batch
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.sent++
		// Hand back to the lane goroutine: it sends what was queued meanwhile, or exits on Close.
		wake := l.count > 0 || l.closed
		if wake {
			l.state = stateBusy
		} else {
			l.state = stateIdle
		}
		l.mu.Unlock()
		if wake {
			l.signal()
		}
	}()
	fn()
	return true
}

// Fill is how full the fullest lane is, as a fraction of Config.MaxQueue (above 1 when reserved
// items overfill it). An overload manager reads it: one full lane already refuses items.
func (b *Batcher[T]) Fill() float64 {
	most := 0
	for _, l := range b.lanes {
		l.mu.Lock()
		most = max(most, l.count)
		l.mu.Unlock()
	}
	return float64(most) / float64(b.maxQueue)
}

func (b *Batcher[T]) add(key uint64, item T, reserved bool) error {
	l := b.lanes[b.index(key)]
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if l.count >= b.maxQueue && !reserved {
		l.mu.Unlock()
		return ErrFull
	}
	l.push(item, b.maxSize)
	// Wake the lane goroutine only on the transitions it waits for, so that a busy lane costs no
	// channel operation per item.
	var wake bool
	if b.merge != nil {
		wake = b.mergeAdded(l)
	} else {
		wake = l.state == stateIdle || (l.state == stateLinger && l.count >= b.maxSize)
		if wake {
			l.state = stateBusy
		}
	}
	l.mu.Unlock()
	if wake {
		l.signal()
	}
	return nil
}

// index maps a key onto a lane. The multiply spreads keys that differ only in low or high bits
// (sequential ids, ids with a common stride); the high-word multiply avoids a division.
func (b *Batcher[T]) index(key uint64) int {
	hi, _ := bits.Mul64(key*0x9E3779B97F4A7C15, uint64(len(b.lanes)))
	return int(hi)
}

// Close stops accepting items, flushes everything already queued and waits until every lane
// goroutine has finished, or until ctx is done. In that case it cancels the context given to
// SendFunc and returns ctx.Err(); the lanes still hand their remaining items to SendFunc, with
// the cancelled context, but Close does not wait for that. Close may be called more than once;
// every call waits in the same way.
func (b *Batcher[T]) Close(ctx context.Context) error {
	b.closeOnce.Do(func() {
		for _, l := range b.lanes {
			l.mu.Lock()
			l.closed = true
			l.mu.Unlock()
			l.signal()
		}
	})
	select {
	case <-b.done:
		return nil
	default:
	}
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		b.cancel()
		return ctx.Err()
	}
}

func (b *Batcher[T]) exit() {
	if b.live.Add(-1) == 0 {
		if b.merge != nil {
			b.merge.timer.Stop()
		}
		b.cancel() // releases the context; no send can start any more
		close(b.done)
	}
}
