package timewheel

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func nop() {}

// BenchmarkAfterFuncStop is the cost of arming and disarming one timer (one 48-byte allocation).
func BenchmarkAfterFuncStop(b *testing.B) {
	w := New(100*time.Millisecond, 512)
	b.ReportAllocs()
	for b.Loop() {
		w.AfterFunc(30*time.Second, nop).Stop()
	}
}

// BenchmarkResetParallel is the idle-timeout hot path: every goroutine resets its own connections'
// timers. "same" resets to a deadline in the tick the timer already waits for (the common case
// when messages arrive faster than the tick); "move" alternates deadlines so every Reset relinks.
// shards=1 is the single-mutex design, kept for comparison.
func BenchmarkResetParallel(b *testing.B) {
	for _, shards := range []int{1, runtime.GOMAXPROCS(0) * 4} {
		for _, mode := range []string{"same", "move"} {
			b.Run(fmt.Sprintf("shards=%d/%s", shards, mode), func(b *testing.B) {
				w := newWheel(100*time.Millisecond, 512, shards)
				w.Start()
				defer w.Stop()
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					const conns = 1024
					ts := make([]*Timer, conns)
					for i := range ts {
						ts[i] = w.AfterFunc(time.Hour, nop)
					}
					d := [2]time.Duration{30 * time.Second, 60 * time.Second}
					i := 0
					for pb.Next() {
						if mode == "same" {
							ts[i%conns].Reset(time.Hour)
						} else {
							ts[i%conns].Reset(d[(i/conns)&1])
						}
						i++
					}
				})
			})
		}
	}
}

// BenchmarkTick1M is the cost of one tick of the wheel goroutine with 1,000,000 pending timers
// spread over many rotations (about 1M/512 of them visited per tick). Timers that fire re-arm
// themselves so the population stays at a million.
func BenchmarkTick1M(b *testing.B) {
	const n = 1_000_000
	w := newWheel(time.Hour, 512, runtime.GOMAXPROCS(0)*4) // never started: advanced by hand
	var fired atomic.Int64
	for i := range n {
		var t *Timer
		// Deadlines cover 8 rotations; the callback re-arms 8 rotations ahead.
		t = w.AfterFunc(hourDue(1+i%(8*512)), func() {
			fired.Add(1)
			t.s.mu.Lock()
			t.s.link(t, w.cur+8*512)
			t.s.mu.Unlock()
		})
	}
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w.advanceTo(w.cur + 1)
	}
	b.ReportMetric(float64(fired.Load())/float64(b.N), "fired/tick")
}
