package batch

import (
	"sync"
	"time"
)

// What the lane goroutine is waiting for; Add signals only on the transitions that matter to it.
const (
	stateBusy    uint8 = iota // taking or sending a batch: will look at the queue afterwards anyway
	stateIdle                 // waiting for a first item
	stateLinger               // waiting for a full batch or the linger timer
	stateInline               // RunIdle's fn runs on its caller: the lane goroutine takes nothing meanwhile
	stateMerging              // MergeWait: has items, waiting to be taken into the next merged send
	stateCarried              // MergeWait: its items are in another lane's send, which releases it
)

// lane is one ordered queue with its own goroutine.
type lane[T any] struct {
	index int // in Batcher.lanes
	// mu is own, or with MergeWait the Batcher's one lock shared by every lane.
	mu  *sync.Mutex
	own sync.Mutex
	// ring holds the waiting items. With the goroutine's send buffer it forms the double buffer:
	// Add writes here while the previous batch is being sent from the other, and neither is
	// reallocated in the steady state. Its length is a power of two.
	ring   []T
	head   int
	count  int
	state  uint8
	closed bool
	wake   chan struct{} // capacity 1: a pending wake-up is never lost, and never blocks
	// pushed counts the items ever queued, sent those whose send returned (Barrier).
	pushed, sent uint64
	// force lets a merging lane send on its own once (its items waited MergeWait); taken counts
	// the items a merged send took from it, released when that send returns.
	force bool
	taken int
	// slot: Add woke this lane to send on an idle hop and counted its send in flight already.
	slot bool
	_    [64]byte // keep lanes' locks off each other's cache lines
}

func (l *lane[T]) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// push appends item; the caller holds mu and has checked MaxQueue.
func (l *lane[T]) push(item T, firstCap int) {
	if l.count == len(l.ring) {
		l.grow(firstCap)
	}
	l.ring[(l.head+l.count)&(len(l.ring)-1)] = item
	l.count++
	l.pushed++
}

// grow doubles the full ring; it only happens while a lane's backlog reaches a new high.
func (l *lane[T]) grow(firstCap int) {
	n := 2 * len(l.ring)
	if n == 0 {
		n = 1
		for n < firstCap {
			n <<= 1
		}
	}
	r := make([]T, n)
	k := copy(r, l.ring[l.head:])
	copy(r[k:], l.ring[:l.head])
	l.ring, l.head = r, 0
}

// take moves up to len(dst) of the oldest items into dst and returns how many; mu must be held.
func (l *lane[T]) take(dst []T) int {
	n := min(l.count, len(dst))
	first := min(n, len(l.ring)-l.head)
	copy(dst, l.ring[l.head:l.head+first])
	copy(dst[first:n], l.ring[:n-first])
	// Clear what was taken so the queue does not keep items (and what they point to) alive.
	clear(l.ring[l.head : l.head+first])
	clear(l.ring[:n-first])
	l.head = (l.head + n) & (len(l.ring) - 1)
	l.count -= n
	return n
}

// run is the lane goroutine: wait, maybe linger, take a batch, send it, repeat until closed and
// drained. With MergeWait it also waits while another lane's send is in flight, and its sends
// carry the items of the lanes that waited (merge.go).
func (b *Batcher[T]) run(l *lane[T]) {
	defer b.exit()
	batch := make([]T, b.maxSize)
	var carried []*lane[T]
	if b.merge != nil {
		carried = make([]*lane[T], 0, len(b.lanes)-1)
	}
	var linger *time.Timer
	if b.delay > 0 {
		linger = time.NewTimer(time.Hour)
		linger.Stop()
	}
	wasIdle := true // no send has happened yet
	l.mu.Lock()
	for {
		// Loops, not ifs: a wake-up may be stale (a Close, or an Add racing the linger timer).
		// While a RunIdle fn runs, what was queued meanwhile waits for it, even on Close: it is
		// the lane's batch in flight (RunIdle signals when it is done). A carried lane's items
		// are in another lane's send, which hands the lane back when it returns.
		for {
			switch {
			case l.state == stateInline || l.state == stateCarried:
			case l.count == 0 && !l.closed && !b.mustCarry():
				wasIdle = true
				b.setState(l, stateIdle)
			case l.count > 0 && b.holds(l):
				b.setState(l, stateMerging)
			default:
				goto ready
			}
			l.mu.Unlock()
			<-l.wake
			l.mu.Lock()
		}
	ready:
		if l.count == 0 && !b.mustCarry() { // closed and drained
			l.mu.Unlock()
			return
		}
		// Only a lane that was idle lingers: items that piled up during a send are already late.
		if wasIdle && linger != nil && l.count > 0 && l.count < b.maxSize && !l.closed {
			linger.Reset(b.delay)
			for expired := false; !expired && l.count < b.maxSize && !l.closed; {
				l.state = stateLinger
				l.mu.Unlock()
				select {
				case <-l.wake:
				case <-linger.C:
					expired = true
				}
				l.mu.Lock()
			}
			linger.Stop()
		}
		wasIdle = false
		b.setState(l, stateBusy)
		l.force = false
		own := l.take(batch)
		n := own
		if b.merge != nil {
			n, carried = b.carry(l, batch, n, carried)
			if !l.slot {
				b.merge.inflight++
			}
			l.slot = false
		}
		l.mu.Unlock()
		b.send(b.ctx, batch[:n])
		clear(batch[:n]) // the callee is done with it; do not pin its items until the next batch
		l.mu.Lock()
		l.sent += uint64(own)
		if b.merge != nil {
			b.merge.inflight--
			b.release(carried)
			carried = carried[:0]
		}
	}
}
