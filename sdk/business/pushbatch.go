package business

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudwego/kitex/client/callopt"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// MaxBatchPushes is the most pushes one PushBatch call takes (Plato refuses more with
// CodeInvalidArgument). Over the whole batch, at most 100,000 dids and uids may be named.
const MaxBatchPushes = 1000

// BatchResult is how one push of a batch went: Result as Push returns it, or Err (an *Error: find
// its code with CodeOf) when Plato refused that push; the others are not affected.
type BatchResult struct {
	Result *PushResult
	Err    error
}

// PushBatch sends many pushes in one call, each as Push would, and answers each in order.
// Downlinks to one device connection arrive in the batch's order. It costs Plato far less per
// message than one Push call each. The error is for the whole call: Plato could not be reached,
// or refused the batch (wrong key, more than MaxBatchPushes).
func (c *Client) PushBatch(ctx context.Context, pushes []Push) ([]BatchResult, error) {
	req := &api.PushBatchRequest{Caller: c.caller(), Pushes: make([]*api.PushRequest, len(pushes))}
	var wait time.Duration
	for i, p := range pushes {
		r, w := c.pushRequest(p)
		r.Caller = nil // the batch's caller applies
		req.Pushes[i] = r
		wait = max(wait, w)
	}
	var opts []callopt.Option
	if wait > 0 {
		opts = append(opts, callopt.WithRPCTimeout(c.timeout+wait))
	}
	args := &api.PlatoPushBatchArgs{Req: req}
	res := &api.PlatoPushBatchResult{}
	if err := c.call(ctx, "PushBatch", fmt.Sprintf("pushing a batch of %d", len(pushes)), args, res, opts...); err != nil {
		return nil, err
	}
	results := res.GetSuccess().GetResults()
	if len(results) != len(pushes) {
		return nil, fmt.Errorf("pushing a batch of %d: Plato answered %d results", len(pushes), len(results))
	}
	out := make([]BatchResult, len(pushes))
	for i, r := range results {
		if e := r.GetError(); e != nil {
			out[i].Err = fmt.Errorf("%s: %w", pushWhat(pushes[i]), fromPlato(e))
			continue
		}
		out[i].Result = pushResultOf(r.GetResponse())
	}
	return out, nil
}
