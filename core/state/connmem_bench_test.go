package state

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// BenchmarkConnRecordHeap measures the heap the state server keeps per logged-in connection in its
// connection table: the record and its route, its entries by key, did and uid, and the strings of
// its identity, made as a Login event's are (each its own allocation). What a connection holds
// while it talks (timers, downlinks in flight) is not in it. docs/performance.md quotes it:
//
//	go test -run '^$' -bench ConnRecordHeap -benchtime 1x -count 3 ./core/state/
func BenchmarkConnRecordHeap(b *testing.B) {
	for range b.N {
		const n = 20000
		c := newConns()
		keep := make([]*connState, 0, n)
		before := liveHeapOf()
		for i := range n {
			did := "bench-1764912345-" + strconv.Itoa(i)
			cs := newConnState(connKey{gw: "gw-1", id: uint64(i + 1)}, strings.Clone("bench"), did, strings.Clone(did), "127.0.0.2:40000", nil)
			if !c.addPending(cs) {
				b.Fatal("key taken")
			}
			c.activate(cs)
			keep = append(keep, cs)
		}
		b.ReportMetric(float64(liveHeapOf()-before)/n, "heap-B/conn")
		runtime.KeepAlive(keep)
		runtime.KeepAlive(c)
	}
}

func liveHeapOf() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestConnStateStaysSmall pins the size of the state server's record of a connection: in the
// 288-byte size class (352 before what a parked connection keeps moved to parkState). A field
// added to it must fit there, or go where it is used only at times, or the figure in
// docs/performance.md moves.
func TestConnStateStaysSmall(t *testing.T) {
	if s := unsafe.Sizeof(connState{}); s > 288 {
		t.Fatalf("connState is %d bytes, want at most 288", s)
	}
}
