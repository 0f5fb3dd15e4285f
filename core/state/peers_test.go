package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
)

func TestGatherWithoutPeersIsLocalOnly(t *testing.T) {
	ts := newTestServer(t)
	mine, theirs, failed := gather(ctxT(t), ts.Server,
		func() string { return "local" },
		func(context.Context, *peer) (string, error) {
			t.Error("called a peer that does not exist")
			return "", nil
		})
	if mine != "local" || len(theirs) != 0 || len(failed) != 0 {
		t.Errorf("gather = %q %q %v", mine, theirs, failed)
	}
}

func TestGatherAsksEveryPeerAndNamesTheOnesThatFailed(t *testing.T) {
	ts := newTestServer(t)
	ts.addPeer(t, "s2", &fakePeer{})
	ts.addPeer(t, "s3", &fakePeer{})
	ts.addPeer(t, "s4", &fakePeer{})
	mine, theirs, failed := gather(ctxT(t), ts.Server,
		func() string { return "local" },
		func(_ context.Context, p *peer) (string, error) {
			if p.id == "s3" {
				return "", errPeerDown
			}
			return "from " + p.id, nil
		})
	if mine != "local" {
		t.Errorf("mine = %q", mine)
	}
	got := slices.Clone(theirs)
	slices.Sort(got)
	// A failed peer's answer is the zero value, in its place.
	if !slices.Equal(got, []string{"", "from s2", "from s4"}) {
		t.Errorf("theirs = %q", theirs)
	}
	if len(failed) != 1 || !errors.Is(failed[0], errPeerDown) || !strings.Contains(failed[0].Error(), "s3") {
		t.Errorf("failed = %v, want s3's error, naming it", failed)
	}
}

func TestPushAcrossStateServersMergesTheirTargets(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "near", "alice")
	far := &fakePeer{push: func(req *fleet.LocalPushRequest) (*fleet.LocalPushResponse, error) {
		return &fleet.LocalPushResponse{Targets: []*fleet.LocalTarget{
			{Did: "tablet", Uid: "alice", ConnId: 9, Status: int32(api.PushStatus_SENT), Seq: 4, Origin: fleet.TargetOrigin_UID},
			{Did: "far", ConnId: 8, Status: int32(api.PushStatus_SENT), Seq: 3, Origin: fleet.TargetOrigin_DID},
		}}, nil
	}}
	ts.addPeer(t, "s2", far)
	resp, err := (&apiHandler{ts.Server}).Push(ctxT(t), &api.PushRequest{
		Caller: caller(), Dids: []string{"far", "nobody", "near"}, Uids: []string{"alice"}, Payload: []byte("p"), WaitAck: false,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"far//SENT", "nobody//OFFLINE", "near//SENT", "tablet/alice/SENT", "near/alice/SENT"}
	if got := render(resp.Targets); !slices.Equal(got, want) {
		t.Errorf("targets %q\nwant    %q", got, want)
	}
	if resp.Targets[0].Seq != 3 || resp.Targets[0].ConnId != 8 {
		t.Errorf("the peer's target lost its seq or connection: %+v", resp.Targets[0])
	}
	// The peer acts for the same message, with the caller's key (it checks it again).
	if len(far.pushes) != 1 {
		t.Fatalf("the peer was asked %d times", len(far.pushes))
	}
	lp := far.pushes[0]
	if lp.MsgId != resp.MsgId || lp.Key != testKey || lp.AppId != testApp || !slices.Equal(lp.Dids, []string{"far", "nobody", "near"}) || string(lp.Payload) != "p" {
		t.Errorf("LocalPush to the peer: %+v", lp)
	}
}

func TestPushWithAnUnreachablePeerReportsFailedNotOffline(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "near", "")
	ts.addPeer(t, "s2", &fakePeer{push: func(*fleet.LocalPushRequest) (*fleet.LocalPushResponse, error) { return nil, errPeerDown }})
	resp, err := (&apiHandler{ts.Server}).Push(ctxT(t), &api.PushRequest{Caller: caller(), Dids: []string{"near", "elsewhere"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := render(resp.Targets); !slices.Equal(got, []string{"near//SENT", "elsewhere//FAILED"}) {
		t.Errorf("targets %q: what the unreachable peer may hold is FAILED", got)
	}
}

func TestSessionCallsAddUpEveryStateServer(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "a", "")
	peer := &fakePeer{session: func(req *fleet.LocalSessionRequest) (*fleet.LocalSessionResponse, error) {
		if req.Op == fleet.SessionOp_BIND && slices.Contains(req.Dids, "b") {
			return &fleet.LocalSessionResponse{Dids: []string{"b"}, Members: 4}, nil
		}
		return &fleet.LocalSessionResponse{Members: 4}, nil
	}}
	ts.addPeer(t, "s2", peer)
	resp, err := (&apiHandler{ts.Server}).Bind(ctxT(t), &api.BindRequest{Caller: caller(), Session: "room", Dids: []string{"a", "b", "c"}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Members != 5 || !slices.Equal(resp.Offline, []string{"c"}) {
		t.Errorf("Bind: members %d offline %q, want 5 and c", resp.Members, resp.Offline)
	}
	if len(peer.sessions) != 1 || peer.sessions[0].Key != testKey {
		t.Errorf("the peer got %+v", peer.sessions)
	}
}

// A session call a state server could not take may have been applied in part: the business must
// retry it, not believe it.
func TestSessionCallWithAnUnreachablePeerFails(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "a", "")
	ts.addPeer(t, "s2", &fakePeer{session: func(*fleet.LocalSessionRequest) (*fleet.LocalSessionResponse, error) { return nil, errPeerDown }})
	_, err := (&apiHandler{ts.Server}).Bind(ctxT(t), &api.BindRequest{Caller: caller(), Session: "room", Dids: []string{"a"}})
	if codeOf(err) != protocol.CodeOverloaded || !strings.Contains(err.Error(), "s2") {
		t.Errorf("Bind with a peer down: %v, want 1303 naming the peer", err)
	}
	// And a session push, which counts members first, is refused rather than half sent.
	_, err = (&apiHandler{ts.Server}).Push(ctxT(t), &api.PushRequest{Caller: caller(), Session: "room"})
	if codeOf(err) != protocol.CodeOverloaded {
		t.Errorf("session Push with a peer down: %v, want 1303", err)
	}
}

// A peer whose address refuses connections is gone: while its devices may still be on their way
// here (movingGrace) calls fail, since they may be missed; after that it holds nothing.
func TestAGonePeerFailsCallsWhileItsDevicesMoveThenIsSkipped(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "near", "")
	refused := fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	ts.addPeer(t, "s2", &fakePeer{
		push:    func(*fleet.LocalPushRequest) (*fleet.LocalPushResponse, error) { return nil, refused },
		session: func(*fleet.LocalSessionRequest) (*fleet.LocalSessionResponse, error) { return nil, refused },
	})
	h := &apiHandler{ts.Server}
	resp, err := h.Push(ctxT(t), &api.PushRequest{Caller: caller(), Dids: []string{"near", "moving"}})
	if err != nil || !slices.Equal(render(resp.Targets), []string{"near//SENT", "moving//FAILED"}) {
		t.Fatalf("push right after the peer went: %q %v, want moving FAILED, not OFFLINE", render(resp.Targets), err)
	}
	if _, err := h.Bind(ctxT(t), &api.BindRequest{Caller: caller(), Session: "room", Dids: []string{"near", "moving"}}); codeOf(err) != protocol.CodeOverloaded {
		t.Fatalf("Bind right after the peer went: %v, want 1303 (retry)", err)
	}
	p, _ := ts.peers.Get("s2")
	p.goneSince.Store(time.Now().Add(-movingGrace).UnixNano())
	resp, err = h.Push(ctxT(t), &api.PushRequest{Caller: caller(), Dids: []string{"near", "moving"}})
	if err != nil || !slices.Equal(render(resp.Targets), []string{"near//SENT", "moving//OFFLINE"}) {
		t.Errorf("push once the peer is long gone: %q %v, want moving OFFLINE", render(resp.Targets), err)
	}
	if r, err := h.Bind(ctxT(t), &api.BindRequest{Caller: caller(), Session: "room", Dids: []string{"near"}}); err != nil || r.Members != 1 {
		t.Errorf("Bind once the peer is long gone: %+v %v", r, err)
	}
}
