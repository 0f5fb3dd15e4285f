package gcfloor_test

import (
	"os"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/gcfloor"
	"github.com/platoim/plato/sdk/poll"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, floor uint64
		base, want  int
	}{
		{16 * mib, 64 * mib, 100, 300},   // grows to the floor: (64-16)/16
		{7 * mib, 16 * mib, 100, 128},    // rounds down: (16-7)/7
		{32 * mib, 64 * mib, 100, 100},   // doubling reaches the floor already
		{80 * mib, 64 * mib, 100, 100},   // over the floor: GOGC as it was
		{16 * mib, 64 * mib, 400, 400},   // never below the process's own
		{0, 64 * mib, 100, 100},          // nothing measured yet
		{16 * mib, 0, 100, 100},          // no floor
		{1, 64 * mib, 100, 100_000},      // bounded
		{1 << 30, 1 << 40, 100, 100_000}, // large numbers do not overflow
	} {
		if got := gcfloor.Percent(c.live, c.floor, c.base); got != c.want {
			t.Errorf("Percent(live %d, floor %d, base %d) = %d, want %d", c.live, c.floor, c.base, got, c.want)
		}
	}
}

func read(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// A small heap may grow to the floor before it is collected; a heap with more live than half the
// floor keeps the process's GOGC; Stop gives it back.
func TestFloorRaisesTheGoalOfASmallHeapOnly(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set in the environment, which turns the floor off")
	}
	const floor = 256 << 20
	f := gcfloor.Start(floor)
	defer f.Stop()
	poll.Until(t, "GOGC raised for a small heap", func() bool {
		runtime.GC()
		return read("/gc/gogc:percent") > 100
	})
	runtime.GC()
	if goal := read("/gc/heap/goal:bytes"); goal < floor*9/10 {
		t.Errorf("heap goal %d B with a floor of %d B", goal, floor)
	}

	// Keep more than half the floor live: doubling reaches it, GOGC goes back to the process's.
	big := make([][]byte, 160)
	for i := range big {
		big[i] = make([]byte, 1<<20)
	}
	poll.Until(t, "GOGC back to 100 with 160 MiB live", func() bool {
		runtime.GC()
		return read("/gc/gogc:percent") == 100
	})
	runtime.KeepAlive(big)
	big = nil

	poll.Until(t, "GOGC raised again once the heap is small", func() bool {
		runtime.GC()
		return read("/gc/gogc:percent") > 100
	})
	f.Stop()
	if p := read("/gc/gogc:percent"); p != 100 {
		t.Errorf("GOGC %d after Stop, want the process's 100", p)
	}
	runtime.GC()
	runtime.GC()
	if p := read("/gc/gogc:percent"); p != 100 {
		t.Errorf("GOGC %d after Stop and two cycles: the floor still adjusts it", p)
	}
}

// A floor of 0 leaves GOGC alone.
func TestZeroFloorDoesNothing(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set in the environment: the test expects Go's default")
	}
	f := gcfloor.Start(0)
	defer f.Stop()
	for range 5 { // finalizers run on their own goroutine: give one time to run
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if p := read("/gc/gogc:percent"); p != 100 {
		t.Errorf("GOGC %d with a floor of 0, want 100", p)
	}
}

// GOGC set in the environment is the operator's choice: the floor leaves it alone.
func TestGOGCInTheEnvironmentTurnsItOff(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set in the environment already")
	}
	t.Setenv("GOGC", "100")
	f := gcfloor.Start(256 << 20)
	defer f.Stop()
	for range 5 { // finalizers run on their own goroutine: give one time to run
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if p := read("/gc/gogc:percent"); p != 100 {
		t.Errorf("GOGC %d with GOGC=100 in the environment, want 100", p)
	}
}
