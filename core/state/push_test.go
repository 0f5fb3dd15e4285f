package state

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

func inflightSeqs(cs *connState) []uint64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var out []uint64
	for seq := range cs.inflight {
		out = append(out, seq)
	}
	slices.Sort(out)
	return out
}

func TestPushNumbersEachConnectionsDownlinks(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "a", "")
	ts.loginDevice(t, 2, testApp, "b", "")
	ctx := ctxT(t)
	for round := uint64(1); round <= 3; round++ {
		out := ts.push(ctx, testApp, ts.targetsOf(testApp, []string{"a", "nobody", "b"}), 100+round, []byte("hi"), stage.AtLeastOnce, false, within)
		want := []struct {
			did    string
			conn   int64
			status api.PushStatus
			seq    int64
		}{{"a", 1, api.PushStatus_SENT, int64(round)}, {"nobody", 0, api.PushStatus_OFFLINE, 0}, {"b", 2, api.PushStatus_SENT, int64(round)}}
		for i, w := range want {
			got := out[i]
			if got.Did != w.did || got.ConnId != w.conn || got.Status != w.status || got.Seq != w.seq {
				t.Errorf("round %d target %d = %+v, want %+v", round, i, got, w)
			}
		}
	}
	frames := untilFrames(t, ts.gw, 1, 3, "a's downlinks", func(f *fleet.DownFrame) bool { return protocol.Signal(f.Signal) == protocol.SigDownlink })
	for i, f := range frames {
		var dl protocol.Downlink
		if err := dl.Decode(f.Body); err != nil {
			t.Fatal(err)
		}
		if f.Seq != int64(i+1) || dl.MsgID != uint64(101+i) || string(dl.Payload) != "hi" || f.Action != fleet.DownAction_SEND {
			t.Errorf("downlink %d: seq %d msg %d payload %q action %v", i, f.Seq, dl.MsgID, dl.Payload, f.Action)
		}
	}
	if got := inflightSeqs(ts.conns.byDID(testApp, "a")); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Errorf("a's downlinks in flight = %v, want 1 2 3", got)
	}
}

func TestPushWaitsForTheDevicesACK(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "a", "")
	ts.loginDevice(t, 2, testApp, "b", "")
	done := make(chan []*api.PushTarget, 1)
	go func() {
		done <- ts.push(context.Background(), testApp, ts.targetsOf(testApp, []string{"a", "b", "nobody"}), 7, []byte("x"), stage.AtLeastOnce, true, within)
	}()
	untilFrame(t, ts.gw, 1, protocol.SigDownlink, 1)
	untilFrame(t, ts.gw, 2, protocol.SigDownlink, 1)
	ts.deliver(t, testGW, frameEvent(1, protocol.SigDownlinkAck, 1, nil), frameEvent(2, protocol.SigDownlinkAck, 1, nil))
	var out []*api.PushTarget
	select {
	case out = <-done:
	case <-time.After(within):
		t.Fatal("Push with wait_ack did not return once every target ACKed")
	}
	if out[0].Status != api.PushStatus_ACKED || out[1].Status != api.PushStatus_ACKED || out[2].Status != api.PushStatus_OFFLINE {
		t.Errorf("statuses %v %v %v, want ACKED ACKED OFFLINE", out[0].Status, out[1].Status, out[2].Status)
	}
	if n := len(inflightSeqs(ts.conns.byDID(testApp, "a"))); n != 0 {
		t.Errorf("%d downlinks still in flight after the ACK", n)
	}
	if ts.Stats().DownlinkAcks != 2 {
		t.Errorf("DownlinkAcks = %d, want 2", ts.Stats().DownlinkAcks)
	}
}

func TestPushReportsTimeoutForADeviceThatNeverACKs(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "a", "")
	out := ts.push(ctxT(t), testApp, ts.targetsOf(testApp, []string{"a"}), 7, nil, stage.AtLeastOnce, true, time.Millisecond)
	if out[0].Status != api.PushStatus_TIMEOUT || out[0].Seq != 1 {
		t.Errorf("target = %+v, want TIMEOUT with seq 1", out[0])
	}
	// Without wait_ack the same downlink is just SENT, and stays in flight for the retransmit stage.
	out = ts.push(ctxT(t), testApp, ts.targetsOf(testApp, []string{"a"}), 8, nil, stage.AtLeastOnce, false, time.Millisecond)
	if out[0].Status != api.PushStatus_SENT {
		t.Errorf("without wait_ack: %v, want SENT", out[0].Status)
	}
}

func TestPushRunsEachDownlinkThroughThePipeline(t *testing.T) {
	ts := newTestServer(t)
	var seen []stage.Event
	ts.UsePipeline(pipeFunc(func(ev stage.Event, done func(pipeline.Outcome)) error {
		if ev.Signal != stage.SignalDownlink {
			done(pipeline.Outcome{})
			return nil
		}
		seen = append(seen, ev)
		if ev.Conn.DID == "b" {
			done(pipeline.Outcome{Verdict: stage.Reject, Code: 2001, Message: "muted", Stage: "filter"})
			return nil
		}
		done(pipeline.Outcome{Payload: []byte("rewritten")})
		return nil
	}))
	ts.loginDevice(t, 1, testApp, "a", "")
	b := ts.loginDevice(t, 2, testApp, "b", "")
	out := ts.push(ctxT(t), testApp, ts.targetsOf(testApp, []string{"a", "b"}), 9, []byte("orig"), stage.AtMostOnce, false, within)
	if out[0].Status != api.PushStatus_SENT {
		t.Errorf("a: %v, want SENT", out[0].Status)
	}
	if out[1].Status != api.PushStatus_REJECTED || out[1].Code != 2001 || out[1].Message != "filter: muted" {
		t.Errorf("b: %+v, want REJECTED 2001 \"filter: muted\"", out[1])
	}
	if len(seen) != 2 || seen[0].MsgID != 9 || seen[0].Seq != 1 || seen[0].QoS != stage.AtMostOnce || string(seen[0].Payload) != "orig" {
		t.Errorf("the stage saw %+v", seen)
	}
	if n := len(inflightSeqs(b)); n != 0 {
		t.Errorf("a rejected downlink stays in flight (%d)", n)
	}
	f := untilFrame(t, ts.gw, 1, protocol.SigDownlink, 1)
	var dl protocol.Downlink
	if err := dl.Decode(f.Body); err != nil || string(dl.Payload) != "rewritten" {
		t.Errorf("a got payload %q (%v), want the stage's rewrite", dl.Payload, err)
	}
	if ts.Stats().PipelineRejected != 1 {
		t.Errorf("PipelineRejected = %d, want 1", ts.Stats().PipelineRejected)
	}
}

func TestPushToAGatewayThatCannotTakeItFails(t *testing.T) {
	ts := newTestServer(t)
	a := ts.loginDevice(t, 1, testApp, "a", "")
	l, _ := ts.gateways.Get(testGW)
	_ = l.batch.Close(ctxT(t)) // every Add fails from now on, as a full queue does
	out := ts.push(ctxT(t), testApp, ts.targetsOf(testApp, []string{"a"}), 1, nil, stage.AtLeastOnce, false, within)
	if out[0].Status != api.PushStatus_FAILED {
		t.Errorf("status %v, want FAILED", out[0].Status)
	}
	if n := len(inflightSeqs(a)); n != 0 {
		t.Error("a downlink that never left is still in flight")
	}
}

func TestPushSkipsAConnectionThatIsClosing(t *testing.T) {
	ts := newTestServer(t)
	a := ts.loginDevice(t, 1, testApp, "a", "")
	a.mu.Lock()
	a.closed = true // its disconnect is in the pipeline: still indexed, not to be written to
	a.mu.Unlock()
	out := ts.push(ctxT(t), testApp, ts.targetsOf(testApp, []string{"a"}), 1, nil, stage.AtLeastOnce, false, within)
	if out[0].Status != api.PushStatus_OFFLINE || out[0].Seq != 0 {
		t.Errorf("target %+v, want OFFLINE without a seq", out[0])
	}
}

func TestInflightEvictsTheOldestUnACKedFirst(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxInflight = 3 })
	cs := ts.loginDevice(t, 1, testApp, "a", "")
	track := func() uint64 {
		seq, tr := ts.track(cs, 1, nil, stage.AtLeastOnce, nil, 0)
		if tr != trackSent {
			t.Fatal("track refused a logged-in connection")
		}
		return seq
	}
	for range 5 {
		track()
	}
	if got := inflightSeqs(cs); !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Fatalf("in flight %v, want the newest 3", got)
	}
	if n := ts.Stats().InflightEvicted; n != 2 {
		t.Fatalf("evicted %d, want 2", n)
	}
	// An ACK out of order: 4 leaves, 3 (older) stays the next to go.
	ts.downlinkAck(cs, 4)
	ts.downlinkAck(cs, 1) // already evicted: ignored
	track()               // 6: room for it
	track()               // 7: evicts 3
	track()               // 8: evicts 5, the oldest still unACKed (4 was ACKed)
	if got := inflightSeqs(cs); !slices.Equal(got, []uint64{6, 7, 8}) {
		t.Errorf("in flight %v, want 6 7 8", got)
	}
	// Evicted counts downlinks forgotten unACKed: 1, 2, 3 and 5; never the ACKed 4.
	if n := ts.Stats().InflightEvicted; n != 4 {
		t.Errorf("evicted %d, want 4", n)
	}
	if n := ts.Stats().DownlinkAcks; n != 1 {
		t.Errorf("DownlinkAcks %d, want 1 (the ACK of an evicted downlink is not one)", n)
	}
}

func TestInflightOrderStaysBoundedForADeviceThatACKs(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxInflight = 4 })
	cs := ts.loginDevice(t, 1, testApp, "a", "")
	for range 1000 {
		seq, _ := ts.track(cs, 1, nil, stage.AtLeastOnce, nil, 0)
		ts.downlinkAck(cs, seq)
	}
	cs.mu.Lock()
	n, m := len(cs.order), len(cs.inflight)
	cs.mu.Unlock()
	if n > 2*4+1 || m != 0 {
		t.Errorf("after 1000 ACKed downlinks: order holds %d, inflight %d", n, m)
	}
	if ts.Stats().InflightEvicted != 0 {
		t.Errorf("ACKed downlinks were counted as evicted: %d", ts.Stats().InflightEvicted)
	}
}
