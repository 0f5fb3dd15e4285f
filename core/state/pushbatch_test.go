package state

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
)

func TestPushBatchAcrossStateServersAsksEachPeerOnce(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "near", "")
	far := &fakePeer{push: func(req *fleet.LocalPushRequest) (*fleet.LocalPushResponse, error) {
		if !slices.Contains(req.Dids, "far") {
			return &fleet.LocalPushResponse{}, nil
		}
		return &fleet.LocalPushResponse{Targets: []*fleet.LocalTarget{
			{Did: "far", ConnId: 8, Status: int32(api.PushStatus_SENT), Seq: req.MsgId, Origin: fleet.TargetOrigin_DID},
		}}, nil
	}}
	ts.addPeer(t, "s2", far)
	reqs := []*api.PushRequest{
		{Dids: []string{"far", "near"}, Payload: []byte("a")},
		{Payload: []byte("no target")},
		{Dids: []string{"nobody", "far"}, Payload: []byte("b")},
	}
	res, err := ts.PushBatch(ctxT(t), caller(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if got := render(res[0].Resp.Targets); !slices.Equal(got, []string{"far//SENT", "near//SENT"}) {
		t.Errorf("push 0: %q", got)
	}
	if res[1].Err == nil || res[1].Err.Code != int32(protocol.CodeInvalidArgument) {
		t.Errorf("push 1: %+v, want its own 1401", res[1])
	}
	if got := render(res[2].Resp.Targets); !slices.Equal(got, []string{"nobody//OFFLINE", "far//SENT"}) {
		t.Errorf("push 2: %q", got)
	}
	if res[0].Resp.Targets[0].Seq != res[0].Resp.MsgId || res[2].Resp.Targets[1].Seq != res[2].Resp.MsgId {
		t.Errorf("the peer's answers were not matched to their pushes: %+v %+v", res[0].Resp.Targets[0], res[2].Resp.Targets[1])
	}
	// One call for the batch, carrying the valid pushes in order, with the caller's key.
	if far.batches != 1 || len(far.pushes) != 2 || string(far.pushes[0].Payload) != "a" || string(far.pushes[1].Payload) != "b" || far.pushes[0].Key != testKey {
		t.Errorf("the peer got %d batches: %+v", far.batches, far.pushes)
	}
}

func TestPushBatchWithAnUnreachablePeerReportsFailed(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "near", "")
	ts.addPeer(t, "s2", &fakePeer{push: func(*fleet.LocalPushRequest) (*fleet.LocalPushResponse, error) { return nil, errPeerDown }})
	res, err := ts.PushBatch(ctxT(t), caller(), []*api.PushRequest{{Dids: []string{"near", "elsewhere"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := render(res[0].Resp.Targets); !slices.Equal(got, []string{"near//SENT", "elsewhere//FAILED"}) {
		t.Errorf("targets %q: what the unreachable peer may hold is FAILED", got)
	}
}

func TestPushBatchIsCheckedAsAWholeAndPerPush(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "d", "")
	if _, err := ts.PushBatch(ctxT(t), &api.Caller{AppId: testApp, Key: "wrong"}, []*api.PushRequest{{Dids: []string{"d"}}}); codeOf(err) != protocol.CodeAppMismatch {
		t.Errorf("wrong key: %v", err)
	}
	if _, err := ts.PushBatch(ctxT(t), caller(), nil); codeOf(err) != protocol.CodeInvalidArgument {
		t.Errorf("empty batch: %v", err)
	}
	if _, err := ts.PushBatch(ctxT(t), caller(), make([]*api.PushRequest, MaxBatchPushes+1)); codeOf(err) != protocol.CodeInvalidArgument {
		t.Errorf("too large a batch: %v", err)
	}
	many := make([]string, MaxNamedTargets)
	for i := range many {
		many[i] = "x"
	}
	big := make([]*api.PushRequest, MaxPushTargets/MaxNamedTargets+1)
	for i := range big {
		big[i] = &api.PushRequest{Dids: many}
	}
	if _, err := ts.PushBatch(ctxT(t), caller(), big); codeOf(err) != protocol.CodeInvalidArgument {
		t.Errorf("too many targets over the batch: %v", err)
	}
	res, err := ts.PushBatch(ctxT(t), caller(), []*api.PushRequest{
		nil,
		{Caller: &api.Caller{AppId: testApp, Key: "wrong"}, Dids: []string{"d"}},
		{Caller: caller(), Dids: []string{"d"}},
		{Dids: []string{"d"}, Qos: 7},
		{Caller: &api.Caller{AppId: otherApp, Key: otherKey}, Dids: []string{"d"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []protocol.Code{protocol.CodeInvalidArgument, protocol.CodeAppMismatch, 0, protocol.CodeInvalidArgument, protocol.CodeAppMismatch}
	for i, r := range res {
		var code protocol.Code
		if r.Err != nil {
			code = protocol.Code(r.Err.Code)
		} else if r.Resp == nil || r.Resp.Targets[0].Status != api.PushStatus_SENT {
			t.Errorf("push %d: %+v", i, r.Resp)
		}
		if code != want[i] {
			t.Errorf("push %d: code %d (%v), want %d", i, code, r.Err, want[i])
		}
	}
}

// Concurrent batches to the same connections: each connection's downlinks leave for its gateway
// in seq order, without gaps, and each sender's pushes to a connection in the order it made them.
func TestConcurrentPushBatchesKeepPerConnectionOrder(t *testing.T) {
	ts := newTestServer(t)
	const conns, senders, batches, per = 10, 4, 3, 40
	for c := range conns {
		ts.loginDevice(t, uint64(c+1), testApp, fmt.Sprintf("d%d", c), "")
	}
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				reqs := make([]*api.PushRequest, per)
				for i := range reqs {
					reqs[i] = &api.PushRequest{Dids: []string{fmt.Sprintf("d%d", i%conns)}, Payload: fmt.Appendf(nil, "%d %d", g, b*per+i)}
				}
				res, err := ts.PushBatch(context.Background(), caller(), reqs)
				if err != nil {
					t.Error(err)
					return
				}
				for i, r := range res {
					if r.Err != nil || r.Resp.Targets[0].Status != api.PushStatus_SENT {
						t.Errorf("sender %d push %d: %+v %v", g, i, r.Resp, r.Err)
					}
				}
			}
		}()
	}
	wg.Wait()
	want := senders * batches * per / conns
	for c := range conns {
		frames := untilFrames(t, ts.gw, uint64(c+1), want, "downlinks", func(f *fleet.DownFrame) bool { return protocol.Signal(f.Signal) == protocol.SigDownlink })
		last := map[int]int{}
		for k, f := range frames {
			if f.Seq != int64(k+1) {
				t.Fatalf("conn %d: frame %d has seq %d", c+1, k, f.Seq)
			}
			var dl protocol.Downlink
			if err := dl.Decode(f.Body); err != nil {
				t.Fatal(err)
			}
			var g, n int
			if _, err := fmt.Sscanf(string(dl.Payload), "%d %d", &g, &n); err != nil {
				t.Fatalf("payload %q: %v", dl.Payload, err)
			}
			if prev, ok := last[g]; ok && n <= prev {
				t.Fatalf("conn %d: sender %d's push %d after %d", c+1, g, n, prev)
			}
			last[g] = n
		}
	}
}

func TestPushBatchBoundsItsDirectTargets(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "member", "")
	if _, err := (&apiHandler{ts.Server}).Bind(ctxT(t), &api.BindRequest{Caller: caller(), Session: "room", Dids: []string{"member"}}); err != nil {
		t.Fatal(err)
	}
	many := make([]string, MaxNamedTargets)
	for i := range many {
		many[i] = fmt.Sprintf("offline-%d", i)
	}
	var reqs []*api.PushRequest
	for range MaxPushTargets / MaxNamedTargets {
		reqs = append(reqs, &api.PushRequest{Dids: many, Qos: api.QoS_AT_MOST_ONCE})
	}
	reqs = append(reqs, &api.PushRequest{Session: "room", Payload: []byte("one too many")})
	res, err := ts.PushBatch(ctxT(t), caller(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res[:len(res)-1] {
		if r.Err != nil || len(r.Resp.Targets) != MaxNamedTargets {
			t.Fatalf("push %d: %v", i, r.Err)
		}
	}
	if last := res[len(res)-1]; last.Err == nil || last.Err.Code != int32(protocol.CodeInvalidArgument) || !strings.Contains(last.Err.Message, "direct targets") {
		t.Errorf("the push past %d direct targets: %+v, want its own 1401", MaxPushTargets, last)
	}
}
