package state

import (
	"testing"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// A batch's request carries its items in order, comes back empty, and, once the pool holds one,
// costs no allocation.
func TestCallBuffersAreReusedAndCarryTheItems(t *testing.T) {
	evs := []*api.Event{{Did: "a"}, {Did: "b"}, {Did: "c"}}
	items := []bizItem{{ev: evs[0]}, {ev: evs[1]}, {ev: evs[2]}}
	var bc bizCalls
	for _, n := range []int{3, 1, 2} {
		call := bc.get(items[:n])
		if len(call.req.Events) != n || len(call.events) != n {
			t.Fatalf("request of %d items has %d events (slice %d)", n, len(call.req.Events), len(call.events))
		}
		for i := range n {
			if call.req.Events[i] != evs[i] {
				t.Errorf("event %d is %v, want %v", i, call.req.Events[i], evs[i])
			}
		}
		bc.put(call)
		if len(call.events) != 0 || call.req.Events != nil || cap(call.events) > 0 && call.events[:1][0] != nil {
			t.Errorf("a request put back still holds events: %v %v", call.events, call.req.Events)
		}
	}

	frames := []*fleet.DownFrame{{ConnId: 1}, {ConnId: 2}}
	downs := []downItem{{f: frames[0]}, {f: frames[1]}}
	var pc pushCalls
	call := pc.get(downs, "s1", "proof")
	if len(call.req.Frames) != 2 || call.req.Frames[1] != frames[1] || call.req.StateId != "s1" || call.req.Proof != "proof" {
		t.Fatalf("push request %+v", call.req)
	}
	pc.put(call)
	if call.req.Frames != nil || call.req.StateId != "" || cap(call.frames) > 0 && call.frames[:1][0] != nil {
		t.Errorf("a push request put back still holds frames: %+v", call.req)
	}

	if raceEnabled {
		return
	}
	if n := testing.AllocsPerRun(100, func() { bc.put(bc.get(items)) }); n != 0 {
		t.Errorf("a Deliver request costs %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { pc.put(pc.get(downs, "s1", "proof")) }); n != 0 {
		t.Errorf("a Push request costs %v allocations, want 0", n)
	}
}
