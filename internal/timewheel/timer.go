package timewheel

import "time"

// Timer is a callback armed on a Wheel. Timers are made only by Wheel.AfterFunc; the zero Timer is
// not usable. A Timer may be stopped and re-armed any number of times, from any goroutine.
type Timer struct {
	// Intrusive list links: arming and disarming allocate nothing and are O(1).
	next, prev *Timer
	s          *shard
	f          func()
	rounds     int64 // full rotations to skip when the cursor reaches slot
	slot       int32 // index into s.slots; -1 while not pending
}

// AfterFunc arms a timer that calls f on the wheel goroutine once d has elapsed (d <= 0 means on
// the next tick). f must be quick and non-blocking; see the package documentation. It fires no
// earlier than d and normally at most about one tick later. f must not be nil.
func (w *Wheel) AfterFunc(d time.Duration, f func()) *Timer {
	if f == nil {
		panic("timewheel: AfterFunc with nil func")
	}
	s := w.pick()
	t := &Timer{s: s, f: f, slot: -1}
	k := w.due(d)
	s.mu.Lock()
	if !w.stopped.Load() {
		s.link(t, k)
	}
	s.mu.Unlock()
	return t
}

// Stop disarms the timer. It reports whether it prevented the callback: false means the timer had
// already fired (its callback may still be running), had been stopped, or its wheel was stopped
// before it was armed.
func (t *Timer) Stop() bool {
	s := t.s
	s.mu.Lock()
	pending := t.slot >= 0
	if pending {
		s.unlink(t)
	}
	s.mu.Unlock()
	return pending
}

// Reset re-arms the timer to fire d from now, whether or not it was pending, and reports whether it
// was pending. As with time.Timer, a Reset racing with the firing may let the callback run for the
// old deadline and again for the new one. After the wheel is stopped Reset does not re-arm.
func (t *Timer) Reset(d time.Duration) bool {
	s := t.s
	k := s.w.due(d)
	s.mu.Lock()
	k = max(k, s.cur+1)
	pending := t.slot >= 0
	if pending {
		// Connections reset their idle timer on every message, many times per tick: when the
		// deadline tick is unchanged, leave the list (and the neighbours' cache lines) alone.
		if s.expiry(t) == k {
			s.mu.Unlock()
			return true
		}
		s.unlink(t)
	}
	if !s.w.stopped.Load() {
		s.link(t, k)
	}
	s.mu.Unlock()
	return pending
}

// link puts t on the list that the cursor reaches at tick k; s.mu must be held.
func (s *shard) link(t *Timer, k int64) {
	k = max(k, s.cur+1) // the wheel goroutine may be behind the clock, never ahead
	idx := k & s.w.mask
	// The slot is next visited at k - rounds*slots, which is > s.cur by construction.
	t.rounds = (k - s.cur - 1) >> s.w.shift
	t.slot = int32(idx)
	head := s.slots[idx]
	t.prev, t.next = nil, head
	if head != nil {
		head.prev = t
	}
	s.slots[idx] = t
}

// unlink removes a pending t from its list; s.mu must be held.
func (s *shard) unlink(t *Timer) {
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		s.slots[t.slot] = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	}
	t.next, t.prev = nil, nil
	t.slot = -1
}

// expiry is the tick at which a pending t fires; s.mu must be held.
func (s *shard) expiry(t *Timer) int64 {
	next := s.cur + 1 + ((int64(t.slot) - s.cur - 1) & s.w.mask)
	return next + t.rounds<<s.w.shift
}
