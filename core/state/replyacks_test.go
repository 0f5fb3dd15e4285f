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

// deliverReplying hands events over as a gateway that reads answers in the reply does.
func (ts *testServer) deliverReplying(t testing.TB, evs ...*fleet.UpEvent) *fleet.DeliverResponse {
	t.Helper()
	resp, err := (&handler{ts.Server}).Deliver(context.Background(), &fleet.DeliverRequest{GatewayId: testGW, Events: evs, AcksInReply: true})
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	reuse(evs)
	return resp
}

// deliverAsync runs deliverReplying in the background; the channel gets its reply.
func (ts *testServer) deliverAsync(t testing.TB, evs ...*fleet.UpEvent) <-chan *fleet.DeliverResponse {
	out := make(chan *fleet.DeliverResponse, 1)
	go func() {
		resp, err := (&handler{ts.Server}).Deliver(context.Background(), &fleet.DeliverRequest{GatewayId: testGW, Events: evs, AcksInReply: true})
		if err != nil {
			t.Errorf("Deliver: %v", err)
		}
		reuse(evs)
		out <- resp
	}()
	return out
}

func uplinkAcksOf(t testing.TB, frames []*fleet.DownFrame) (seqs []int64, codes []protocol.Code) {
	t.Helper()
	for _, f := range frames {
		if protocol.Signal(f.Signal) != protocol.SigUplinkAck || f.Action != fleet.DownAction_SEND {
			t.Fatalf("frame %+v in a reply, want only UplinkAcks", f)
		}
		seqs = append(seqs, f.Seq)
		codes = append(codes, decodeAck(t, f).Code)
	}
	return seqs, codes
}

func pushedAcks(fg *fakeGateway, connID uint64) []*fleet.DownFrame {
	return fg.framesOf(connID, func(f *fleet.DownFrame) bool { return protocol.Signal(f.Signal) == protocol.SigUplinkAck })
}

func withAckWait(d time.Duration) func(*Config) { return func(c *Config) { c.UplinkAckWait = d } }

func TestUplinkAcksComeBackInTheDeliverReply(t *testing.T) {
	ts := newTestServer(t, withAckWait(poll.Timeout))
	ts.loginDevice(t, 1, testApp, "a", "")
	ts.loginDevice(t, 2, testApp, "b", "")
	resp := ts.deliverReplying(t,
		frameEvent(1, protocol.SigUplink, 2, []byte("x")),
		frameEvent(2, protocol.SigUplink, 7, []byte("y")),
		frameEvent(1, protocol.SigUplink, 3, []byte("z")))
	got := map[int64][]int64{}
	for _, f := range resp.Acks {
		if c := decodeAck(t, f).Code; c != protocol.CodeOK {
			t.Errorf("ack %d of conn %d: code %d", f.Seq, f.ConnId, c)
		}
		got[f.ConnId] = append(got[f.ConnId], f.Seq)
	}
	if len(got[1]) != 2 || got[1][0] != 2 || got[1][1] != 3 || len(got[2]) != 1 || got[2][0] != 7 {
		t.Fatalf("acks in the reply %v, want conn 1: [2 3], conn 2: [7]", got)
	}
	if n := len(pushedAcks(ts.gw, 1)) + len(pushedAcks(ts.gw, 2)); n != 0 {
		t.Errorf("%d UplinkAcks went by Push as well", n)
	}
	if r, p := ts.metrics.ackPaths[ackByReply].Load(), ts.metrics.ackPaths[ackByPush].Load(); r != 3 || p != 0 {
		t.Errorf("ack paths reply %d push %d, want 3 and 0", r, p)
	}
	cs := ts.conns.get(connKey{gw: testGW, id: 1})
	if cs.replyTo != nil || cs.upUnanswered != 0 || cs.pushAcks.Load() != 0 {
		t.Errorf("after the reply: replyTo %v, unanswered %d, pushAcks %d", cs.replyTo, cs.upUnanswered, cs.pushAcks.Load())
	}
}

func TestACallerThatDoesNotAskGetsItsAcksByPush(t *testing.T) {
	ts := newTestServer(t, withAckWait(poll.Timeout))
	ts.loginDevice(t, 1, testApp, "a", "")
	resp, err := (&handler{ts.Server}).Deliver(context.Background(), &fleet.DeliverRequest{
		GatewayId: testGW, Events: []*fleet.UpEvent{frameEvent(1, protocol.SigUplink, 2, []byte("x"))},
	})
	if err != nil || len(resp.Acks) != 0 {
		t.Fatalf("Deliver without acks_in_reply: %+v, %v; want no acks in the reply", resp, err)
	}
	untilFrame(t, ts.gw, 1, protocol.SigUplinkAck, 2)
}

func TestAnAckWaitOfZeroSendsEverythingByPush(t *testing.T) {
	ts := newTestServer(t, withAckWait(0))
	ts.loginDevice(t, 1, testApp, "a", "")
	if resp := ts.deliverReplying(t, frameEvent(1, protocol.SigUplink, 2, []byte("x"))); len(resp.Acks) != 0 {
		t.Fatalf("reply %+v, want no acks", resp)
	}
	untilFrame(t, ts.gw, 1, protocol.SigUplinkAck, 2)
}

// A business server slower than the wait: the call returns without its answer, which goes by Push.
func TestALateAnswerGoesByPush(t *testing.T) {
	ts := newTestServer(t, withAckWait(20*time.Millisecond))
	ts.loginDevice(t, 1, testApp, "a", "")
	gate := make(chan struct{})
	ts.biz.set(func(b *fakeBusiness) { b.gate = gate })
	var resp *fleet.DeliverResponse
	select {
	case resp = <-ts.deliverAsync(t, frameEvent(1, protocol.SigUplink, 2, []byte("x"))):
	case <-time.After(poll.Timeout):
		close(gate)
		t.Fatal("the Deliver call waited for a business server that does not answer")
	}
	if len(resp.Acks) != 0 {
		t.Fatalf("reply %+v, want no acks: the business has not answered", resp)
	}
	close(gate)
	if c := decodeAck(t, untilFrame(t, ts.gw, 1, protocol.SigUplinkAck, 2)).Code; c != protocol.CodeOK {
		t.Errorf("pushed ack code %d", c)
	}
	if p := ts.metrics.ackPaths[ackByPush].Load(); p != 1 {
		t.Errorf("acks by push %d, want 1", p)
	}
}

// An app whose business server took longer than the wait for its last batch is not waited for:
// the call returns at once even with a wait of an hour.
func TestASlowAppIsNotWaitedFor(t *testing.T) {
	ts := newTestServer(t, withAckWait(time.Hour))
	ts.loginDevice(t, 1, testApp, "a", "")
	untilEvents(t, ts.biz, api.EventKind_CONNECTED, "a", 1) // its call is over: lastCall stays ours
	l, err := ts.business.forApp(testApp)
	if err != nil || l == nil {
		t.Fatal(err)
	}
	poll.Until(t, "the CONNECTED call to end", func() bool { return l.callTime.Load() != 0 })
	l.callTime.Store(int64(2 * time.Hour)) // slower than the wait
	gate := make(chan struct{})
	ts.biz.set(func(b *fakeBusiness) { b.gate = gate })
	select {
	case <-ts.deliverAsync(t, frameEvent(1, protocol.SigUplink, 2, []byte("x"))):
	case <-time.After(poll.Timeout):
		close(gate)
		t.Fatal("the Deliver call waited for a slow app's business server")
	}
	close(gate)
	untilFrame(t, ts.gw, 1, protocol.SigUplinkAck, 2)
	// Its calls are quick again: its uplinks are waited for again.
	l.callTime.Store(0)
	if resp := ts.deliverReplying(t, frameEvent(1, protocol.SigUplink, 3, []byte("y"))); len(resp.Acks) != 1 {
		t.Errorf("once quick again: %d acks in the reply, want 1", len(resp.Acks))
	}
	if w := &ts.metrics.ackWaits; w[waitAnswered].Load() != 1 || w[waitTimedOut].Load() != 0 {
		t.Errorf("waits answered %d, timed out %d; want 1 and 0", w[waitAnswered].Load(), w[waitTimedOut].Load())
	}
}

// A stage answers uplink 3 at once while uplink 2 waits for the business: when the call stops
// waiting, 3's staged answer goes by Push before 2's, in the order decided, and none in the reply.
func TestStagedAnswersOfAConnectionStillWaitingGoByPushInOrder(t *testing.T) {
	ts := newTestServer(t, withAckWait(20*time.Millisecond))
	ts.UsePipeline(pipeFunc(func(ev stage.Event, done func(pipeline.Outcome)) error {
		if ev.Signal == stage.SignalUplink && ev.Seq == 3 {
			done(pipeline.Outcome{Verdict: stage.Reject, Code: uint16(protocol.CodeForbidden), Message: "no", Stage: "acl"})
			return nil
		}
		done(pipeline.Outcome{})
		return nil
	}))
	ts.loginDevice(t, 1, testApp, "a", "")
	ts.loginDevice(t, 2, testApp, "b", "")
	gate := make(chan struct{})
	ts.biz.set(func(b *fakeBusiness) { b.gate = gate })
	resp := <-ts.deliverAsync(t,
		frameEvent(1, protocol.SigUplink, 2, []byte("x")),
		frameEvent(1, protocol.SigUplink, 3, []byte("y")),
		frameEvent(2, protocol.SigUplink, 3, []byte("z")))
	// Conn 2's only uplink was refused at once: it rides the reply.
	if seqs, codes := uplinkAcksOf(t, resp.Acks); len(seqs) != 1 || seqs[0] != 3 || codes[0] != protocol.CodeForbidden || resp.Acks[0].ConnId != 2 {
		t.Fatalf("reply acks %+v, want conn 2's refusal only", resp.Acks)
	}
	close(gate)
	frames := untilFrames(t, ts.gw, 1, 2, "conn 1's two UplinkAcks", func(f *fleet.DownFrame) bool {
		return protocol.Signal(f.Signal) == protocol.SigUplinkAck
	})
	if seqs, codes := uplinkAcksOf(t, frames); seqs[0] != 3 || codes[0] != protocol.CodeForbidden || seqs[1] != 2 || codes[1] != protocol.CodeOK {
		t.Errorf("pushed acks %v codes %v, want 3 (1104) then 2 (0)", seqs, codes)
	}
}

// A connection with an uplink unanswered from an earlier call answers a later call's uplinks by
// Push: a reply could overtake the earlier answer.
func TestAConnectionWithAnEarlierUplinkPendingAnswersByPush(t *testing.T) {
	ts := newTestServer(t, withAckWait(20*time.Millisecond))
	ts.UsePipeline(pipeFunc(func(ev stage.Event, done func(pipeline.Outcome)) error {
		if ev.Signal == stage.SignalUplink && ev.Seq == 3 {
			done(pipeline.Outcome{Verdict: stage.Reject, Code: uint16(protocol.CodeForbidden), Message: "no", Stage: "acl"})
			return nil
		}
		done(pipeline.Outcome{})
		return nil
	}))
	ts.loginDevice(t, 1, testApp, "a", "")
	gate := make(chan struct{})
	ts.biz.set(func(b *fakeBusiness) { b.gate = gate })
	if resp := <-ts.deliverAsync(t, frameEvent(1, protocol.SigUplink, 2, []byte("x"))); len(resp.Acks) != 0 {
		t.Fatalf("first reply %+v, want no acks", resp.Acks)
	}
	if resp := ts.deliverReplying(t, frameEvent(1, protocol.SigUplink, 3, []byte("y"))); len(resp.Acks) != 0 {
		t.Fatalf("second reply %+v, want no acks: uplink 2 is unanswered", resp.Acks)
	}
	untilFrame(t, ts.gw, 1, protocol.SigUplinkAck, 3)
	close(gate)
	untilFrame(t, ts.gw, 1, protocol.SigUplinkAck, 2)
}

// A connection that drops while its uplink waits gets the answer kept for its Resume, and the call
// stops waiting for it.
func TestAnAnswerForAConnectionThatDroppedIsKept(t *testing.T) {
	ts := newTestServer(t, withAckWait(time.Hour))
	cs := ts.loginDevice(t, 1, testApp, "a", "")
	gate := make(chan struct{})
	ts.biz.set(func(b *fakeBusiness) { b.gate = gate })
	reply := ts.deliverAsync(t, frameEvent(1, protocol.SigUplink, 2, []byte("x")))
	// The uplink is with the business server (behind the gate) before the socket drops.
	poll.Until(t, "the uplink reaches the business server", func() bool {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		return cs.upInflight == 1
	})
	ts.deliver(t, testGW, closedEvent(1, protocol.CodeConnectionLost))
	if ts.Stats().Parked != 1 {
		t.Fatal("the connection did not park")
	}
	close(gate)
	select {
	case resp := <-reply:
		if len(resp.Acks) != 0 {
			t.Errorf("reply %+v, want no acks for a parked connection", resp.Acks)
		}
	case <-time.After(poll.Timeout):
		t.Fatal("the call still waits for a connection that dropped")
	}
	cs.mu.Lock()
	kept := 0
	if cs.park != nil {
		kept = len(cs.park.acks)
	}
	cs.mu.Unlock()
	if kept != 1 {
		t.Errorf("%d acks kept for the Resume, want 1", kept)
	}
}
