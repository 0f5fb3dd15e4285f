package state

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// heldLane is a Pipeline whose app listens to downlinks while listening is set (a reload flips
// it). It holds every downlink it is given until release, as a busy lane does, and answers the
// other signals at once.
type heldLane struct {
	listening atomic.Bool
	mu        sync.Mutex
	held      []func(pipeline.Outcome)
	seen      []uint64 // msg IDs of the downlinks run through it
}

func (h *heldLane) Run(ev stage.Event, done func(pipeline.Outcome)) error {
	if ev.Signal != stage.SignalDownlink {
		done(pipeline.Outcome{})
		return nil
	}
	h.mu.Lock()
	h.held = append(h.held, done)
	h.seen = append(h.seen, ev.MsgID)
	h.mu.Unlock()
	return nil
}

func (h *heldLane) RunReserved(ev stage.Event, done func(pipeline.Outcome)) error {
	return h.Run(ev, done)
}

func (h *heldLane) Listens(_ string, sig stage.Signal) bool {
	return sig == stage.SignalDownlink && h.listening.Load()
}

func (h *heldLane) release() {
	h.mu.Lock()
	held := h.held
	h.held = nil
	h.mu.Unlock()
	for _, done := range held {
		done(pipeline.Outcome{})
	}
}

func (h *heldLane) seenIDs() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]uint64(nil), h.seen...)
}

// A downlink no stage listens to skips the pipeline lane, but never overtakes one of its
// connection still in the lane from before a reload removed the stage.
func TestDownlinkSkipsTheLaneOnlyBehindAnEmptyOne(t *testing.T) {
	ts := newTestServer(t)
	lane := &heldLane{}
	lane.listening.Store(true)
	ts.UsePipeline(lane)
	ts.loginDevice(t, 1, testApp, "a", "")
	cs := ts.conns.byDID(testApp, "a")
	isDownlink := func(f *fleet.DownFrame) bool { return protocol.Signal(f.Signal) == protocol.SigDownlink }

	wait1 := ts.pushStart(testApp, ts.targetsOf(testApp, []string{"a"}), 1, []byte("one"), stage.AtMostOnce, false, within)
	lane.listening.Store(false) // the reload: no stage listens any more
	wait2 := ts.pushStart(testApp, ts.targetsOf(testApp, []string{"a"}), 2, []byte("two"), stage.AtMostOnce, false, within)
	if got := lane.seenIDs(); len(got) != 2 || got[1] != 2 {
		t.Fatalf("downlinks run through the lane: %v, want 1 2 (the second queues behind the first)", got)
	}
	if n := len(ts.gw.framesOf(1, isDownlink)); n != 0 {
		t.Fatalf("%d downlinks sent while the first was still in the lane", n)
	}
	lane.release()
	wait1(ctxT(t))
	wait2(ctxT(t))

	// The lane is empty now: the next downlink is sent without it.
	out := ts.push(ctxT(t), testApp, ts.targetsOf(testApp, []string{"a"}), 3, []byte("three"), stage.AtMostOnce, false, within)
	if got := lane.seenIDs(); len(got) != 2 {
		t.Errorf("downlinks run through the lane: %v, want only 1 2", got)
	}
	if out[0].Seq != 3 {
		t.Errorf("third downlink: %+v, want seq 3", out[0])
	}
	frames := untilFrames(t, ts.gw, 1, 3, "a's downlinks", isDownlink)
	for i, f := range frames {
		var dl protocol.Downlink
		if err := dl.Decode(f.Body); err != nil {
			t.Fatal(err)
		}
		if f.Seq != int64(i+1) || dl.MsgID != uint64(i+1) {
			t.Errorf("downlink %d: seq %d msg %d, want %d %d", i, f.Seq, dl.MsgID, i+1, i+1)
		}
	}
	cs.mu.Lock()
	n := cs.laneDownlinks
	cs.mu.Unlock()
	if n != 0 {
		t.Errorf("laneDownlinks = %d after the lane emptied, want 0", n)
	}
}
