package state

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/platoim/plato/internal/peerauth"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

func TestLoginIsAnsweredLoginOKAndAnnounced(t *testing.T) {
	ts := newTestServer(t)
	cs := ts.loginDevice(t, 1, testApp, "a", "alice")
	f := untilFrame(t, ts.gw, 1, protocol.SigLoginAck, 1)
	var ack protocol.LoginAck
	if err := ack.Decode(f.Body); err != nil {
		t.Fatal(err)
	}
	if f.Action != fleet.DownAction_LOGIN_OK || f.Did != "a" || ack.Code != protocol.CodeOK || ack.ConnID != 1 ||
		ack.HeartbeatMs != uint32(ts.cfg.HeartbeatInterval.Milliseconds()) {
		t.Errorf("LoginAck frame %+v body %+v", f, ack)
	}
	ev := untilEvents(t, ts.biz, api.EventKind_CONNECTED, "a", 1)[0]
	if ev.Uid != "alice" || ev.ConnId != 1 || ev.GatewayId != testGW || ev.AppId != testApp {
		t.Errorf("CONNECTED %+v", ev)
	}
	if got := ts.conns.byUID(testApp, "alice"); len(got) != 1 || got[0] != cs {
		t.Error("the user does not reach the new connection")
	}
	if ts.Stats().Logins != 1 || ts.Stats().Conns != 1 {
		t.Errorf("stats %+v", ts.Stats())
	}
}

func TestSecondLoginOnAConnectionIsRefused(t *testing.T) {
	ts := newTestServer(t)
	cs := ts.loginDevice(t, 1, testApp, "a", "")
	ev := loginEvent(1, testApp, "b", "")
	ev.Seq = 2
	ts.deliver(t, testGW, ev)
	var ack protocol.LoginAck
	if err := ack.Decode(untilFrame(t, ts.gw, 1, protocol.SigLoginAck, 2).Body); err != nil || ack.Code != protocol.CodeAlreadyLogged {
		t.Errorf("second LoginAck %+v (%v), want 1007", ack, err)
	}
	if ts.conns.get(cs.key) != cs || ts.conns.byDID(testApp, "b") != nil {
		t.Error("a second Login changed the connection")
	}
}

func TestNewerLoginOfADIDReplacesTheOlder(t *testing.T) {
	ts := newTestServer(t)
	old := ts.loginDevice(t, 1, testApp, "a", "alice")
	ts.sessions.join(old, []string{"room"})
	cur := ts.loginDevice(t, 2, testApp, "a", "alice")
	f := untilFrame(t, ts.gw, 1, protocol.SigClose, 0)
	if c := decodeClose(t, f); c.Code != protocol.CodeReplaced || f.Action != fleet.DownAction_SEND_AND_CLOSE {
		t.Errorf("the older connection got %+v, want Close 1203 and close", c)
	}
	if ts.conns.get(old.key) != nil || ts.conns.byDID(testApp, "a") != cur {
		t.Error("the replaced connection is still reachable")
	}
	if got := ts.conns.byUID(testApp, "alice"); len(got) != 1 || got[0] != cur {
		t.Errorf("alice reaches %d connections, want only the new one", len(got))
	}
	if ts.sessions.size(testApp, "room") != 0 {
		t.Error("the replaced connection is still in its session")
	}
	ev := untilEvents(t, ts.biz, api.EventKind_DISCONNECTED, "a", 1)[0]
	if ev.ConnId != 1 || ev.Reason != int32(protocol.CodeReplaced) {
		t.Errorf("DISCONNECTED %+v, want conn 1 reason 1203", ev)
	}
	// The new connection is the did's for pushes.
	out := ts.push(ctxT(t), testApp, ts.targetsOf(testApp, []string{"a"}), 1, nil, stage.AtLeastOnce, false, within)
	if out[0].ConnId != 2 || out[0].Status != api.PushStatus_SENT {
		t.Errorf("push after the replacement went to %+v", out[0])
	}
}

func TestLoginRefusedByAStageIsForgotten(t *testing.T) {
	ts := newTestServer(t)
	ts.UsePipeline(pipeFunc(func(ev stage.Event, done func(pipeline.Outcome)) error {
		if ev.Signal == stage.SignalLogin {
			// An earlier stage (sessionbind) joined it before a later one refused it.
			if err := ts.Host().Join(context.Background(), ev.Conn, []string{"room"}); err != nil {
				t.Errorf("Join: %v", err)
			}
			done(pipeline.Outcome{Verdict: stage.Reject, Code: uint16(protocol.CodeTokenExpired), Message: "expired", Stage: "auth"})
			return nil
		}
		done(pipeline.Outcome{})
		return nil
	}))
	ts.deliver(t, testGW, loginEvent(1, testApp, "a", ""))
	f := untilFrame(t, ts.gw, 1, protocol.SigLoginAck, 1)
	var ack protocol.LoginAck
	if err := ack.Decode(f.Body); err != nil || ack.Code != protocol.CodeTokenExpired || ack.Message != "auth: expired" || f.Action != fleet.DownAction_SEND_AND_CLOSE {
		t.Errorf("LoginAck %+v action %v (%v), want 1102 from auth and close", ack, f.Action, err)
	}
	if ts.conns.len() != 0 || ts.sessions.count() != 0 {
		t.Errorf("a refused login left %d connections and %d memberships", ts.conns.len(), ts.sessions.count())
	}
	if len(ts.biz.eventsOf(api.EventKind_CONNECTED, "a")) != 0 {
		t.Error("a refused login was announced")
	}
}

func TestDeviceLeavingWhileItsLoginIsInThePipelineNeverLogsIn(t *testing.T) {
	ts := newTestServer(t)
	var held func(pipeline.Outcome)
	ts.UsePipeline(pipeFunc(func(ev stage.Event, done func(pipeline.Outcome)) error {
		if ev.Signal == stage.SignalLogin {
			held = done
			return nil
		}
		done(pipeline.Outcome{})
		return nil
	}))
	ts.deliver(t, testGW, loginEvent(1, testApp, "a", "alice"))
	ts.deliver(t, testGW, closedEvent(1, protocol.CodeClientClose))
	held(pipeline.Outcome{}) // the pipeline lets it through after all
	if ts.conns.byDID(testApp, "a") != nil || len(ts.conns.byUID(testApp, "alice")) != 0 || ts.conns.len() != 0 {
		t.Error("a connection that left during its login is indexed")
	}
	if len(ts.gw.framesOf(1, nil)) != 0 {
		t.Error("a connection that left during its login was answered")
	}
}

// lane queues signals as one pipeline lane does: run, in order, when the test says.
type lane struct {
	mu     sync.Mutex
	queued []stage.Event
	dones  []func(pipeline.Outcome)
	decide func(stage.Event) pipeline.Outcome
}

func (l *lane) Run(ev stage.Event, done func(pipeline.Outcome)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queued, l.dones = append(l.queued, ev), append(l.dones, done)
	return nil
}

func (l *lane) RunReserved(ev stage.Event, done func(pipeline.Outcome)) error { return l.Run(ev, done) }

// drain finishes every queued signal, in order.
func (l *lane) drain() {
	for {
		l.mu.Lock()
		if len(l.queued) == 0 {
			l.mu.Unlock()
			return
		}
		ev, done := l.queued[0], l.dones[0]
		l.queued, l.dones = l.queued[1:], l.dones[1:]
		l.mu.Unlock()
		done(l.decide(ev))
	}
}

// The gateway forwards what a device sends right after its Login, before the LoginAck: those
// frames wait behind the login in its pipeline lane, and must not reach the business server if a
// stage refuses the login.
func TestUplinkBehindARefusedLoginIsNotDelivered(t *testing.T) {
	ts := newTestServer(t)
	l := &lane{decide: func(ev stage.Event) pipeline.Outcome {
		if ev.Signal == stage.SignalLogin {
			return pipeline.Outcome{Verdict: stage.Reject, Code: uint16(protocol.CodeForbidden), Stage: "acl"}
		}
		return pipeline.Outcome{}
	}}
	ts.UsePipeline(l)
	ts.deliver(t, testGW, loginEvent(1, testApp, "a", ""), frameEvent(1, protocol.SigUplink, 1, []byte("sneaky")))
	l.drain()
	if a := decodeAck(t, untilFrame(t, ts.gw, 1, protocol.SigUplinkAck, 1)); a.Code != protocol.CodeNotLoggedIn {
		t.Errorf("UplinkAck %+v, want 1006", a)
	}
	// An accepted login's early uplink is delivered, after CONNECTED.
	l.decide = func(stage.Event) pipeline.Outcome { return pipeline.Outcome{} }
	ts.deliver(t, testGW, loginEvent(2, testApp, "b", ""), frameEvent(2, protocol.SigUplink, 1, []byte("early")))
	l.drain()
	if a := decodeAck(t, untilFrame(t, ts.gw, 2, protocol.SigUplinkAck, 1)); a.Code != 0 {
		t.Errorf("UplinkAck of the accepted login %+v, want 0", a)
	}
	if n := len(ts.biz.eventsOf(api.EventKind_UPLINK, "a")); n != 0 {
		t.Errorf("the business got %d uplinks of a refused login", n)
	}
}

// A disconnect that does not wait for the login's pipeline lane (a full lane, a gateway leaving
// the registry) may run while the login is being accepted: the connection must end up in no index.
func TestDisconnectRacingLoginAcceptanceLeavesNoIndexEntry(t *testing.T) {
	ts := newTestServer(t)
	l, _ := ts.gateways.Get(testGW)
	for i := range 1000 {
		cs := newConnState(connKey{gw: testGW, id: uint64(i + 1)}, testApp, "a", "alice", "", l)
		ts.conns.addPending(cs)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); ts.acceptLogin(cs, 1, "") }()
		go func() { defer wg.Done(); ts.disconnect(cs, protocol.CodeStateLost) }()
		wg.Wait()
		if ts.conns.byDID(testApp, "a") == cs || len(ts.conns.byUID(testApp, "alice")) != 0 {
			t.Fatalf("round %d: a closed connection is still indexed", i)
		}
	}
}

func TestUplinkIsACKedWithTheBusinessAnswer(t *testing.T) {
	ts := newTestServer(t)
	ts.biz.set(func(b *fakeBusiness) {
		b.answer = func(ev *api.Event) *api.Result_ {
			switch string(ev.Payload) {
			case "refuse":
				return &api.Result_{Code: 2042, Message: "nope"}
			case "odd":
				return &api.Result_{Code: 1104, Message: "not a business code"}
			}
			return &api.Result_{}
		}
	})
	ts.loginDevice(t, 1, testApp, "a", "alice")
	ts.deliver(t, testGW,
		frameEvent(1, protocol.SigUplink, 1, []byte("hello")),
		frameEvent(1, protocol.SigUplink, 2, []byte("refuse")),
		frameEvent(1, protocol.SigUplink, 3, []byte("odd")))
	want := []struct {
		code protocol.Code
		msg  string
	}{{0, ""}, {2042, "nope"}, {2000, "not a business code"}}
	for i, w := range want {
		a := decodeAck(t, untilFrame(t, ts.gw, 1, protocol.SigUplinkAck, uint64(i+1)))
		if a.Code != w.code || a.Message != w.msg {
			t.Errorf("UplinkAck %d = %+v, want %+v", i+1, a, w)
		}
	}
	ev := untilEvents(t, ts.biz, api.EventKind_UPLINK, "a", 3)[0]
	if string(ev.Payload) != "hello" || ev.Seq != 1 || ev.Uid != "alice" || ev.ConnId != 1 || ev.GatewayId != testGW {
		t.Errorf("UPLINK %+v", ev)
	}
}

func TestUplinkFailsWhenTheBusinessCannotBeReached(t *testing.T) {
	ts := newTestServer(t)
	ts.biz.set(func(b *fakeBusiness) { b.err = errors.New("connection refused") })
	ts.loginDevice(t, 1, testApp, "a", "")
	ts.deliver(t, testGW, frameEvent(1, protocol.SigUplink, 1, []byte("x")))
	if a := decodeAck(t, untilFrame(t, ts.gw, 1, protocol.SigUplinkAck, 1)); a.Code != protocol.CodeBusinessUnavailable {
		t.Errorf("UplinkAck %+v, want 1301", a)
	}
}

func TestUplinkWithoutABusinessServerIsRefused1304(t *testing.T) {
	noBusiness := testApps()
	a := noBusiness[testApp]
	a.Business = ""
	noBusiness[testApp] = a
	ts := newTestServerApps(t, noBusiness)
	ts.loginDevice(t, 1, testApp, "a", "")
	ts.deliver(t, testGW, frameEvent(1, protocol.SigUplink, 1, []byte("x")))
	if a := decodeAck(t, untilFrame(t, ts.gw, 1, protocol.SigUplinkAck, 1)); a.Code != protocol.CodeNoBusiness {
		t.Errorf("UplinkAck %+v, want 1304", a)
	}
}

func TestDuplicateUplinkIsNotDeliveredAndIsACKedInOrder(t *testing.T) {
	ts := newTestServer(t)
	gate := make(chan struct{})
	ts.biz.set(func(b *fakeBusiness) { b.gate = gate })
	ts.loginDevice(t, 1, testApp, "a", "")
	// Seq 2 is with the business server when its duplicate (and an older one) arrives: their
	// 1008s must not overtake its ACK.
	ts.deliver(t, testGW,
		frameEvent(1, protocol.SigUplink, 2, []byte("x")),
		frameEvent(1, protocol.SigUplink, 2, []byte("x")),
		frameEvent(1, protocol.SigUplink, 1, []byte("old")))
	close(gate)
	acks := untilFrames(t, ts.gw, 1, 3, "three UplinkAcks", func(f *fleet.DownFrame) bool { return protocol.Signal(f.Signal) == protocol.SigUplinkAck })
	codes := []protocol.Code{decodeAck(t, acks[0]).Code, decodeAck(t, acks[1]).Code, decodeAck(t, acks[2]).Code}
	if codes[0] != 0 || codes[1] != protocol.CodeDuplicate || codes[2] != protocol.CodeDuplicate ||
		acks[0].Seq != 2 || acks[1].Seq != 2 || acks[2].Seq != 1 {
		t.Errorf("ACKs (seq, code): (%d %d) (%d %d) (%d %d), want (2 0) (2 1008) (1 1008)",
			acks[0].Seq, codes[0], acks[1].Seq, codes[1], acks[2].Seq, codes[2])
	}
	if n := len(ts.biz.eventsOf(api.EventKind_UPLINK, "a")); n != 1 {
		t.Errorf("the business got %d uplinks, want 1", n)
	}
	if ts.Stats().Duplicates != 2 {
		t.Errorf("Duplicates = %d, want 2", ts.Stats().Duplicates)
	}
}

func TestHeartbeatIsAnsweredWithItsSeq(t *testing.T) {
	ts := newTestServer(t)
	cs := ts.loginDevice(t, 1, testApp, "a", "")
	before := cs.lastSeen.Load()
	ts.deliver(t, testGW, frameEvent(1, protocol.SigHeartbeat, 77, nil))
	untilFrame(t, ts.gw, 1, protocol.SigHeartbeatAck, 77)
	if cs.lastSeen.Load() < before {
		t.Error("a heartbeat did not refresh the connection's last-seen time")
	}
}

func TestFrameOfAnUnknownConnectionClosesIt(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, testGW, frameEvent(9, protocol.SigUplink, 1, []byte("x")))
	f := untilFrame(t, ts.gw, 9, protocol.SigClose, 0)
	if c := decodeClose(t, f); c.Code != protocol.CodeStateLost || f.Action != fleet.DownAction_SEND_AND_CLOSE {
		t.Errorf("got %+v action %v, want Close 1210 and close", c, f.Action)
	}
	if ts.conns.len() != 0 {
		t.Error("a frame of an unknown connection created one")
	}
}

func TestDisconnectForgetsTheConnectionEverywhere(t *testing.T) {
	ts := newTestServer(t)
	cs := ts.loginDevice(t, 1, testApp, "a", "alice")
	ts.sessions.join(cs, []string{"room", "news"})
	ts.push(ctxT(t), testApp, ts.targetsOf(testApp, []string{"a"}), 1, nil, stage.AtLeastOnce, false, within)
	ts.deliver(t, testGW, closedEvent(1, protocol.CodeClientClose))
	ts.deliver(t, testGW, closedEvent(1, protocol.CodeClientClose)) // the gateway may tell twice
	if ts.conns.get(cs.key) != nil || ts.conns.byDID(testApp, "a") != nil || len(ts.conns.byUID(testApp, "alice")) != 0 {
		t.Error("a closed connection is still indexed")
	}
	if ts.sessions.count() != 0 || cs.sessionList() != nil {
		t.Error("a closed connection is still in sessions")
	}
	if n := len(inflightSeqs(cs)); n != 0 {
		t.Errorf("a closed connection keeps %d downlinks in flight", n)
	}
	ev := untilEvents(t, ts.biz, api.EventKind_DISCONNECTED, "a", 1)
	if ev[0].Reason != int32(protocol.CodeClientClose) {
		t.Errorf("DISCONNECTED reason %d, want 1209", ev[0].Reason)
	}
	out := ts.push(ctxT(t), testApp, ts.targetsOf(testApp, []string{"a"}), 2, nil, stage.AtLeastOnce, false, within)
	if out[0].Status != api.PushStatus_OFFLINE {
		t.Errorf("push after the disconnect: %v, want OFFLINE", out[0].Status)
	}
	// Its disconnect was announced once: a second CLOSED is not a second DISCONNECTED.
	ts.loginDevice(t, 2, testApp, "b", "")
	untilEvents(t, ts.biz, api.EventKind_CONNECTED, "b", 1)
	if n := len(ts.biz.eventsOf(api.EventKind_DISCONNECTED, "a")); n != 1 {
		t.Errorf("%d DISCONNECTED events for one connection", n)
	}
}

func TestBroadcastACKLeavesTheConnectionsDownlinksAlone(t *testing.T) {
	ts := newTestServer(t)
	cs := ts.loginDevice(t, 1, testApp, "a", "")
	ts.push(ctxT(t), testApp, ts.targetsOf(testApp, []string{"a"}), 1, nil, stage.AtLeastOnce, false, within)
	ack := frameEvent(1, protocol.SigDownlinkAck, 1, nil)
	ack.Flags = int16(protocol.FlagBroadcast) // seq 1 here is a broadcast's msg ID
	ts.deliver(t, testGW, ack)
	if n := len(inflightSeqs(cs)); n != 1 {
		t.Error("a broadcast's ACK closed the connection's own downlink with the same number")
	}
}

func TestDeliverChecksTheGatewaysProof(t *testing.T) {
	secret := []byte("unit-secret-0123456789")
	ts := newTestServer(t, func(c *Config) { c.GatewaySecret = secret })
	h := &handler{ts.Server}
	req := &fleet.DeliverRequest{GatewayId: testGW, Events: []*fleet.UpEvent{loginEvent(1, testApp, "a", "")}}
	for _, proof := range []string{"", peerauth.Proof(secret, peerauth.Gateway, "gw-other"), peerauth.Proof(secret, peerauth.State, testGW)} {
		req.Proof = proof
		if _, err := h.Deliver(ctxT(t), req); !errors.Is(err, peerauth.ErrBadProof) {
			t.Errorf("proof %q: %v, want refused", proof, err)
		}
	}
	if ts.conns.len() != 0 {
		t.Fatal("events of a refused Deliver were handled")
	}
	req.Proof = peerauth.Proof(secret, peerauth.Gateway, testGW)
	if _, err := h.Deliver(ctxT(t), req); err != nil {
		t.Fatalf("the gateway's own proof: %v", err)
	}
	if ts.conns.byDID(testApp, "a") == nil {
		t.Error("a proven login was not handled")
	}
}

func TestEventsOfAnUnknownGatewayAreDropped(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, "gw-nobody-knows", loginEvent(1, testApp, "a", ""))
	if ts.conns.len() != 0 {
		t.Error("a gateway that is in no registry logged a device in")
	}
}
