package state

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
)

// MaxBatchPushes bounds the pushes of one PushBatch call.
const MaxBatchPushes = 1000

// PushResult is the outcome of one push of a batch: Resp as Push answers it, or Err as Push
// would have refused it.
type PushResult struct {
	Resp *api.PushResponse
	Err  *api.PlatoError
}

// PushBatch pushes many messages for one caller, as Push would one by one, and answers each.
// Downlinks to one connection keep the batch's order; the pushes share the pipeline's batches
// and, in a fleet, one call per peer state server. The error refuses the whole batch (the caller,
// its size); a push's own refusal is in its PushOutcome. Business RPC's PushBatch calls it, and any
// other API (HTTP) can.
func (s *Server) PushBatch(ctx context.Context, caller *api.Caller, reqs []*api.PushRequest) ([]PushResult, error) {
	app, err := s.authorize(caller)
	if err != nil {
		return nil, err
	}
	switch {
	case len(reqs) == 0:
		return nil, platoError(protocol.CodeInvalidArgument, "no pushes in the batch")
	case len(reqs) > MaxBatchPushes:
		return nil, platoError(protocol.CodeInvalidArgument, "%d pushes exceed the maximum of %d per batch", len(reqs), MaxBatchPushes)
	}
	named := 0
	for _, r := range reqs {
		if r != nil {
			named += len(r.Dids) + len(r.Uids)
		}
	}
	if named > MaxPushTargets {
		return nil, platoError(protocol.CodeInvalidArgument, "%d dids and uids named in the batch exceed the maximum of %d", named, MaxPushTargets)
	}
	out := make([]PushResult, len(reqs))
	plans := make([]*plannedPush, len(reqs))
	planned := make([]plannedPush, len(reqs)) // the batch's plans and answers, one allocation
	for i, req := range reqs {
		if perr := s.checkCaller(app, req); perr != nil {
			out[i].Err = perr
			continue
		}
		plans[i], out[i].Err = s.checkPushInto(ctx, &planned[i], app, caller.Key, req)
	}
	s.routeAll(ctx, plans, out)

	// Each push goes to this server's connections and to every peer's, in the batch's order.
	var lps []*fleet.LocalPushRequest
	var idx []int // lps[k] is the push reqs[idx[k]]
	timeout := time.Duration(0)
	for i, p := range plans {
		if p == nil {
			continue
		}
		lps = append(lps, p.lp)
		idx = append(idx, i)
		timeout = max(timeout, p.timeout)
	}
	if len(lps) == 0 {
		return out, nil
	}
	mine, theirs, failed := gather(ctx, s,
		func() []*fleet.LocalPushResponse { return s.localPushBatch(ctx, lps) },
		func(ctx context.Context, p *peer) ([]*fleet.LocalPushResponse, error) {
			resp, err := p.cli.LocalPushBatch(ctx, &fleet.LocalPushBatchRequest{Pushes: lps}, s.peerTimeout(timeout))
			if err != nil {
				return nil, err
			}
			if len(resp.Results) != len(lps) {
				return nil, fmt.Errorf("state server %s answered %d of %d pushes", p.id, len(resp.Results), len(lps))
			}
			return resp.Results, nil
		})
	parts := make([]*fleet.LocalPushResponse, 0, len(theirs)+1) // reused: merge keeps none
	for k, i := range idx {
		parts = parts[:0]
		for _, t := range theirs {
			if t != nil {
				parts = append(parts, t[k])
			}
		}
		parts = append(parts, mine[k])
		p := plans[i]
		p.resp.Targets = p.merge(parts, failed)
		out[i].Resp = p.resp
	}
	return out, nil
}

// checkCaller refuses a push of a batch that names a caller other than the batch's.
func (s *Server) checkCaller(app string, req *api.PushRequest) *api.PlatoError {
	if req == nil {
		return platoError(protocol.CodeInvalidArgument, "the push is empty")
	}
	c := req.Caller
	if c == nil || (c.AppId == "" && c.Key == "") {
		return nil
	}
	own, err := s.authorize(c)
	if err != nil {
		return asPlatoError(err)
	}
	if own != app {
		return platoError(protocol.CodeAppMismatch, "the push names app %q in a batch of app %q", own, app)
	}
	return nil
}

// routeAll runs the route signal of every planned push through the pipeline at once, so they
// share its batches, and settles each: a push whose route is refused or not decided in time
// gets its error and is dropped from plans.
func (s *Server) routeAll(ctx context.Context, plans []*plannedPush, out []PushResult) {
	type routed struct {
		r    routing
		err  error
		done bool
	}
	res := make([]routed, len(plans))
	var mu sync.Mutex
	var wg sync.WaitGroup
	set := func(i int, r routing, err error) {
		mu.Lock()
		res[i] = routed{r: r, err: err, done: true}
		mu.Unlock()
		wg.Done()
	}
	// The batch's pushes naming no session (the common case) skip the pipeline when no stage
	// would be called for them; asked once per batch: a reload between pushes changes nothing
	// about their order.
	sessionless, piped := false, false
	for _, p := range plans {
		if p != nil {
			sessionless = s.routeSkips(p.app, false)
			break
		}
	}
	for i, p := range plans {
		if p == nil {
			continue
		}
		wg.Add(1)
		ev := p.routeEvent()
		if s.pipe == nil || ev.Session == "" && sessionless {
			r, err := s.routeOf(ev.QoS, ev.Payload, pipeline.Outcome{})
			set(i, r, err)
			continue
		}
		// One closure per push, keeping only what routeOf needs.
		piped = true
		qos, payload := ev.QoS, ev.Payload
		s.through(ev, refusable, func(out pipeline.Outcome) {
			r, err := s.routeOf(qos, payload, out)
			set(i, r, err)
		})
	}
	if piped { // else every route is settled: no goroutine to wait with
		waitGroup(ctx, &wg)
	}
	mu.Lock()
	defer mu.Unlock()
	// The whole batch reaches at most MaxPushTargets connections directly, as one Push does.
	direct := 0
	for i, p := range plans {
		if p == nil {
			continue
		}
		var perr *api.PlatoError
		switch r := res[i]; {
		case !r.done:
			perr = platoError(protocol.CodePipelineFailed, "routing the push: %v", ctx.Err())
		case r.err != nil:
			perr = asPlatoError(r.err)
		default:
			perr = s.planPush(p, r.r)
		}
		if perr == nil {
			n := p.named
			if p.lp.Session != "" {
				n += p.members
			}
			if direct+n > MaxPushTargets {
				perr = platoError(protocol.CodeInvalidArgument, "the batch's direct targets exceed the maximum of %d: push this one in another call", MaxPushTargets)
			} else {
				direct += n
			}
		}
		if perr != nil {
			out[i].Err, plans[i] = perr, nil
		}
	}
	// A late route outcome writes res[i] under mu and is not read any more.
}

// localPushBatch starts the local part of every push in order, then waits for them all.
// The pushes' states are one allocation: a late outcome (after the wait's deadline) only keeps
// it alive a little longer, as nothing reuses it.
func (s *Server) localPushBatch(ctx context.Context, lps []*fleet.LocalPushRequest) []*fleet.LocalPushResponse {
	ls := make([]localPushing, len(lps))
	for i, lp := range lps {
		s.localPushInto(&ls[i], lp)
	}
	out := make([]*fleet.LocalPushResponse, len(lps))
	for i := range ls {
		out[i] = ls[i].answer(ctx)
	}
	return out
}

// LocalPushBatch is a peer's PushBatch: the pushes act on the connections this server holds, in
// their order. Each names its app and key, checked again here (see LocalPush).
func (h *handler) LocalPushBatch(ctx context.Context, req *fleet.LocalPushBatchRequest) (*fleet.LocalPushBatchResponse, error) {
	if len(req.Pushes) > MaxBatchPushes {
		return nil, platoError(protocol.CodeInvalidArgument, "%d pushes exceed the maximum of %d per batch", len(req.Pushes), MaxBatchPushes)
	}
	for _, lp := range req.Pushes {
		if lp == nil {
			return nil, platoError(protocol.CodeInvalidArgument, "an empty push in the batch")
		}
		if _, err := h.s.authorize(&api.Caller{AppId: lp.AppId, Key: lp.Key}); err != nil {
			return nil, err
		}
	}
	return &fleet.LocalPushBatchResponse{Results: h.s.localPushBatch(ctx, req.Pushes)}, nil
}

// PushBatch is Plato's RPC for Server.PushBatch.
func (a *apiHandler) PushBatch(ctx context.Context, req *api.PushBatchRequest) (*api.PushBatchResponse, error) {
	res, err := a.s.PushBatch(ctx, req.Caller, req.Pushes)
	if err != nil {
		return nil, err
	}
	out := &api.PushBatchResponse{Results: make([]*api.PushOutcome, len(res))}
	outcomes := make([]api.PushOutcome, len(res)) // one allocation, not one per push
	for i, r := range res {
		outcomes[i] = api.PushOutcome{Response: r.Resp, Error: r.Err}
		out.Results[i] = &outcomes[i]
	}
	return out, nil
}
