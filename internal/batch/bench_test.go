package batch

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// modes are the two ways a lane treats a first item: natural batching (the default) and the
// 500µs linger Plato used before it (docs/adr/0010-natural-batching.md).
var modes = []struct {
	name  string
	delay time.Duration
}{{"natural", 0}, {"linger", 500 * time.Microsecond}}

// benchAdd runs add b.N times in total against a Batcher with a no-op send and default Config
// except for lanes and delay, and reports the average batch size and how often Add met
// backpressure.
func benchAdd(b *testing.B, lanes int, parallel bool, delay time.Duration) {
	var batches atomic.Int64
	bt := New(Config{Lanes: lanes, MaxDelay: delay}, func(_ context.Context, items []uint64) { batches.Add(1) })
	var full atomic.Int64
	add := func(key, v uint64) {
		for bt.Add(key, v) != nil { // ErrFull: the lane goroutine is behind; let it run
			full.Add(1)
			runtime.Gosched()
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		var keys atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			key := keys.Add(1) // one ordered stream per goroutine, like one connection
			var i uint64
			for pb.Next() {
				add(key, i)
				i++
			}
		})
	} else {
		for i := range uint64(b.N) {
			add(0, i)
		}
	}
	b.StopTimer()
	if err := bt.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	if n := batches.Load(); n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "items/batch")
	}
	b.ReportMetric(float64(full.Load())/float64(b.N), "full/op")
}

// forModes runs f once per mode, as sub-benchmarks named after it.
func forModes(b *testing.B, f func(b *testing.B, delay time.Duration)) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) { f(b, m.delay) })
	}
}

// BenchmarkAdd is Add throughput into one lane from one goroutine; allocs/op is per item.
func BenchmarkAdd(b *testing.B) {
	forModes(b, func(b *testing.B, d time.Duration) { benchAdd(b, 1, false, d) })
}

// BenchmarkAddParallel is Add throughput from GOMAXPROCS goroutines over the default 4 lanes.
func BenchmarkAddParallel(b *testing.B) {
	forModes(b, func(b *testing.B, d time.Duration) { benchAdd(b, 4, true, d) })
}

// BenchmarkAddParallelOneLane is the worst case: every producer contends on one lane.
func BenchmarkAddParallelOneLane(b *testing.B) {
	forModes(b, func(b *testing.B, d time.Duration) { benchAdd(b, 1, true, d) })
}

// BenchmarkIdleHop is the time from Add to SendFunc for an item on an idle lane, one item at a
// time: what batching adds to a message's latency at a low rate (ns/op is that delay).
func BenchmarkIdleHop(b *testing.B) {
	forModes(b, func(b *testing.B, d time.Duration) {
		sent := make(chan struct{}, 1)
		bt := New(Config{Lanes: 1, MaxDelay: d}, func(context.Context, []int) { sent <- struct{}{} })
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if err := bt.Add(0, i); err != nil {
				b.Fatal(err)
			}
			<-sent
		}
		b.StopTimer()
		if err := bt.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
	})
}
