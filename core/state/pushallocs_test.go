package state

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// A push to one did is merged without mergeTargets' maps, into the plan's own storage, with the
// same answer mergeTargets gives: found here or at a peer (the last report wins, as its map
// keeps), not found (offline, or failed when a peer could not be asked), and the general way when
// a part reports anything else.
func TestMergeOfOneDidMatchesMergeTargets(t *testing.T) {
	mine := &fleet.LocalPushResponse{Targets: []*fleet.LocalTarget{
		{Did: "a", ConnId: 3, Status: int32(api.PushStatus_SENT), Seq: 9, Origin: fleet.TargetOrigin_DID},
	}}
	theirs := &fleet.LocalPushResponse{Targets: []*fleet.LocalTarget{
		{Did: "a", ConnId: 4, Status: int32(api.PushStatus_REJECTED), Code: 2001, Message: "no", Origin: fleet.TargetOrigin_DID},
	}}
	member := &fleet.LocalPushResponse{Targets: []*fleet.LocalTarget{
		{Did: "m", Status: int32(api.PushStatus_SENT), Origin: fleet.TargetOrigin_SESSION},
	}}
	for i, tc := range []struct {
		parts  []*fleet.LocalPushResponse
		failed []error
	}{
		{[]*fleet.LocalPushResponse{mine}, nil},
		{[]*fleet.LocalPushResponse{nil, mine}, nil},
		{[]*fleet.LocalPushResponse{theirs, mine}, nil},
		{[]*fleet.LocalPushResponse{mine, theirs}, nil},
		{[]*fleet.LocalPushResponse{{}}, nil},
		{nil, nil},
		{[]*fleet.LocalPushResponse{{}}, []error{errPeerDown}},
		{[]*fleet.LocalPushResponse{mine, member}, nil},
		{[]*fleet.LocalPushResponse{member}, []error{errPeerDown}},
	} {
		req := &api.PushRequest{Dids: []string{"a"}}
		p := &plannedPush{req: req}
		got, want := p.merge(tc.parts, tc.failed), mergeTargets(req, tc.parts, tc.failed)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("case %d: merged %s, want %s", i, dump(got), dump(want))
		}
	}
}

func dump(ts []*api.PushTarget) string {
	out := "["
	for _, t := range ts {
		out += fmt.Sprintf("%+v ", *t)
	}
	return out + "]"
}

// A PushBatch of pushes to one did each costs the state server a bounded number of heap objects
// per push (the plans, answers and waits of a batch are a few allocations, not a few per push):
// 64 pushes to 64 logged-in devices, the fake gateway accepting the frames. It costs 3 now (the
// frame to the gateway, its body, the in-flight entry's share of its map); 14 before the batch's
// storage was shared. The bound leaves some room.
func TestPushBatchAllocationsPerPush(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	ts := newTestServer(t, func(c *Config) { c.MaxInflight = 1 << 20 })
	const n = 64
	reqs := make([]*api.PushRequest, n)
	for i := range reqs {
		did := fmt.Sprintf("d%d", i)
		ts.loginDevice(t, uint64(i+1), testApp, did, "")
		reqs[i] = &api.PushRequest{Dids: []string{did}, Payload: []byte("hello")} // at least once: tracked until the ACK
	}
	h := &apiHandler{ts.Server}
	req := &api.PushBatchRequest{Caller: caller(), Pushes: reqs}
	ctx := ctxT(t)
	push := func() {
		resp, err := h.PushBatch(ctx, req)
		if err != nil || len(resp.Results) != n || resp.Results[n-1].Response.Targets[0].Status != api.PushStatus_SENT {
			t.Fatalf("PushBatch: %v %+v", err, resp)
		}
	}
	push()
	perPush := testing.AllocsPerRun(20, push) / n
	t.Logf("%.1f heap objects per push", perPush)
	if perPush > 5 {
		t.Errorf("%.1f heap objects per push of a batch, want at most 5", perPush)
	}
}
