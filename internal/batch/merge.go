package batch

import "time"

// merger is a Batcher's shared state when Config.MergeWait is set; every field is guarded by the
// lock the lanes then share.
type merger struct {
	wait     time.Duration
	inflight int       // sends in flight, merged or not, and lanes woken to make one (lane.slot)
	merging  int       // lanes in stateMerging
	since    time.Time // when merging last went from 0 to 1
	timer    *time.Timer
	armed    bool
}

// setState moves l to s, keeping count of the merging lanes and timing how long they wait.
func (b *Batcher[T]) setState(l *lane[T], s uint8) {
	if m := b.merge; m != nil && (l.state == stateMerging) != (s == stateMerging) {
		if s != stateMerging {
			m.merging--
		} else if m.merging++; m.merging == 1 {
			m.since = time.Now()
			if !m.armed {
				m.armed = true
				m.timer.Reset(m.wait)
			}
		}
	}
	l.state = s
}

// mergeAdded is Add's decision with MergeWait, after l got an item: whether l's goroutine must
// wake up and send. An idle hop sends at once; otherwise the item waits for the send in flight,
// unless its lane now holds a full batch.
func (b *Batcher[T]) mergeAdded(l *lane[T]) bool {
	switch l.state {
	case stateIdle:
		if b.merge.inflight == 0 {
			// The slot is taken now, not when the goroutine wakes: the items other lanes get
			// meanwhile then wait for this send instead of waking their own goroutines, which
			// would all find the hop idle and send apart.
			b.merge.inflight++
			l.slot = true
			l.state = stateBusy
			return true
		}
		b.setState(l, stateMerging)
	case stateMerging, stateLinger:
		if l.count >= b.maxSize {
			b.setState(l, stateBusy)
			return true
		}
	}
	return false
}

// holds reports whether l, which has items, must wait for another lane's send in flight to take
// them; a slot l took for a send of its own is then given back.
func (b *Batcher[T]) holds(l *lane[T]) bool {
	m := b.merge
	if m == nil || l.closed || l.force || l.count >= b.maxSize || m.inflight-btoi(l.slot) == 0 {
		return false
	}
	if l.slot {
		m.inflight--
		l.slot = false
	}
	return true
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// mustCarry reports whether lanes wait for a merged send that nobody is making: the goroutine that
// sees it (the one whose send just returned) makes it.
func (b *Batcher[T]) mustCarry() bool {
	return b.merge != nil && b.merge.inflight == 0 && b.merge.merging > 0
}

// carry fills batch, which holds n items of l's, with the items of the merging lanes, starting
// after l so that no lane is always last, and marks them carried by l's send.
func (b *Batcher[T]) carry(l *lane[T], batch []T, n int, carried []*lane[T]) (int, []*lane[T]) {
	if b.merge.merging == 0 {
		return n, carried
	}
	for i := 1; i < len(b.lanes) && n < len(batch); i++ {
		o := b.lanes[(l.index+i)%len(b.lanes)]
		if o.state != stateMerging {
			continue
		}
		o.taken = o.take(batch[n:])
		n += o.taken
		b.setState(o, stateCarried)
		carried = append(carried, o)
	}
	return n, carried
}

// release hands the lanes a merged send carried back once it returned: what they queued meanwhile
// waits for the next merged send, unless it is a full batch or the lane is closing, which its own
// goroutine sends.
func (b *Batcher[T]) release(carried []*lane[T]) {
	for _, o := range carried {
		o.sent += uint64(o.taken)
		o.taken = 0
		switch {
		case o.closed || o.count >= b.maxSize:
			b.setState(o, stateBusy)
			o.signal()
		case o.count > 0:
			b.setState(o, stateMerging)
		default:
			b.setState(o, stateIdle)
		}
	}
	clear(carried)
}

// mergeTimeout runs when items may have waited MergeWait for a send that has not returned: a slow
// callee. The lane waiting longest then sends on its own, taking the others along, so that a
// stalled send holds the other lanes no longer than that, as separate lanes would not.
func (b *Batcher[T]) mergeTimeout() {
	m := b.merge
	mu := b.lanes[0].mu
	mu.Lock()
	defer mu.Unlock()
	m.armed = false
	if m.merging == 0 {
		return
	}
	if left := m.wait - time.Since(m.since); left > 0 {
		m.armed = true
		m.timer.Reset(left)
		return
	}
	for _, o := range b.lanes {
		if o.state == stateMerging {
			o.force = true
			b.setState(o, stateBusy)
			o.signal()
			return
		}
	}
}
