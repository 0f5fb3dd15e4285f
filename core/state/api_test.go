package state

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
)

// codeOf is the Plato code of an RPC error, 0 for none or another error.
func codeOf(err error) protocol.Code {
	var pe *api.PlatoError
	if errors.As(err, &pe) {
		return protocol.Code(pe.Code)
	}
	return 0
}

func caller() *api.Caller { return &api.Caller{AppId: testApp, Key: testKey} }

func TestAuthorize(t *testing.T) {
	ts := newTestServer(t)
	for _, tc := range []struct {
		name string
		c    *api.Caller
		want protocol.Code
	}{
		{"no caller", nil, protocol.CodeInvalidArgument},
		{"no app", &api.Caller{Key: testKey}, protocol.CodeInvalidArgument},
		{"app without a key", &api.Caller{AppId: "nokey", Key: testKey}, protocol.CodeAppMismatch},
		{"an app not declared, with no key", &api.Caller{AppId: "empty", Key: ""}, protocol.CodeAppMismatch},
		{"no key", &api.Caller{AppId: testApp}, protocol.CodeAppMismatch},
		{"wrong key", &api.Caller{AppId: testApp, Key: testKey + "x"}, protocol.CodeAppMismatch},
		{"prefix of the key", &api.Caller{AppId: testApp, Key: testKey[:16]}, protocol.CodeAppMismatch},
		{"another app's key", &api.Caller{AppId: testApp, Key: otherKey}, protocol.CodeAppMismatch},
		{"right key", caller(), 0},
	} {
		app, err := ts.authorize(tc.c)
		if got := codeOf(err); got != tc.want || (err == nil) != (tc.want == 0) {
			t.Errorf("%s: %v, want code %d", tc.name, err, tc.want)
		}
		if err == nil && app != testApp {
			t.Errorf("%s: app %q", tc.name, app)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{"alice", true},
		{"名前", true},
		{strings.Repeat("x", maxNameLen), true},
		{"", false},
		{strings.Repeat("x", maxNameLen+1), false},
		{"a\x00b", false},
		{"\xff", false},
	} {
		err := checkName("a did", tc.v)
		if (err == nil) != tc.ok || (err != nil && codeOf(err) != protocol.CodeInvalidArgument) {
			t.Errorf("checkName(%q) = %v, want ok %v", tc.v, err, tc.ok)
		}
	}
	if err := checkNames("a did", []string{"a", "b", ""}); codeOf(err) != protocol.CodeInvalidArgument {
		t.Errorf("checkNames with one empty name: %v", err)
	}
	if err := checkNames("a did", nil); err != nil {
		t.Errorf("checkNames(nil) = %v", err)
	}
}

func TestPushArgumentsAreChecked(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxBody = 108 })
	a := &apiHandler{ts.Server}
	many := make([]string, MaxNamedTargets+1)
	for i := range many {
		many[i] = "d"
	}
	for _, tc := range []struct {
		name string
		req  *api.PushRequest
		want protocol.Code
	}{
		{"wrong key", &api.PushRequest{Caller: &api.Caller{AppId: testApp, Key: "nope"}, Dids: []string{"a"}}, protocol.CodeAppMismatch},
		{"no target", &api.PushRequest{Caller: caller()}, protocol.CodeInvalidArgument},
		{"too many targets", &api.PushRequest{Caller: caller(), Dids: many}, protocol.CodeInvalidArgument},
		{"payload over the device maximum", &api.PushRequest{Caller: caller(), Dids: []string{"a"}, Payload: make([]byte, 101)}, protocol.CodeInvalidArgument},
		{"unknown qos", &api.PushRequest{Caller: caller(), Dids: []string{"a"}, Qos: 3}, protocol.CodeInvalidArgument},
		{"negative qos", &api.PushRequest{Caller: caller(), Dids: []string{"a"}, Qos: -1}, protocol.CodeInvalidArgument},
		{"empty did", &api.PushRequest{Caller: caller(), Dids: []string{"a", ""}}, protocol.CodeInvalidArgument},
		{"uid with NUL", &api.PushRequest{Caller: caller(), Uids: []string{"a\x00"}}, protocol.CodeInvalidArgument},
		{"over-long session", &api.PushRequest{Caller: caller(), Session: strings.Repeat("s", maxNameLen+1)}, protocol.CodeInvalidArgument},
		{"payload that just fits", &api.PushRequest{Caller: caller(), Dids: []string{"a"}, Payload: make([]byte, 100)}, 0},
	} {
		resp, err := a.Push(ctxT(t), tc.req)
		if got := codeOf(err); got != tc.want || (err == nil) != (tc.want == 0) {
			t.Errorf("%s: %v, want code %d", tc.name, err, tc.want)
		}
		if err == nil && resp == nil {
			t.Errorf("%s: no response", tc.name)
		}
	}
}

// render shows push targets as "did/uid/status" for comparison.
func render(ts []*api.PushTarget) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Did + "/" + t.Uid + "/" + t.Status.String()
	}
	return out
}

func TestPushReportsTargetsAsNamed(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "a", "alice")
	ts.loginDevice(t, 2, testApp, "b", "bob")
	c := ts.loginDevice(t, 3, testApp, "c", "")
	ts.sessions.join(c, []string{"room"})
	resp, err := (&apiHandler{ts.Server}).Push(ctxT(t), &api.PushRequest{
		Caller: caller(), Dids: []string{"nobody", "a", "nobody", "a"}, Uids: []string{"bob", "alice", "carol"}, Session: "room", Payload: []byte("p"),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Named dids in order, once each; each uid's devices (alice's only device is a, named by did
	// too: it is not offline); then the session's members.
	want := []string{"nobody//OFFLINE", "a//SENT", "b/bob/SENT", "a/alice/SENT", "/carol/OFFLINE", "c//SENT"}
	if got := render(resp.Targets); !slices.Equal(got, want) {
		t.Errorf("targets %q\nwant     %q", got, want)
	}
	if resp.Route != api.Route_DIRECT || resp.Qos != api.QoS_AT_LEAST_ONCE || resp.SessionMembers != 1 || resp.MsgId == 0 {
		t.Errorf("route %v qos %v members %d msg %d", resp.Route, resp.Qos, resp.SessionMembers, resp.MsgId)
	}
	// a is sent one copy, however often it is named.
	f := untilFrame(t, ts.gw, 1, protocol.SigDownlink, 1)
	var dl protocol.Downlink
	if err := dl.Decode(f.Body); err != nil || int64(dl.MsgID) != resp.MsgId || string(dl.Payload) != "p" {
		t.Errorf("a's downlink %+v (%v), want msg %d", dl, err, resp.MsgId)
	}
	untilFrame(t, ts.gw, 3, protocol.SigDownlink, 1)
	if n := downlinks(ts.gw, 1); n != 1 {
		t.Errorf("a got %d copies", n)
	}
}

func TestPushNeverReachesAnotherAppsDevices(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "a", "alice")
	resp, err := (&apiHandler{ts.Server}).Push(ctxT(t), &api.PushRequest{
		Caller: &api.Caller{AppId: otherApp, Key: otherKey}, Dids: []string{"a"}, Uids: []string{"alice"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := render(resp.Targets); !slices.Equal(got, []string{"a//OFFLINE", "/alice/OFFLINE"}) {
		t.Errorf("targets %q: another app's did and uid must look offline", got)
	}
	if n := len(ts.gw.framesOf(1, func(f *fleet.DownFrame) bool { return protocol.Signal(f.Signal) == protocol.SigDownlink })); n != 0 {
		t.Error("another app's push reached the device")
	}
}

func TestMergeTargets(t *testing.T) {
	req := &api.PushRequest{Dids: []string{"d1", "d2", "d1", "d3"}, Uids: []string{"u1", "u2", "u1"}}
	lt := func(did, uid string, o fleet.TargetOrigin, status api.PushStatus) *fleet.LocalTarget {
		return &fleet.LocalTarget{Did: did, Uid: uid, Origin: o, Status: int32(status)}
	}
	// Two state servers answered in another order than the request's, one not at all.
	parts := []*fleet.LocalPushResponse{
		{Targets: []*fleet.LocalTarget{
			lt("m1", "", fleet.TargetOrigin_SESSION, api.PushStatus_SENT),
			lt("phone", "u1", fleet.TargetOrigin_UID, api.PushStatus_ACKED),
			lt("d3", "", fleet.TargetOrigin_DID, api.PushStatus_SENT),
		}},
		nil,
		{Targets: []*fleet.LocalTarget{
			lt("laptop", "u1", fleet.TargetOrigin_UID, api.PushStatus_TIMEOUT),
			lt("d1", "", fleet.TargetOrigin_DID, api.PushStatus_REJECTED),
			lt("m2", "", fleet.TargetOrigin_SESSION, api.PushStatus_SENT),
		}},
	}
	got := render(mergeTargets(req, parts, nil))
	want := []string{"d1//REJECTED", "d2//OFFLINE", "d3//SENT", "phone/u1/ACKED", "laptop/u1/TIMEOUT", "/u2/OFFLINE", "m1//SENT", "m2//SENT"}
	if !slices.Equal(got, want) {
		t.Errorf("merged %q\nwant   %q", got, want)
	}
	// A state server that could not be asked may hold what nobody reported: that is not offline.
	out := mergeTargets(req, parts, []error{errPeerDown})
	got = render(out)
	want = []string{"d1//REJECTED", "d2//FAILED", "d3//SENT", "phone/u1/ACKED", "laptop/u1/TIMEOUT", "/u2/FAILED", "m1//SENT", "m2//SENT"}
	if !slices.Equal(got, want) {
		t.Errorf("merged with a failed peer %q\nwant   %q", got, want)
	}
	if !strings.Contains(out[1].Message, errPeerDown.Error()) {
		t.Errorf("a FAILED target says %q, not why", out[1].Message)
	}
	if got := mergeTargets(&api.PushRequest{}, nil, nil); len(got) != 0 {
		t.Errorf("nothing named, nothing answered: %q", render(got))
	}
}

func TestBindReportsOfflineDIDsOnce(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "a", "")
	a := &apiHandler{ts.Server}
	resp, err := a.Bind(ctxT(t), &api.BindRequest{Caller: caller(), Session: "room", Dids: []string{"a", "x", "x", "a", "y"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resp.Offline, []string{"x", "y"}) || resp.Members != 1 {
		t.Errorf("Bind: offline %q members %d, want x y and 1", resp.Offline, resp.Members)
	}
	for _, tc := range []struct {
		name string
		req  *api.BindRequest
		want protocol.Code
	}{
		{"wrong key", &api.BindRequest{Caller: &api.Caller{AppId: testApp}, Session: "room"}, protocol.CodeAppMismatch},
		{"no session", &api.BindRequest{Caller: caller(), Dids: []string{"a"}}, protocol.CodeInvalidArgument},
		{"bad did", &api.BindRequest{Caller: caller(), Session: "room", Dids: []string{"a\x00"}}, protocol.CodeInvalidArgument},
	} {
		if _, err := a.Bind(ctxT(t), tc.req); codeOf(err) != tc.want {
			t.Errorf("%s: %v, want %d", tc.name, err, tc.want)
		}
	}
}

func TestUnbindNeedsDIDsOrAll(t *testing.T) {
	ts := newTestServer(t)
	for i, did := range []string{"a", "b"} {
		ts.sessions.join(ts.loginDevice(t, uint64(i+1), testApp, did, ""), []string{"room"})
	}
	a := &apiHandler{ts.Server}
	if _, err := a.Unbind(ctxT(t), &api.UnbindRequest{Caller: caller(), Session: "room"}); codeOf(err) != protocol.CodeInvalidArgument {
		t.Errorf("Unbind naming nobody: %v, want 1401", err)
	}
	resp, err := a.Unbind(ctxT(t), &api.UnbindRequest{Caller: caller(), Session: "room", Dids: []string{"a"}})
	if err != nil || resp.Members != 1 {
		t.Fatalf("Unbind a: %+v %v, want 1 member left", resp, err)
	}
	resp, err = a.Unbind(ctxT(t), &api.UnbindRequest{Caller: caller(), Session: "room", All: true})
	if err != nil || resp.Members != 0 || ts.sessions.count() != 0 {
		t.Fatalf("Unbind all: %+v %v, want the session empty", resp, err)
	}
}

func TestKickListsEachKickedDIDOnce(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "a", "")
	a := &apiHandler{ts.Server}
	resp, err := a.Kick(ctxT(t), &api.KickRequest{Caller: caller(), Dids: []string{"a", "x", "a"}, Message: "bye"})
	if err != nil || !slices.Equal(resp.Kicked, []string{"a"}) {
		t.Fatalf("Kick: %+v %v, want a once", resp, err)
	}
	for _, tc := range []struct {
		name string
		req  *api.KickRequest
	}{
		{"no dids", &api.KickRequest{Caller: caller()}},
		{"long message", &api.KickRequest{Caller: caller(), Dids: []string{"a"}, Message: strings.Repeat("m", 1025)}},
		{"bad did", &api.KickRequest{Caller: caller(), Dids: []string{""}}},
	} {
		if _, err := a.Kick(ctxT(t), tc.req); codeOf(err) != protocol.CodeInvalidArgument {
			t.Errorf("%s: %v, want 1401", tc.name, err)
		}
	}
}

func TestOnlineNamesASessionOrDIDs(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "a", "alice")
	a := &apiHandler{ts.Server}
	resp, err := a.Online(ctxT(t), &api.OnlineRequest{Caller: caller(), Dids: []string{"a", "x"}})
	if err != nil || len(resp.Devices) != 1 || resp.Devices[0].Did != "a" || resp.Devices[0].Uid != "alice" {
		t.Fatalf("Online: %+v %v", resp, err)
	}
	for _, tc := range []struct {
		name string
		req  *api.OnlineRequest
	}{
		{"neither", &api.OnlineRequest{Caller: caller()}},
		{"both", &api.OnlineRequest{Caller: caller(), Session: "room", Dids: []string{"a"}}},
		{"bad session", &api.OnlineRequest{Caller: caller(), Session: "\xff"}},
	} {
		if _, err := a.Online(ctxT(t), tc.req); codeOf(err) != protocol.CodeInvalidArgument {
			t.Errorf("%s: %v, want 1401", tc.name, err)
		}
	}
}

// LocalPush and LocalSession share the address business servers call: they check the key too.
func TestLocalCallsCheckTheAppKey(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "a", "")
	h := &handler{ts.Server}
	if _, err := h.LocalPush(ctxT(t), &fleet.LocalPushRequest{AppId: testApp, Key: otherKey, Dids: []string{"a"}}); codeOf(err) != protocol.CodeAppMismatch {
		t.Errorf("LocalPush with another app's key: %v", err)
	}
	if _, err := h.LocalSession(ctxT(t), &fleet.LocalSessionRequest{AppId: testApp, Op: fleet.SessionOp_KICK, Dids: []string{"a"}}); codeOf(err) != protocol.CodeAppMismatch {
		t.Errorf("LocalSession without a key: %v", err)
	}
	if ts.conns.byDID(testApp, "a") == nil {
		t.Fatal("an unauthorized LocalSession kicked the device")
	}
	resp, err := h.LocalPush(ctxT(t), &fleet.LocalPushRequest{AppId: testApp, Key: testKey, Dids: []string{"a"}})
	if err != nil || len(resp.Targets) != 1 {
		t.Errorf("LocalPush with the key: %+v %v", resp, err)
	}
}
