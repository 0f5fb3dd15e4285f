package state

import (
	"context"
	"testing"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

func heartbeatAcksIn(frames []*fleet.DownFrame) map[int64][]int64 {
	got := map[int64][]int64{}
	for _, f := range frames {
		if protocol.Signal(f.Signal) == protocol.SigHeartbeatAck && f.Action == fleet.DownAction_SEND {
			got[f.ConnId] = append(got[f.ConnId], f.Seq)
		}
	}
	return got
}

func pushedHeartbeatAcks(fg *fakeGateway, connID uint64) []*fleet.DownFrame {
	return fg.framesOf(connID, func(f *fleet.DownFrame) bool { return protocol.Signal(f.Signal) == protocol.SigHeartbeatAck })
}

// No stage acts on heartbeats: the answers are decided in the call and ride its reply, beside the
// UplinkAcks of the same call, and no Push carries them.
func TestHeartbeatAcksComeBackInTheDeliverReply(t *testing.T) {
	ts := newTestServer(t, withAckWait(poll.Timeout))
	cs := ts.loginDevice(t, 1, testApp, "a", "")
	ts.loginDevice(t, 2, testApp, "b", "")
	before := cs.lastSeen.Load()
	resp := ts.deliverReplying(t,
		frameEvent(1, protocol.SigHeartbeat, 40, nil),
		frameEvent(2, protocol.SigUplink, 2, []byte("x")),
		frameEvent(2, protocol.SigHeartbeat, 9, nil),
		frameEvent(1, protocol.SigHeartbeat, 41, nil))
	got := heartbeatAcksIn(resp.Acks)
	if len(got[1]) != 2 || got[1][0] != 40 || got[1][1] != 41 || len(got[2]) != 1 || got[2][0] != 9 {
		t.Fatalf("HeartbeatAcks in the reply %v, want conn 1: [40 41], conn 2: [9]", got)
	}
	if len(resp.Acks) != 4 {
		t.Errorf("reply has %d frames, want 3 HeartbeatAcks and 1 UplinkAck", len(resp.Acks))
	}
	if r, p := ts.metrics.hbAckPaths[ackByReply].Load(), ts.metrics.hbAckPaths[ackByPush].Load(); r != 3 || p != 0 {
		t.Errorf("heartbeat ack paths reply %d push %d, want 3 and 0", r, p)
	}
	if r := ts.metrics.ackPaths[ackByReply].Load(); r != 1 {
		t.Errorf("UplinkAcks in the reply %d, want 1", r)
	}
	if cs.lastSeen.Load() < before {
		t.Error("a heartbeat did not refresh the connection's last-seen time")
	}
	// A frame queued for Push would be there by now: the uplink's CONNECTED and UPLINK went to the
	// business and came back, and frames leave the fake gateway's batcher at once.
	ts.deliver(t, testGW, frameEvent(1, protocol.SigHeartbeat, 42, nil))
	untilFrame(t, ts.gw, 1, protocol.SigHeartbeatAck, 42)
	if n := len(pushedHeartbeatAcks(ts.gw, 1)) + len(pushedHeartbeatAcks(ts.gw, 2)); n != 1 {
		t.Errorf("%d HeartbeatAcks went by Push, want only the one of the call that did not ask", n)
	}
}

// A gateway of an earlier version does not read answers in the reply: its heartbeats are
// answered by Push, as before.
func TestACallerThatDoesNotAskGetsItsHeartbeatAcksByPush(t *testing.T) {
	ts := newTestServer(t, withAckWait(poll.Timeout))
	ts.loginDevice(t, 1, testApp, "a", "")
	resp, err := (&handler{ts.Server}).Deliver(context.Background(), &fleet.DeliverRequest{
		GatewayId: testGW, Events: []*fleet.UpEvent{frameEvent(1, protocol.SigHeartbeat, 77, nil)},
	})
	if err != nil || len(resp.Acks) != 0 {
		t.Fatalf("Deliver without acks_in_reply: %+v, %v; want no acks in the reply", resp, err)
	}
	untilFrame(t, ts.gw, 1, protocol.SigHeartbeatAck, 77)
	if r, p := ts.metrics.hbAckPaths[ackByReply].Load(), ts.metrics.hbAckPaths[ackByPush].Load(); r != 0 || p != 1 {
		t.Errorf("heartbeat ack paths reply %d push %d, want 0 and 1", r, p)
	}
}

// A stage acts on heartbeats. Decided while the call is open (the stage answers at once), the
// answer rides the reply; decided after the call is done (a slower stage: heartbeats never hold a
// call), it goes by Push.
func TestAHeartbeatStageDecidesTheRoad(t *testing.T) {
	ts := newTestServer(t, withAckWait(poll.Timeout))
	ts.loginDevice(t, 1, testApp, "a", "")
	ts.UsePipeline(pipeFunc(func(ev stage.Event, done func(pipeline.Outcome)) error {
		done(pipeline.Outcome{})
		return nil
	}))
	if got := heartbeatAcksIn(ts.deliverReplying(t, frameEvent(1, protocol.SigHeartbeat, 5, nil)).Acks); len(got[1]) != 1 || got[1][0] != 5 {
		t.Fatalf("HeartbeatAcks in the reply %v, want conn 1: [5]", got)
	}

	l := &lane{decide: func(stage.Event) pipeline.Outcome { return pipeline.Outcome{} }}
	ts.UsePipeline(l)
	var resp *fleet.DeliverResponse
	select {
	case resp = <-ts.deliverAsync(t, frameEvent(1, protocol.SigHeartbeat, 6, nil)):
	case <-time.After(poll.Timeout):
		l.drain()
		t.Fatal("the Deliver call waited for a heartbeat's stages")
	}
	if len(resp.Acks) != 0 {
		t.Fatalf("reply %+v, want no acks: the stage has not decided", resp)
	}
	l.drain()
	untilFrame(t, ts.gw, 1, protocol.SigHeartbeatAck, 6)
	if r, p := ts.metrics.hbAckPaths[ackByReply].Load(), ts.metrics.hbAckPaths[ackByPush].Load(); r != 1 || p != 1 {
		t.Errorf("heartbeat ack paths reply %d push %d, want 1 and 1", r, p)
	}
}

// A heartbeat stage decides while the call is held for an uplink of the same call: the
// HeartbeatAck rides the reply beside the UplinkAck.
func TestAHeartbeatDecidedWhileTheCallIsHeldRidesTheReply(t *testing.T) {
	ts := newTestServer(t, withAckWait(poll.Timeout))
	ts.loginDevice(t, 1, testApp, "a", "")
	untilEvents(t, ts.biz, api.EventKind_CONNECTED, "a", 1)
	gate := make(chan struct{})
	ts.biz.set(func(b *fakeBusiness) { b.gate = gate })
	l := &lane{decide: func(stage.Event) pipeline.Outcome { return pipeline.Outcome{} }}
	ts.UsePipeline(l)
	out := ts.deliverAsync(t, frameEvent(1, protocol.SigUplink, 2, []byte("x")), frameEvent(1, protocol.SigHeartbeat, 8, nil))
	poll.Until(t, "the uplink and the heartbeat in the pipeline lane", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.queued) == 2
	})
	l.drain() // the uplink goes to the business (held at the gate), the heartbeat is answered
	close(gate)
	var resp *fleet.DeliverResponse
	select {
	case resp = <-out:
	case <-time.After(poll.Timeout):
		t.Fatal("the Deliver call did not return once the business answered")
	}
	if hb := heartbeatAcksIn(resp.Acks); len(hb[1]) != 1 || hb[1][0] != 8 || len(resp.Acks) != 2 {
		t.Fatalf("reply %v, want the UplinkAck of 2 and the HeartbeatAck of 8", resp.Acks)
	}
	if r, p := ts.metrics.hbAckPaths[ackByReply].Load(), ts.metrics.hbAckPaths[ackByPush].Load(); r != 1 || p != 0 {
		t.Errorf("heartbeat ack paths reply %d push %d, want 1 and 0", r, p)
	}
}
