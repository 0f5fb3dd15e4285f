package batch

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
)

// benchAdd runs add b.N times in total against a Batcher with a no-op send and default Config
// except for lanes, and reports the average batch size and how often Add met backpressure.
func benchAdd(b *testing.B, lanes int, parallel bool) {
	var batches atomic.Int64
	bt := New(Config{Lanes: lanes}, func(_ context.Context, items []uint64) { batches.Add(1) })
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

// BenchmarkAdd is Add throughput into one lane from one goroutine; allocs/op is per item.
func BenchmarkAdd(b *testing.B) { benchAdd(b, 1, false) }

// BenchmarkAddParallel is Add throughput from GOMAXPROCS goroutines over the default 4 lanes.
func BenchmarkAddParallel(b *testing.B) { benchAdd(b, 4, true) }

// BenchmarkAddParallelOneLane is the worst case: every producer contends on one lane.
func BenchmarkAddParallelOneLane(b *testing.B) { benchAdd(b, 1, true) }
