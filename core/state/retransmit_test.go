package state

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// policyPipe is a pipeline whose only stage is a retransmit policy: resend after wait until
// maxAttempts writes, then give up after wait; AtMostOnce downlinks untracked. It records the
// questions it is asked.
type policyPipe struct {
	wait        time.Duration
	maxAttempts int
	mu          sync.Mutex
	asked       []stage.Event
	// held, when set, takes the retransmit questions' done callbacks instead of answering.
	held chan func()
}

func (p *policyPipe) answer(ev stage.Event) pipeline.Outcome {
	if ev.Signal != stage.SignalRetransmit {
		return pipeline.Outcome{}
	}
	p.mu.Lock()
	p.asked = append(p.asked, ev)
	p.mu.Unlock()
	switch {
	case ev.QoS == stage.AtMostOnce:
		return pipeline.Outcome{Verdict: stage.Drop, Stage: "retransmit"}
	case ev.Attempts >= p.maxAttempts:
		return pipeline.Outcome{Verdict: stage.Reject, Stage: "retransmit", After: p.wait}
	}
	return pipeline.Outcome{After: p.wait}
}

func (p *policyPipe) Run(ev stage.Event, done func(pipeline.Outcome)) error {
	if p.held != nil && ev.Signal == stage.SignalRetransmit {
		out := p.answer(ev)
		p.held <- func() { done(out) }
		return nil
	}
	done(p.answer(ev))
	return nil
}

func (p *policyPipe) RunReserved(ev stage.Event, done func(pipeline.Outcome)) error {
	return p.Run(ev, done)
}

func (p *policyPipe) attemptsAsked(seq uint64) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for _, ev := range p.asked {
		if ev.Seq == seq {
			out = append(out, ev.Attempts)
		}
	}
	return out
}

// retransmitServer is a test server with the policy pipeline and its timing wheel running.
func retransmitServer(t *testing.T, wait time.Duration, maxAttempts int) (*testServer, *policyPipe) {
	t.Helper()
	ts := newTestServer(t, noReconnectWindow)
	p := &policyPipe{wait: wait, maxAttempts: maxAttempts}
	ts.UsePipeline(p)
	ts.wheel.Start() // Shutdown stops it
	return ts, p
}

func pushTo(t *testing.T, ts *testServer, did string, msgID uint64, qos stage.QoS) {
	t.Helper()
	out := ts.push(context.Background(), testApp, ts.targetsOf(testApp, []string{did}), msgID, []byte("m"), qos, false, within)
	if out[0].Status != api.PushStatus_SENT {
		t.Fatalf("push %d: %+v, want SENT", msgID, out[0])
	}
}

func isDownlink(f *fleet.DownFrame) bool { return protocol.Signal(f.Signal) == protocol.SigDownlink }

// TestUnACKedDownlinkIsResentThenReportedUndelivered: the state server resends on its own timer,
// flagged, as often as the stage's policy says, then reports UNDELIVERED with the attempts made.
func TestUnACKedDownlinkIsResentThenReportedUndelivered(t *testing.T) {
	ts, p := retransmitServer(t, 200*time.Millisecond, 3)
	ts.loginDevice(t, 1, testApp, "a", "")
	pushTo(t, ts, "a", 70, stage.AtLeastOnce)

	frames := untilFrames(t, ts.gw, 1, 3, "the downlink and two resends", isDownlink)
	for i, f := range frames[:3] {
		if flagged := uint16(f.Flags)&protocol.FlagRetransmit != 0; f.Seq != 1 || flagged != (i > 0) {
			t.Errorf("write %d: seq %d flags %#x, want seq 1, flagged from the second on", i+1, f.Seq, f.Flags)
		}
	}
	u := untilEvents(t, ts.biz, api.EventKind_UNDELIVERED, "a", 1)[0]
	if u.MsgId != 70 || u.Seq != 1 || u.Attempts != 3 {
		t.Errorf("UNDELIVERED %+v, want msg 70 seq 1 after 3 attempts", u)
	}
	if got := p.attemptsAsked(1); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("the stage was asked with attempts %v, want [1 2 3]", got)
	}
	if n := ts.Stats().Retransmits; n != 2 {
		t.Errorf("retransmits %d, want 2", n)
	}
	// Given up on: nothing more is written, and the end of the connection does not report it again.
	ts.deliver(t, testGW, closedEvent(1, protocol.CodeClientClose))
	untilEvents(t, ts.biz, api.EventKind_DISCONNECTED, "a", 1)
	if n := len(ts.biz.eventsOf(api.EventKind_UNDELIVERED, "a")); n != 1 {
		t.Errorf("%d UNDELIVERED, want 1", n)
	}
	if n := len(ts.gw.framesOf(1, isDownlink)); n != 3 {
		t.Errorf("%d writes, want 3", n)
	}
}

// TestACKStopsTheResendTimer: an ACKed downlink is neither resent nor reported.
func TestACKStopsTheResendTimer(t *testing.T) {
	ts, _ := retransmitServer(t, 150*time.Millisecond, 2)
	cs := ts.loginDevice(t, 1, testApp, "a", "")
	pushTo(t, ts, "a", 71, stage.AtLeastOnce)
	untilFrame(t, ts.gw, 1, protocol.SigDownlink, 1)
	poll.Within(t, within, "the resend timer armed", func() bool {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		return cs.inflight[1].timer != nil
	})
	ts.deliver(t, testGW, frameEvent(1, protocol.SigDownlinkAck, 1, nil))
	time.Sleep(600 * time.Millisecond) // four waits: a timer left armed would have fired
	if n := len(ts.gw.framesOf(1, isDownlink)); n != 1 {
		t.Errorf("%d writes after the ACK, want only the first", n)
	}
	ts.deliver(t, testGW, closedEvent(1, protocol.CodeClientClose))
	untilEvents(t, ts.biz, api.EventKind_DISCONNECTED, "a", 1)
	if n := len(ts.biz.eventsOf(api.EventKind_UNDELIVERED, "a")); n != 0 {
		t.Errorf("%d UNDELIVERED for an ACKed downlink", n)
	}
}

// TestDisconnectReportsTrackedDownlinksFromTheStateServersTable: what is in flight when the
// connection ends is reported UNDELIVERED, with its attempts, in seq order; downlinks the stage
// did not track (at most once) are not.
func TestDisconnectReportsTrackedDownlinksFromTheStateServersTable(t *testing.T) {
	ts, p := retransmitServer(t, time.Minute, 5)
	ts.loginDevice(t, 1, testApp, "a", "")
	pushTo(t, ts, "a", 80, stage.AtLeastOnce)
	pushTo(t, ts, "a", 81, stage.AtMostOnce)
	pushTo(t, ts, "a", 82, stage.QoSDefault)
	poll.Within(t, within, "the stage asked about 3 downlinks", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.asked) == 3
	})
	ts.deliver(t, testGW, closedEvent(1, protocol.CodeClientClose))
	u := untilEvents(t, ts.biz, api.EventKind_UNDELIVERED, "a", 2)
	if len(u) != 2 || u[0].MsgId != 80 || u[1].MsgId != 82 || u[0].Attempts != 1 || u[1].Attempts != 1 {
		t.Errorf("UNDELIVERED %v, want msgs 80 and 82 after 1 attempt each", u)
	}
	ts.cs(t, "a", false)
}

// cs checks whether did still has a connection.
func (ts *testServer) cs(t *testing.T, did string, want bool) {
	t.Helper()
	poll.Within(t, within, "the connection's presence", func() bool { return (ts.conns.byDID(testApp, did) != nil) == want })
}

// TestAdoptionRearmsTheResendTimers: a connection adopted after failover gets its unACKed
// downlinks replayed, and the stage is asked about each (two writes so far), so they are resent
// and, unACKed, reported.
func TestAdoptionRearmsTheResendTimers(t *testing.T) {
	ts, p := retransmitServer(t, 150*time.Millisecond, 3)
	unacked := &fleet.DownFrame{ConnId: 5, Signal: int8(protocol.SigDownlink), Seq: 7, Track: true,
		Body: (&protocol.Downlink{MsgID: 707, Payload: []byte("kept")}).Append(nil)}
	ts.deliver(t, testGW, &fleet.UpEvent{ConnId: 5, Kind: fleet.UpKind_ADOPTED, AppId: testApp, Did: "a",
		RemoteAddr: "10.0.0.9:1", Seq: 1, DownSeq: 7, Unacked: []*fleet.DownFrame{unacked}})
	frames := untilFrames(t, ts.gw, 5, 2, "the replay and one resend", isDownlink)
	for _, f := range frames {
		if f.Seq != 7 || uint16(f.Flags)&protocol.FlagRetransmit == 0 {
			t.Errorf("frame seq %d flags %#x, want seq 7 flagged", f.Seq, f.Flags)
		}
	}
	if u := untilEvents(t, ts.biz, api.EventKind_UNDELIVERED, "a", 1)[0]; u.MsgId != 707 || u.Attempts != 3 {
		t.Errorf("UNDELIVERED %+v, want msg 707 after 3 attempts", u)
	}
	if got := p.attemptsAsked(7); !slices.Equal(got, []int{2, 3}) {
		t.Errorf("asked with attempts %v, want [2 3]", got)
	}
}

// TestEvictionReportsATrackedDownlink: at state.max_inflight the oldest unACKed downlink is
// forgotten; a tracked one is reported undelivered and its timer stopped.
func TestEvictionReportsATrackedDownlink(t *testing.T) {
	ts, p := retransmitServer(t, time.Minute, 5)
	ts.loginDevice(t, 1, testApp, "a", "")
	for i := range ts.cfg.MaxInflight {
		pushTo(t, ts, "a", uint64(100+i), stage.AtLeastOnce)
	}
	poll.Within(t, within, "every downlink tracked", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.asked) == ts.cfg.MaxInflight
	})
	pushTo(t, ts, "a", 200, stage.AtLeastOnce)
	if u := untilEvents(t, ts.biz, api.EventKind_UNDELIVERED, "a", 1)[0]; u.MsgId != 100 || u.Seq != 1 {
		t.Errorf("UNDELIVERED %+v, want the oldest, msg 100", u)
	}
}

// TestDisconnectWhileTheStageIsAskedReportsTheDownlink: a connection that ends while the stage's
// answer about a downlink is still out (its disconnect can be ahead of the question on the lane)
// reports it, unless it was sent at most once; the late answer then finds nothing.
func TestDisconnectWhileTheStageIsAskedReportsTheDownlink(t *testing.T) {
	ts, p := retransmitServer(t, time.Minute, 5)
	p.held = make(chan func(), 4)
	ts.loginDevice(t, 1, testApp, "a", "")
	pushTo(t, ts, "a", 90, stage.AtLeastOnce)
	pushTo(t, ts, "a", 91, stage.AtMostOnce)
	ts.deliver(t, testGW, closedEvent(1, protocol.CodeClientClose))
	u := untilEvents(t, ts.biz, api.EventKind_UNDELIVERED, "a", 1)
	untilEvents(t, ts.biz, api.EventKind_DISCONNECTED, "a", 1)
	if len(u) != 1 || u[0].MsgId != 90 || u[0].Attempts != 1 {
		t.Errorf("UNDELIVERED %v, want only msg 90, after 1 attempt", u)
	}
	for range 2 {
		(<-p.held)() // the answers arrive after the connection is gone
	}
	if n := len(ts.biz.eventsOf(api.EventKind_UNDELIVERED, "a")); n != 1 {
		t.Errorf("%d UNDELIVERED, want 1", n)
	}
}
