// Package gcfloor keeps the Go collector's heap goal at or above a floor.
//
// With GOGC at its default of 100 the collector runs each time the heap doubles over what was
// live. A Plato process that holds little (a thousand devices: a live heap of about 16 MB) but
// moves many messages then collects every half second or so, and each cycle marks for 10-12 ms
// on a 2-vCPU machine; the messages that arrive meanwhile make the tail of the latency
// (docs/performance.md, "What the Go runtime costs at these rates"). A floor lets a small heap
// grow to it before a collection, and changes nothing once what is live reaches half of it: a
// gateway of tens of thousands of devices keeps GOGC's headroom, and its memory per connection.
//
// It is the heap floor of bytedance/gopkg's gctuner, written here because gctuner reads the
// heap with runtime.ReadMemStats, which stops the world, at every cycle, and keeps its state in
// package variables; this reads runtime/metrics, and one process may start and stop its own.
package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// maxPercent bounds the GOGC the floor sets, so that a nearly empty heap (a process that just
// started) does not get an absurd one; 64 MiB over 64 KiB of live heap is 1,000 times.
const maxPercent = 100_000

// Floor is a running floor; Stop ends it.
type Floor struct {
	floor   uint64
	base    int // the GOGC the process had: the least the floor sets
	stopped atomic.Bool
	mu      sync.Mutex // one adjustment at a time (a cycle's and Stop's)
	set     int        // the GOGC last set
	sample  []metrics.Sample
}

// Start keeps the heap goal at or above floor bytes, from the end of the next collection on:
// after each cycle it sets GOGC so that the heap may grow to the floor, never below the GOGC the
// process had. A floor of 0 does nothing, and so does GOGC set in the environment: the
// operator's choice wins. The process's GOGC must not be changed by others meanwhile.
func Start(floor uint64) *Floor {
	f := &Floor{floor: floor, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/gogc:percent"}}}
	metrics.Read(f.sample[1:])
	f.base = int(f.sample[1].Value.Uint64())
	f.set = f.base
	if floor == 0 || f.base <= 0 || os.Getenv("GOGC") != "" { // f.base <= 0: GOGC=off
		f.stopped.Store(true)
		return f
	}
	arm(f)
	return f
}

// sentinel is garbage whose finalizer runs once per collection that found it unreachable, and
// makes the next one: the hook the runtime offers for "a cycle ended".
type sentinel struct{ f *Floor }

func arm(f *Floor) {
	s := &sentinel{f: f}
	runtime.SetFinalizer(s, func(s *sentinel) {
		if s.f.stopped.Load() {
			return
		}
		s.f.adjust()
		arm(s.f)
	})
}

// adjust sets GOGC for the heap live at the end of the last cycle. It runs on the runtime's
// finalizer goroutine, so it must be quick and never block.
func (f *Floor) adjust() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped.Load() {
		return
	}
	metrics.Read(f.sample[:1])
	want := Percent(f.sample[0].Value.Uint64(), f.floor, f.base)
	// Small moves are not worth a call: the goal changes by less than 1/16.
	if d := want - f.set; d*16 > f.set || -d*16 > f.set {
		debug.SetGCPercent(want)
		f.set = want
	}
}

// Percent is the GOGC that lets a heap of live bytes grow to floor before the next collection,
// and never less than base.
func Percent(live, floor uint64, base int) int {
	if live == 0 || floor <= live {
		return base
	}
	p := (floor - live) * 100 / live
	if p > maxPercent {
		p = maxPercent
	}
	return max(int(p), base)
}

// Stop ends the floor and gives the process back the GOGC it had.
func (f *Floor) Stop() {
	if f.stopped.Swap(true) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.set != f.base {
		debug.SetGCPercent(f.base)
		f.set = f.base
	}
}
