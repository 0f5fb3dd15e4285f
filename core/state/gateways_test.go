package state

import (
	"testing"

	"github.com/platoim/plato/internal/peerauth"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// Without a reconnect window, a gateway that leaves takes its connections with it.
func TestGatewayLeavingDropsItsConnectionsOnly(t *testing.T) {
	ts := newTestServer(t, noReconnectWindow)
	ts.addGateway(t, "gw-2")
	a := ts.loginDevice(t, 1, testApp, "a", "alice")
	ts.sessions.join(a, []string{"room"})
	ts.deliver(t, "gw-2", loginEvent(1, testApp, "b", ""))
	pending := newConn(2, testApp, "p", "")
	ts.conns.addPending(pending)

	ts.gateways.Remove(testGW) // its registry entry expired
	for _, cs := range []*connState{a, pending} {
		if ts.conns.get(cs.key) != nil {
			t.Errorf("%s is still held after its gateway left", cs.did)
		}
	}
	if ts.conns.byDID(testApp, "a") != nil || len(ts.conns.byUID(testApp, "alice")) != 0 || ts.sessions.count() != 0 {
		t.Error("a connection of the gone gateway is still indexed")
	}
	if ts.conns.byDID(testApp, "b") == nil || ts.conns.len() != 1 {
		t.Error("the other gateway's connection was dropped too")
	}
	if ev := untilEvents(t, ts.biz, api.EventKind_DISCONNECTED, "a", 1)[0]; ev.Reason != int32(protocol.CodeConnectionLost) {
		t.Errorf("DISCONNECTED reason %d, want 1211", ev.Reason)
	}
}

func TestConnectionTheGatewayNoLongerHoldsIsForgotten(t *testing.T) {
	ts := newTestServer(t, noReconnectWindow)
	ts.loginDevice(t, 1, testApp, "a", "")
	untilFrame(t, ts.gw, 1, protocol.SigLoginAck, 1)
	ts.gw.forget(1) // it closed before the gateway told us
	ts.push(ctxT(t), testApp, ts.targetsOf(testApp, []string{"a"}), 1, nil, stage.AtMostOnce, false, within)
	poll.Within(t, within, "the connection to be forgotten", func() bool { return ts.conns.byDID(testApp, "a") == nil })
	if ev := untilEvents(t, ts.biz, api.EventKind_DISCONNECTED, "a", 1)[0]; ev.Reason != int32(protocol.CodeConnectionLost) {
		t.Errorf("DISCONNECTED reason %d, want 1211", ev.Reason)
	}
}

func TestEveryCallToAGatewayCarriesTheStateServersProof(t *testing.T) {
	secret := []byte("unit-secret-0123456789")
	ts := newTestServer(t, func(c *Config) { c.GatewaySecret = secret })
	h := &handler{ts.Server}
	req := &fleet.DeliverRequest{GatewayId: testGW, Proof: peerauth.Proof(secret, peerauth.Gateway, testGW), Events: []*fleet.UpEvent{loginEvent(1, testApp, "a", "")}}
	if _, err := h.Deliver(ctxT(t), req); err != nil {
		t.Fatal(err)
	}
	untilFrame(t, ts.gw, 1, protocol.SigLoginAck, 1)
	ts.localSession(ctxT(t), bindReq(fleet.SessionOp_BIND, "room", "a")) // a Sessions call
	want := peerauth.Proof(secret, peerauth.State, ts.cfg.ID)
	ts.gw.mu.Lock()
	defer ts.gw.mu.Unlock()
	if len(ts.gw.proofs) < 2 {
		t.Fatalf("%d calls to the gateway, want a Push and a Sessions", len(ts.gw.proofs))
	}
	for i, p := range ts.gw.proofs {
		if p != want {
			t.Errorf("call %d carried proof %q, want the state server's", i, p)
		}
	}
}
