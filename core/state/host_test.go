package state

import (
	"slices"
	"strings"
	"testing"

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
