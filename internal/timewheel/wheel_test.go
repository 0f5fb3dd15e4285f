package timewheel

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// generous bounds everywhere: these tests assert behaviour, not speed, and must pass on a loaded CI box.
const waitLimit = 5 * time.Second

func waitChan(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// hourDue is a delay whose due tick is exactly k on a wheel with a one-hour tick made just now,
// so tests can drive the wheel by hand with advanceTo.
func hourDue(k int) time.Duration { return time.Duration(k)*time.Hour - time.Minute }

func TestNewDefaults(t *testing.T) {
	for _, c := range []struct {
		tick      time.Duration
		slots     int
		wantTick  time.Duration
		wantSlots int64
	}{
		{0, 0, 100 * time.Millisecond, 512},
		{-1, -1, 100 * time.Millisecond, 512},
		{time.Millisecond, 500, time.Millisecond, 512},
		{time.Second, 512, time.Second, 512},
		{time.Second, 1, time.Second, 1},
		{time.Second, 3, time.Second, 4},
	} {
		w := New(c.tick, c.slots)
		if w.tick != c.wantTick || w.mask+1 != c.wantSlots || int64(1)<<w.shift != c.wantSlots {
			t.Errorf("New(%v, %d): tick %v slots %d shift %d; want %v %d", c.tick, c.slots, w.tick, w.mask+1, w.shift, c.wantTick, c.wantSlots)
		}
		if n := len(w.shards); n&(n-1) != 0 || n > maxShards {
			t.Errorf("shards %d not a power of two <= %d", n, maxShards)
		}
	}
}

// TestTimerSize guards the per-connection memory promised in the package documentation.
func TestTimerSize(t *testing.T) {
	if n := unsafe.Sizeof(Timer{}); n > 48 {
		t.Fatalf("Timer is %d bytes, want <= 48", n)
	}
}

func TestFiresNotEarly(t *testing.T) {
	w := New(2*time.Millisecond, 4) // rotation 8ms, so most delays below need rounds
	w.Start()
	defer w.Stop()
	const n = 500
	var wg sync.WaitGroup
	var early atomic.Int32
	wg.Add(n)
	for i := range n {
		d := time.Duration(i%60) * time.Millisecond
		start := time.Now()
		w.AfterFunc(d, func() {
			if time.Since(start) < d {
				early.Add(1)
			}
			wg.Done()
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	waitChan(t, done, "all timers to fire")
	if e := early.Load(); e != 0 {
		t.Fatalf("%d timers fired before their delay", e)
	}
}

func TestStopPreventsFiring(t *testing.T) {
	w := New(time.Millisecond, 8)
	w.Start()
	defer w.Stop()
	var fired atomic.Bool
	tm := w.AfterFunc(20*time.Millisecond, func() { fired.Store(true) })
	if !tm.Stop() {
		t.Fatal("Stop of a pending timer returned false")
	}
	if tm.Stop() {
		t.Fatal("second Stop returned true")
	}
	// A later timer on the same wheel firing proves the wheel went past the stopped one's tick.
	later := make(chan struct{})
	w.AfterFunc(80*time.Millisecond, func() { close(later) })
	waitChan(t, later, "later timer")
	if fired.Load() {
		t.Fatal("stopped timer fired")
	}
}

func TestFiresOnceAndRearm(t *testing.T) {
	w := New(time.Millisecond, 8)
	w.Start()
	defer w.Stop()
	c := make(chan struct{}, 4)
	tm := w.AfterFunc(time.Millisecond, func() { c <- struct{}{} })
	waitChan(t, c, "first firing")
	if tm.Stop() {
		t.Fatal("Stop after firing returned true")
	}
	if tm.Reset(time.Millisecond) {
		t.Fatal("Reset after firing reported pending")
	}
	waitChan(t, c, "firing after Reset")
	time.Sleep(20 * time.Millisecond)
	if len(c) != 0 {
		t.Fatal("timer fired more than once per arming")
	}
}

func TestResetMoves(t *testing.T) {
	w := New(time.Millisecond, 16)
	w.Start()
	defer w.Stop()

	// Earlier: an hour-long timer reset to a few ms fires.
	sooner := make(chan struct{})
	tm := w.AfterFunc(time.Hour, func() { close(sooner) })
	start := time.Now()
	if !tm.Reset(10 * time.Millisecond) {
		t.Fatal("Reset of a pending timer reported not pending")
	}
	waitChan(t, sooner, "reset-earlier timer")
	if el := time.Since(start); el < 10*time.Millisecond {
		t.Fatalf("fired after %v, before the reset delay", el)
	}

	// Later: a short timer reset to an hour does not fire when its old deadline passes.
	var fired atomic.Bool
	tm = w.AfterFunc(10*time.Millisecond, func() { fired.Store(true) })
	tm.Reset(time.Hour)
	later := make(chan struct{})
	w.AfterFunc(80*time.Millisecond, func() { close(later) })
	waitChan(t, later, "later timer")
	if fired.Load() {
		t.Fatal("timer fired at its pre-Reset deadline")
	}
	if !tm.Stop() {
		t.Fatal("reset timer not pending")
	}
}

// TestRounds drives the wheel by hand so the firing tick can be asserted exactly.
func TestRounds(t *testing.T) {
	w := newWheel(time.Hour, 4, 1)
	var got []int
	for _, k := range []int{11, 3, 7, 1, 6} { // 3, 7 and 11 share slot 3 with 0, 1 and 2 rounds
		w.AfterFunc(hourDue(k), func() { got = append(got, k) })
	}
	s := &w.shards[0]
	for tk := int64(1); tk <= 12; tk++ {
		w.advanceTo(tk)
		for tm := range s.timers() {
			if e := s.expiry(tm); e <= tk {
				t.Fatalf("tick %d: pending timer has expiry %d", tk, e)
			}
		}
	}
	want := []int{1, 3, 6, 7, 11}
	if len(got) != len(want) {
		t.Fatalf("fired %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("fired %v, want %v", got, want)
		}
	}
}

// TestResetSameTickKeepsPlace checks the Reset fast path against the slow path's answer.
func TestResetSameTick(t *testing.T) {
	w := newWheel(time.Hour, 4, 1)
	s := &w.shards[0]
	var fired int
	tm := w.AfterFunc(hourDue(9), func() { fired++ })
	w.advanceTo(3) // visit slot 1 once (tick 5 not yet) and move the cursor past the start
	if e := s.expiry(tm); e != 9 {
		t.Fatalf("expiry %d, want 9", e)
	}
	if !tm.Reset(hourDue(9)) {
		t.Fatal("Reset reported not pending")
	}
	if e := s.expiry(tm); e != 9 {
		t.Fatalf("after same-tick Reset expiry %d, want 9", e)
	}
	w.advanceTo(5) // slot 1 visited with rounds 1 -> 0
	if e := s.expiry(tm); e != 9 {
		t.Fatalf("after a rotation expiry %d, want 9", e)
	}
	tm.Reset(hourDue(10))
	w.advanceTo(9)
	if fired != 0 {
		t.Fatal("fired at the old deadline")
	}
	w.advanceTo(10)
	if fired != 1 {
		t.Fatalf("fired %d times, want 1", fired)
	}
}

func TestRoundsRealClock(t *testing.T) {
	w := New(2*time.Millisecond, 4) // rotation 8ms
	w.Start()
	defer w.Stop()
	done := make(chan struct{})
	start := time.Now()
	const d = 100 * time.Millisecond // twelve rotations
	w.AfterFunc(d, func() { close(done) })
	waitChan(t, done, "multi-rotation timer")
	if el := time.Since(start); el < d {
		t.Fatalf("fired after %v, want >= %v", el, d)
	}
}

func TestCatchUpInOrder(t *testing.T) {
	w := newWheel(time.Hour, 4, 4)
	var got []int
	for _, k := range []int{9, 2, 5, 13} {
		w.AfterFunc(hourDue(k), func() { got = append(got, k) })
	}
	w.advanceTo(13) // one call covering several rotations, as after a long stall
	if len(got) != 4 || got[0] != 2 || got[1] != 5 || got[2] != 9 || got[3] != 13 {
		t.Fatalf("fired %v, want [2 5 9 13]", got)
	}
}

func TestStopWheel(t *testing.T) {
	w := New(time.Millisecond, 8)
	w.Start()
	var fired atomic.Bool
	w.AfterFunc(30*time.Millisecond, func() { fired.Store(true) })
	w.Stop()
	w.Stop() // idempotent
	waitChan(t, w.exited, "wheel goroutine to exit")
	w.Start() // no-op after Stop
	tm := w.AfterFunc(time.Millisecond, func() { fired.Store(true) })
	time.Sleep(60 * time.Millisecond)
	if fired.Load() {
		t.Fatal("a timer fired after the wheel was stopped")
	}
	if tm.Stop() || tm.Reset(time.Millisecond) {
		t.Fatal("timer armed on a stopped wheel reports pending")
	}
}

func TestStopBeforeStart(t *testing.T) {
	w := New(time.Millisecond, 8)
	w.Stop()
	w.Start()
	waitChan(t, w.exited, "Start after Stop to be a no-op")
}

func TestStopFromCallback(t *testing.T) {
	w := New(time.Millisecond, 8)
	w.Start()
	returned := make(chan struct{})
	var after atomic.Bool
	w.AfterFunc(5*time.Millisecond, func() {
		w.Stop()
		close(returned)
	})
	w.AfterFunc(40*time.Millisecond, func() { after.Store(true) })
	waitChan(t, returned, "callback calling Wheel.Stop to return")
	waitChan(t, w.exited, "wheel goroutine to exit")
	if after.Load() {
		t.Fatal("timer fired after Stop from callback")
	}
}

func TestCallbackReentrant(t *testing.T) {
	w := New(time.Millisecond, 8)
	w.Start()
	defer w.Stop()
	var stoppedFired atomic.Bool
	armed, moved := make(chan struct{}), make(chan struct{})
	victim := w.AfterFunc(50*time.Millisecond, func() { stoppedFired.Store(true) })
	mover := w.AfterFunc(time.Hour, func() { close(moved) })
	var self atomic.Pointer[Timer]
	var n atomic.Int32
	self.Store(w.AfterFunc(time.Hour, func() {
		if n.Add(1) == 1 {
			self.Load().Reset(2 * time.Millisecond) // re-arm itself from its own callback
			return
		}
		w.AfterFunc(time.Millisecond, func() { close(armed) })
		mover.Reset(time.Millisecond)
		if !victim.Stop() {
			t.Error("Stop from callback returned false for a pending timer")
		}
	}))
	self.Load().Reset(2 * time.Millisecond) // armed only once self is visible to the callback
	waitChan(t, armed, "timer armed from a callback")
	waitChan(t, moved, "timer reset from a callback")
	time.Sleep(80 * time.Millisecond)
	if stoppedFired.Load() {
		t.Fatal("timer stopped from a callback fired")
	}
}

// TestConcurrentChurn hammers AfterFunc/Reset/Stop from many goroutines while the wheel runs; under
// -race it checks locking, and it checks that Stop==true really means "never fires".
func TestConcurrentChurn(t *testing.T) {
	w := New(time.Millisecond, 16)
	w.Start()
	defer w.Stop()
	const workers, per = 8, 400
	var fired, stopped atomic.Int64
	var wrong atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range per {
				var killed atomic.Bool
				tm := w.AfterFunc(time.Duration(rand.IntN(5))*time.Millisecond, func() {
					if killed.Load() {
						wrong.Add(1)
					}
					fired.Add(1)
				})
				switch i % 3 {
				case 0:
					tm.Reset(time.Duration(rand.IntN(5)) * time.Millisecond)
				case 1:
					if tm.Stop() {
						killed.Store(true)
						stopped.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(waitLimit)
	for fired.Load()+stopped.Load() < workers*per && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// Reset of an already-fired timer fires it again, so fired may exceed the unstopped count.
	if got := fired.Load() + stopped.Load(); got < workers*per {
		t.Fatalf("fired %d + stopped %d < armed %d", fired.Load(), stopped.Load(), workers*per)
	}
	if wrong.Load() != 0 {
		t.Fatalf("%d timers fired after Stop returned true", wrong.Load())
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 10 {
		w := New(time.Millisecond, 8)
		w.Start()
		w.AfterFunc(time.Hour, func() {})
		w.Stop()
	}
	deadline := time.Now().Add(waitLimit)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after Stop, %d before", n, before)
	}
}

// timers lists a shard's pending timers; s.mu must not be held by another goroutine.
func (s *shard) timers() func(func(*Timer) bool) {
	return func(yield func(*Timer) bool) {
		for _, h := range s.slots {
			for t := h; t != nil; t = t.next {
				if !yield(t) {
					return
				}
			}
		}
	}
}
