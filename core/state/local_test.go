package state

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
)

// origins renders LocalPush targets as "did/uid/origin" for comparison.
func origins(ts []*fleet.LocalTarget) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Did + "/" + t.Uid + "/" + t.Origin.String()
	}
	return out
}

func downlinks(fg *fakeGateway, connID uint64) int {
	return len(fg.framesOf(connID, func(f *fleet.DownFrame) bool { return protocol.Signal(f.Signal) == protocol.SigDownlink }))
}

func TestLocalPushSendsOneCopyPerConnection(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "a", "alice")
	ts.loginDevice(t, 2, testApp, "b", "alice")
	c := ts.loginDevice(t, 3, testApp, "c", "")
	ts.sessions.join(ts.conns.byDID(testApp, "a"), []string{"room"})
	ts.sessions.join(c, []string{"room"})
	resp := ts.localPush(ctxT(t), &fleet.LocalPushRequest{
		AppId: testApp, Dids: []string{"a", "a", "nobody"}, Uids: []string{"alice", "bob"}, Session: "room", MsgId: 5,
	})
	// a is named by did, is one of alice's devices and is in the room: it is sent once, and
	// reported under the did and under alice (or alice would look offline to the coordinator).
	got := origins(resp.Targets)
	want := []string{"a//DID", "b/alice/UID", "c//SESSION", "a/alice/UID"}
	if !slices.Equal(got, want) {
		t.Errorf("targets %q, want %q (offline names are left to the coordinator)", got, want)
	}
	for _, tg := range resp.Targets {
		if tg.Status != int32(api.PushStatus_SENT) || tg.Seq != 1 {
			t.Errorf("%s/%s: status %d seq %d, want SENT seq 1", tg.Did, tg.Uid, tg.Status, tg.Seq)
		}
	}
	untilFrame(t, ts.gw, 3, protocol.SigDownlink, 1)
	for conn := uint64(1); conn <= 3; conn++ {
		untilFrame(t, ts.gw, conn, protocol.SigDownlink, 1)
		if n := downlinks(ts.gw, conn); n != 1 {
			t.Errorf("connection %d got %d copies", conn, n)
		}
	}
}

func TestLocalPushLeavesBroadcastMembersToTheBroadcast(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "a", "alice")
	ts.loginDevice(t, 2, testApp, "b", "")
	ts.sessions.join(ts.conns.byDID(testApp, "a"), []string{"room"})
	resp := ts.localPush(ctxT(t), &fleet.LocalPushRequest{
		AppId: testApp, Dids: []string{"a", "b"}, Uids: []string{"alice"}, ExcludeSession: "room", MsgId: 5,
	})
	if got, want := origins(resp.Targets), []string{"b//DID", "a//DID", "a/alice/UID"}; !slices.Equal(got, want) {
		t.Fatalf("targets %q, want %q", got, want)
	}
	if a := resp.Targets[1]; a.Status != int32(api.PushStatus_SENT) || a.Seq != 0 || !strings.Contains(a.Message, "broadcast") {
		t.Errorf("a: %+v, want SENT by the broadcast, without a seq", a)
	}
	untilFrame(t, ts.gw, 2, protocol.SigDownlink, 1)
	if n := downlinks(ts.gw, 1); n != 0 {
		t.Errorf("a session member got %d direct copies besides the broadcast", n)
	}
}

func TestLocalPushTimeoutIsCappedByPushTimeout(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "a", "")
	// A device that never ACKs: the business's short timeout applies.
	resp := ts.localPush(ctxT(t), &fleet.LocalPushRequest{AppId: testApp, Dids: []string{"a"}, WaitAck: true, TimeoutMs: 1})
	if resp.Targets[0].Status != int32(api.PushStatus_TIMEOUT) {
		t.Errorf("status %d, want TIMEOUT", resp.Targets[0].Status)
	}
}

func bindReq(op fleet.SessionOp, session string, dids ...string) *fleet.LocalSessionRequest {
	return &fleet.LocalSessionRequest{AppId: testApp, Op: op, Session: session, Dids: dids}
}

// changes renders a gateway session change as "+conn:session" or "-conn:session".
func changes(fg *fakeGateway) []string {
	var out []string
	for _, c := range fg.sessionChanges() {
		sign := "-"
		if c.Join {
			sign = "+"
		}
		out = append(out, sign+strconv.FormatInt(c.ConnId, 10)+":"+c.Session)
	}
	return out
}

func TestLocalSessionBindReplaceUnbindDissolve(t *testing.T) {
	ts := newTestServer(t)
	for i, did := range []string{"a", "b", "c"} {
		ts.loginDevice(t, uint64(i+1), testApp, did, "")
	}
	ctx := ctxT(t)
	resp := ts.localSession(ctx, bindReq(fleet.SessionOp_BIND, "room", "a", "b", "nobody"))
	if !slices.Equal(resp.Dids, []string{"a", "b"}) || resp.Members != 2 {
		t.Fatalf("BIND: dids %q members %d, want a b and 2", resp.Dids, resp.Members)
	}
	resp = ts.localSession(ctx, bindReq(fleet.SessionOp_BIND, "room", "a"))
	if resp.Members != 2 {
		t.Fatalf("BIND again: members %d", resp.Members)
	}
	resp = ts.localSession(ctx, bindReq(fleet.SessionOp_REPLACE, "room", "b", "c"))
	if resp.Members != 2 || ts.conns.byDID(testApp, "a").member("room") {
		t.Fatalf("REPLACE: members %d, a still a member: %v", resp.Members, ts.conns.byDID(testApp, "a").member("room"))
	}
	resp = ts.localSession(ctx, bindReq(fleet.SessionOp_UNBIND, "room", "b", "nobody"))
	if resp.Members != 1 {
		t.Fatalf("UNBIND: members %d, want 1", resp.Members)
	}
	resp = ts.localSession(ctx, bindReq(fleet.SessionOp_DISSOLVE, "room"))
	if resp.Members != 0 || ts.sessions.count() != 0 {
		t.Fatalf("DISSOLVE: members %d, memberships %d", resp.Members, ts.sessions.count())
	}
	// The gateway's part of the index follows every change, in order, and only real changes.
	want := []string{"+1:room", "+2:room", "+3:room", "-1:room", "-2:room", "-3:room"}
	if got := changes(ts.gw); !slices.Equal(got, want) {
		t.Errorf("gateway changes %q, want %q", got, want)
	}
}

func TestLocalSessionBindOfAConnectionTheGatewayLostDropsIt(t *testing.T) {
	ts := newTestServer(t, noReconnectWindow)
	ts.loginDevice(t, 1, testApp, "a", "")
	// The LoginAck reached the gateway first: only the Sessions call can learn it is gone.
	untilFrame(t, ts.gw, 1, protocol.SigLoginAck, 1)
	ts.gw.forget(1)
	resp := ts.localSession(ctxT(t), bindReq(fleet.SessionOp_BIND, "room", "a"))
	if resp.Members != 0 || ts.conns.byDID(testApp, "a") != nil || ts.sessions.count() != 0 {
		t.Errorf("members %d, did still indexed: %v; the gateway said the connection is gone",
			resp.Members, ts.conns.byDID(testApp, "a") != nil)
	}
	untilEvents(t, ts.biz, api.EventKind_DISCONNECTED, "a", 1)
}

func TestLocalSessionKick(t *testing.T) {
	ts := newTestServer(t)
	a := ts.loginDevice(t, 1, testApp, "a", "")
	ts.sessions.join(a, []string{"room"})
	resp := ts.localSession(ctxT(t), &fleet.LocalSessionRequest{AppId: testApp, Op: fleet.SessionOp_KICK, Dids: []string{"a", "nobody"}, Message: "bye"})
	if !slices.Equal(resp.Dids, []string{"a"}) {
		t.Errorf("kicked %q, want a", resp.Dids)
	}
	f := untilFrame(t, ts.gw, 1, protocol.SigClose, 0)
	if c := decodeClose(t, f); c.Code != protocol.CodeKicked || c.Message != "bye" || f.Action != fleet.DownAction_SEND_AND_CLOSE {
		t.Errorf("Close %+v action %v, want 1202 \"bye\" and close", c, f.Action)
	}
	if ts.conns.byDID(testApp, "a") != nil || ts.conns.len() != 0 || ts.sessions.count() != 0 {
		t.Error("a kicked connection is still indexed")
	}
	if ev := untilEvents(t, ts.biz, api.EventKind_DISCONNECTED, "a", 1)[0]; ev.Reason != int32(protocol.CodeKicked) {
		t.Errorf("DISCONNECTED reason %d, want 1202", ev.Reason)
	}
}

func TestLocalSessionOnlineListsLiveConnectionsOnly(t *testing.T) {
	ts := newTestServer(t)
	a := ts.loginDevice(t, 1, testApp, "a", "alice")
	ts.sessions.join(a, []string{"room", "news"})
	// A login still in the pipeline may already be in a session (sessionbind joins it then).
	pending := newConn(2, testApp, "p", "")
	ts.conns.addPending(pending)
	ts.sessions.join(pending, []string{"room"})

	resp := ts.localSession(ctxT(t), &fleet.LocalSessionRequest{AppId: testApp, Op: fleet.SessionOp_ONLINE, Session: "room"})
	if len(resp.Devices) != 1 {
		t.Fatalf("ONLINE room: %d devices, want only a", len(resp.Devices))
	}
	d := resp.Devices[0]
	if d.Did != "a" || d.Uid != "alice" || d.ConnId != 1 || d.GatewayId != testGW || d.RemoteAddr != "10.0.0.1:5000" || !slices.Equal(d.Sessions, []string{"room", "news"}) {
		t.Errorf("device %+v", d)
	}
	resp = ts.localSession(ctxT(t), &fleet.LocalSessionRequest{AppId: testApp, Op: fleet.SessionOp_ONLINE, Dids: []string{"nobody", "a", "p"}})
	if len(resp.Devices) != 1 || resp.Devices[0].Did != "a" {
		t.Errorf("ONLINE by dids: %v, want only a", resp.Devices)
	}
	if resp := ts.localSession(ctxT(t), &fleet.LocalSessionRequest{AppId: otherApp, Op: fleet.SessionOp_ONLINE, Dids: []string{"a"}}); len(resp.Devices) != 0 {
		t.Error("ONLINE of another app lists this app's device")
	}
	if resp := ts.localSession(ctxT(t), &fleet.LocalSessionRequest{AppId: testApp, Op: fleet.SessionOp_COUNT, Session: "room"}); resp.Members != 2 {
		t.Errorf("COUNT room = %d, want 2 (the index, pending logins included)", resp.Members)
	}
}
