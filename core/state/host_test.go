package state

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

func TestHostPushChecksItsArguments(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxBody = 108 })
	h := ts.Host()
	for name, call := range map[string]func() error{
		"no app":        func() error { _, err := h.Push(ctxT(t), "", []string{"a"}, nil); return err },
		"no dids":       func() error { _, err := h.Push(ctxT(t), testApp, nil, nil); return err },
		"large payload": func() error { _, err := h.Push(ctxT(t), testApp, []string{"a"}, make([]byte, 101)); return err },
	} {
		if call() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ts.loginDevice(t, 1, testApp, "a", "")
	res, err := h.Push(ctxT(t), testApp, []string{"a", "nobody"}, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if res.MsgID == 0 || len(res.Targets) != 2 || res.Targets[0].Seq != 1 || res.Targets[0].ConnID != 1 ||
		res.Targets[0].Status != uint8(api.PushStatus_SENT) || res.Targets[1].Status != uint8(api.PushStatus_OFFLINE) {
		t.Errorf("Host.Push = %+v", res)
	}
}

func TestHostResendMarksTheFrameRetransmitted(t *testing.T) {
	ts := newTestServer(t)
	cs := ts.loginDevice(t, 1, testApp, "a", "")
	h := ts.Host()
	if err := h.Resend(ctxT(t), cs.stageConn(), 4, 99, []byte("again")); err != nil {
		t.Fatal(err)
	}
	f := untilFrame(t, ts.gw, 1, protocol.SigDownlink, 4)
	var dl protocol.Downlink
	if err := dl.Decode(f.Body); err != nil || dl.MsgID != 99 || string(dl.Payload) != "again" || uint16(f.Flags)&protocol.FlagRetransmit == 0 {
		t.Errorf("resent frame flags %x body %+v (%v)", f.Flags, dl, err)
	}
	gone := stage.Conn{AppID: testApp, GatewayID: testGW, ConnID: 42}
	if err := h.Resend(ctxT(t), gone, 1, 1, nil); err == nil {
		t.Error("Resend to a gone connection succeeded")
	}
}

// The retransmit stage arms its timer while the downlink is still in the pipeline; on a loaded
// host the timer can run out before the pipeline lets the downlink through. A resend then must
// not overtake the first copy: the device would take the flagged copy as new, then the unflagged
// original as new again, and deliver the message twice (docs/protocol.md §8.2).
func TestHostResendNeverOvertakesTheFirstCopy(t *testing.T) {
	ts := newTestServer(t)
	held := make(chan func(pipeline.Outcome), 1)
	ts.UsePipeline(pipeFunc(func(ev stage.Event, done func(pipeline.Outcome)) error {
		if ev.Signal == stage.SignalDownlink {
			held <- done // the downlink stays "in the pipeline" until the test lets it go
			return nil
		}
		done(pipeline.Outcome{})
		return nil
	}))
	cs := ts.loginDevice(t, 1, testApp, "a", "")
	pushed := make(chan []*api.PushTarget, 1)
	go func() {
		pushed <- ts.push(context.Background(), testApp, ts.targetsOf(testApp, []string{"a"}), 77, []byte("once"), stage.AtLeastOnce, false, within)
	}()
	var release func(pipeline.Outcome)
	select {
	case release = <-held:
	case <-time.After(within):
		t.Fatal("the downlink never reached the pipeline")
	}

	// The stage's timer fires first: nothing may be queued for the device yet.
	h := ts.Host()
	if err := h.Resend(ctxT(t), cs.stageConn(), 1, 77, []byte("once")); err != nil {
		t.Fatalf("Resend of a downlink still in the pipeline: %v", err)
	}
	if ts.metrics.resendsEarly.Load() != 1 || ts.Stats().Retransmits != 0 {
		t.Errorf("early resends %d, retransmits %d; want 1 and 0", ts.metrics.resendsEarly.Load(), ts.Stats().Retransmits)
	}
	release(pipeline.Outcome{})
	if out := <-pushed; out[0].Status != api.PushStatus_SENT {
		t.Fatalf("push: %+v, want SENT", out[0])
	}
	// Once the first copy is out, a resend goes out behind it, flagged.
	if err := h.Resend(ctxT(t), cs.stageConn(), 1, 77, []byte("once")); err != nil {
		t.Fatal(err)
	}
	isDownlink := func(f *fleet.DownFrame) bool { return protocol.Signal(f.Signal) == protocol.SigDownlink }
	frames := untilFrames(t, ts.gw, 1, 2, "the downlink and its resend", isDownlink)
	time.Sleep(50 * time.Millisecond) // an early resend queued by mistake would show by now
	frames = ts.gw.framesOf(1, isDownlink)
	if len(frames) != 2 || uint16(frames[0].Flags)&protocol.FlagRetransmit != 0 || uint16(frames[1].Flags)&protocol.FlagRetransmit == 0 {
		for i, f := range frames {
			t.Logf("frame %d: seq %d flags %#x", i, f.Seq, f.Flags)
		}
		t.Fatalf("the device got %d downlinks, want the original (unflagged) then one resend (flagged)", len(frames))
	}
}

func TestHostJoinChecksNamesAndConnections(t *testing.T) {
	ts := newTestServer(t)
	cs := ts.loginDevice(t, 1, testApp, "a", "")
	h := ts.Host()
	for _, bad := range [][]string{{""}, {"a\x00b"}, {strings.Repeat("s", maxNameLen+1)}} {
		if err := h.Join(ctxT(t), cs.stageConn(), bad); err == nil {
			t.Errorf("Join %q accepted", bad)
		}
	}
	if err := h.Join(ctxT(t), stage.Conn{AppID: testApp, GatewayID: testGW, ConnID: 42}, []string{"room"}); err == nil {
		t.Error("Join of a gone connection succeeded")
	}
	if err := h.Join(ctxT(t), cs.stageConn(), []string{"room", "news"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cs.sessionList(), []string{"room", "news"}) || len(ts.gw.sessionChanges()) != 2 {
		t.Errorf("sessions %q, gateway told %d changes", cs.sessionList(), len(ts.gw.sessionChanges()))
	}
	if err := h.Bind(ctxT(t), testApp, "a\x00", []string{"a"}); err == nil {
		t.Error("Bind to a session name with NUL accepted")
	}
	if err := h.Unbind(ctxT(t), testApp, "room", []string{"a"}); err != nil || cs.member("room") {
		t.Errorf("Unbind: %v, still a member: %v", err, cs.member("room"))
	}
	if c := ts.gw.sessionChanges(); len(c) != 3 || c[2].Join || c[2].Session != "room" || c[2].ConnId != 1 {
		t.Errorf("gateway changes %+v, want the leave last", c)
	}
}
