package gatewaytest

import (
	"context"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/poll"
)

// Push calls the gateway's Push RPC as the state server does, and returns the connections the
// gateway no longer holds (its answer's Gone).
func (h *Harness) Push(frames ...*fleet.DownFrame) (gone []int64) {
	h.t.Helper()
	req := &fleet.PushRequest{Frames: frames, StateId: StateID, Proof: h.proof}
	return call(h, "Push", func(ctx context.Context) (*fleet.PushResponse, error) { return h.rpc.Push(ctx, req) }).Gone
}

// Sessions calls the gateway's Sessions RPC as the state server does, and returns the connections
// the gateway no longer holds (its answer's Gone).
func (h *Harness) Sessions(changes ...*fleet.SessionChange) (gone []int64) {
	h.t.Helper()
	req := &fleet.SessionsRequest{Changes: changes, StateId: StateID, Proof: h.proof}
	return call(h, "Sessions", func(ctx context.Context) (*fleet.SessionsResponse, error) { return h.rpc.Sessions(ctx, req) }).Gone
}

// Join is the change that puts d in session, for Sessions.
func Join(d *Device, session string) *fleet.SessionChange {
	return &fleet.SessionChange{ConnId: int64(d.ID), Session: session, Join: true}
}

// Leave is the change that takes d out of session, for Sessions.
func Leave(d *Device, session string) *fleet.SessionChange {
	return &fleet.SessionChange{ConnId: int64(d.ID), Session: session}
}

// call runs one RPC to the gateway as the state server, failing the test on an error.
func call[R any](h *Harness, what string, do func(ctx context.Context) (R, error)) R {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	r, err := do(ctx)
	if err != nil {
		h.t.Fatalf("%s: %v", what, err)
	}
	return r
}
