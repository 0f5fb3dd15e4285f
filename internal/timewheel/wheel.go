package timewheel

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

const (
	defaultTick  = 100 * time.Millisecond
	defaultSlots = 512
	// maxShards bounds the per-wheel memory (slots × 8 bytes per shard) on very wide machines.
	maxShards = 256
)

// Wheel is a hashed timing wheel. Make one with New, arm timers with AfterFunc, and drive it with
// Start. The zero Wheel is not usable.
type Wheel struct {
	tick  time.Duration
	start time.Time // tick k is due at start + k*tick; monotonic, so wall-clock jumps do not matter
	mask  int64     // slots-1; slots is a power of two so slot = tick & mask
	shift uint      // log2(slots), for rounds = delta >> shift

	shards []shard
	smask  uint32

	stopped   atomic.Bool
	startOnce sync.Once
	stopOnce  sync.Once
	done      chan struct{} // closed by Stop
	exited    chan struct{} // closed when the wheel goroutine returns (tests wait on it)

	// Owned by the wheel goroutine.
	cur  int64    // last tick processed
	fire []func() // reused buffer of callbacks due this tick
}

// shard is one independently locked wheel; all shards advance together on the same tick.
type shard struct {
	mu    sync.Mutex
	cur   int64    // last tick this shard processed; guarded by mu
	slots []*Timer // heads of intrusive doubly-linked lists; guarded by mu
	w     *Wheel
	_     [64]byte // keep neighbouring shards' locks off one cache line
}

// New makes a wheel that advances every tick (default 100ms, used when tick <= 0) and has slots
// slots (default 512, used when slots <= 0; otherwise rounded up to a power of two). One rotation
// therefore spans tick × slots; longer delays wait extra rotations. The wheel does nothing until
// Start is called, but timers may be armed before that.
func New(tick time.Duration, slots int) *Wheel {
	n := runtime.GOMAXPROCS(0) * 4
	return newWheel(tick, slots, n)
}

// newWheel lets benchmarks compare shard counts; shards is rounded up to a power of two.
func newWheel(tick time.Duration, slots, shards int) *Wheel {
	if tick <= 0 {
		tick = defaultTick
	}
	if slots <= 0 {
		slots = defaultSlots
	}
	slots = ceilPow2(slots)
	shards = min(ceilPow2(max(shards, 1)), maxShards)
	w := &Wheel{
		tick:   tick,
		start:  time.Now(),
		mask:   int64(slots - 1),
		shift:  uint(bits.TrailingZeros(uint(slots))),
		shards: make([]shard, shards),
		smask:  uint32(shards - 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	for i := range w.shards {
		w.shards[i].slots = make([]*Timer, slots)
		w.shards[i].w = w
	}
	return w
}

func ceilPow2(n int) int {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(n-1))
}

// Start launches the goroutine that drives the wheel. Calling it again, or after Stop, does nothing.
func (w *Wheel) Start() {
	w.startOnce.Do(func() {
		if w.stopped.Load() {
			close(w.exited)
			return
		}
		go w.run()
	})
}

// Stop stops the wheel: timers still pending never fire and the wheel goroutine exits. It is
// idempotent, does not wait, and may be called from inside a callback. Timers armed afterwards
// never fire either.
func (w *Wheel) Stop() {
	w.stopOnce.Do(func() {
		w.stopped.Store(true)
		close(w.done)
	})
}

func (w *Wheel) run() {
	defer close(w.exited)
	// Start the ticker on a tick boundary: deadlines are rounded up to boundaries, so an unaligned
	// ticker would add up to one more tick of lateness.
	align := time.NewTimer(w.tick - time.Since(w.start)%w.tick)
	select {
	case <-w.done:
		align.Stop()
		return
	case <-align.C:
	}
	tk := time.NewTicker(w.tick)
	defer tk.Stop()
	for {
		// Derive the tick from the clock rather than counting ticker events: a Ticker drops
		// events when we fall behind, and every missed slot must still be visited.
		w.advanceTo(int64(time.Since(w.start) / w.tick))
		if w.stopped.Load() {
			return
		}
		select {
		case <-w.done:
			return
		case <-tk.C:
		}
	}
}

// advanceTo processes every tick up to and including target; wheel goroutine only.
func (w *Wheel) advanceTo(target int64) {
	for w.cur < target && !w.stopped.Load() {
		w.cur++
		for i := range w.shards {
			w.fire = w.shards[i].advance(w.cur, w.fire)
		}
		// Callbacks run with no lock held so that they can use the wheel themselves.
		for _, f := range w.fire {
			if w.stopped.Load() {
				break
			}
			f()
		}
		clear(w.fire) // drop references so fired closures can be collected
		w.fire = w.fire[:0]
	}
}

// advance moves the shard to tick k and appends the callbacks now due to fire.
func (s *shard) advance(k int64, fire []func()) []func() {
	s.mu.Lock()
	s.cur = k
	for t := s.slots[k&s.w.mask]; t != nil; {
		next := t.next
		if t.rounds > 0 {
			t.rounds--
		} else {
			s.unlink(t)
			fire = append(fire, t.f)
		}
		t = next
	}
	s.mu.Unlock()
	return fire
}

// due returns the first tick at which a timer armed now for d may fire without being early.
func (w *Wheel) due(d time.Duration) int64 {
	at := time.Since(w.start)
	d = max(d, 0)
	if lim := time.Duration(math.MaxInt64) - at - w.tick; d > lim {
		d = lim // ~292 years; avoids overflow below
	}
	return int64((at + d + w.tick - 1) / w.tick)
}

// pick spreads new timers over the shards; a per-thread random source avoids a shared counter.
func (w *Wheel) pick() *shard {
	return &w.shards[rand.Uint32()&w.smask]
}
