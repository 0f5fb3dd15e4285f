package state

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/cloudwego/kitex/client/callopt"

	"github.com/platoim/plato/internal/batch"
	"github.com/platoim/plato/internal/bizlink"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	gwservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/gateway"
	stateservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/state"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// fakeGateway stands in for a gateway's Kitex client: it records the frames and session changes
// the state server sends, and reports the connections it was told to forget as gone.
type fakeGateway struct {
	id string

	mu      sync.Mutex
	frames  []*fleet.DownFrame
	changes []*fleet.SessionChange
	proofs  []string
	gone    map[int64]bool
}

var _ gwservice.Client = (*fakeGateway)(nil)

func (g *fakeGateway) Push(_ context.Context, req *fleet.PushRequest, _ ...callopt.Option) (*fleet.PushResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.proofs = append(g.proofs, req.Proof)
	resp := &fleet.PushResponse{}
	for _, f := range req.Frames {
		if g.gone[f.ConnId] {
			if !slices.Contains(resp.Gone, f.ConnId) {
				resp.Gone = append(resp.Gone, f.ConnId)
			}
			continue
		}
		g.frames = append(g.frames, f)
	}
	return resp, nil
}

func (g *fakeGateway) Sessions(_ context.Context, req *fleet.SessionsRequest, _ ...callopt.Option) (*fleet.SessionsResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.proofs = append(g.proofs, req.Proof)
	resp := &fleet.SessionsResponse{}
	for _, c := range req.Changes {
		if g.gone[c.ConnId] {
			resp.Gone = append(resp.Gone, c.ConnId)
			continue
		}
		g.changes = append(g.changes, c)
	}
	return resp, nil
}

// forget makes the gateway answer that it no longer holds connID.
func (g *fakeGateway) forget(connID uint64) {
	g.mu.Lock()
	g.gone[int64(connID)] = true
	g.mu.Unlock()
}

// framesOf returns the frames of connID that match (nil: all), in the order they arrived.
func (g *fakeGateway) framesOf(connID uint64, match func(*fleet.DownFrame) bool) []*fleet.DownFrame {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*fleet.DownFrame
	for _, f := range g.frames {
		if uint64(f.ConnId) == connID && (match == nil || match(f)) {
			out = append(out, f)
		}
	}
	return out
}

func (g *fakeGateway) sessionChanges() []*fleet.SessionChange {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.changes)
}

const fakeBusinessAddr = "fake-business"

// fakeBusiness stands in for a business server's Kitex client: it records events and answers
// uplinks with answer (nil accepts). While gate is open (non-nil and not closed), a batch holding
// an uplink waits for it.
type fakeBusiness struct {
	mu     sync.Mutex
	events []*api.Event
	answer func(*api.Event) *api.Result_
	gate   chan struct{}
	err    error
}

var _ bizlink.Link = (*fakeBusiness)(nil)

// addBusiness installs a fake business server at addr, behind a real batcher and deliverBusiness.
func (ts *testServer) addBusiness(addr string) *fakeBusiness {
	fb := &fakeBusiness{}
	l := &businessLink{addr: addr, cli: fb}
	l.retry = newEventRetry(ts.Server, l)
	bc := ts.cfg.Batch
	l.batch = batch.New(batch.Config{MaxSize: bc.MaxSize, MaxDelay: bc.MaxDelay, Lanes: bc.Lanes},
		func(ctx context.Context, items []bizItem) { ts.deliverBusiness(ctx, l, items) })
	ts.business.mu.Lock()
	for _, id := range ts.cfg.Apps.IDs() {
		if a := ts.cfg.Apps.Get(id); len(a.Endpoints) == 1 && a.Endpoints[0] == addr {
			l.key = a.BusinessKey
			ts.business.byApp[id] = l
		}
	}
	ts.business.mu.Unlock()
	return fb
}

func (b *fakeBusiness) Deliver(_ context.Context, req *api.DeliverRequest) (*api.DeliverResponse, error) {
	b.mu.Lock()
	gate, err := b.gate, b.err
	b.mu.Unlock()
	if gate != nil && slices.ContainsFunc(req.Events, func(ev *api.Event) bool { return ev.Kind == api.EventKind_UPLINK }) {
		<-gate
	}
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	resp := &api.DeliverResponse{}
	for _, ev := range req.Events {
		b.events = append(b.events, ev)
		r := &api.Result_{}
		if ev.Kind == api.EventKind_UPLINK && b.answer != nil {
			r = b.answer(ev)
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

func (b *fakeBusiness) Sessions(context.Context, *api.SessionsRequest) (*api.SessionsResponse, error) {
	return &api.SessionsResponse{}, nil
}

// eventsOf returns the recorded events of a kind for a did, in order.
func (b *fakeBusiness) Close() {}

func (b *fakeBusiness) Authenticate(context.Context, *api.AuthenticateRequest) (*api.AuthenticateResponse, error) {
	return nil, errors.New("the state server never authenticates devices")
}

func (b *fakeBusiness) eventsOf(kind api.EventKind, did string) []*api.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*api.Event
	for _, ev := range b.events {
		if ev.Kind == kind && ev.Did == did {
			out = append(out, ev)
		}
	}
	return out
}

func (b *fakeBusiness) set(f func(b *fakeBusiness)) {
	b.mu.Lock()
	f(b)
	b.mu.Unlock()
}

// fakePeer stands in for another state server's Kitex client.
type fakePeer struct {
	push    func(*fleet.LocalPushRequest) (*fleet.LocalPushResponse, error)
	session func(*fleet.LocalSessionRequest) (*fleet.LocalSessionResponse, error)

	mu       sync.Mutex
	pushes   []*fleet.LocalPushRequest
	batches  int // LocalPushBatch calls
	sessions []*fleet.LocalSessionRequest
}

var _ stateservice.Client = (*fakePeer)(nil)

var errPeerDown = errors.New("peer unreachable")

func (p *fakePeer) Deliver(context.Context, *fleet.DeliverRequest, ...callopt.Option) (*fleet.DeliverResponse, error) {
	return nil, errors.New("a state server never delivers to a peer")
}

func (p *fakePeer) Ping(context.Context, *fleet.PingRequest, ...callopt.Option) (*fleet.PingResponse, error) {
	return nil, errors.New("a state server never pings a peer")
}

func (p *fakePeer) LocalPush(_ context.Context, req *fleet.LocalPushRequest, _ ...callopt.Option) (*fleet.LocalPushResponse, error) {
	p.mu.Lock()
	p.pushes = append(p.pushes, req)
	p.mu.Unlock()
	if p.push == nil {
		return &fleet.LocalPushResponse{}, nil
	}
	return p.push(req)
}

func (p *fakePeer) LocalPushBatch(ctx context.Context, req *fleet.LocalPushBatchRequest, _ ...callopt.Option) (*fleet.LocalPushBatchResponse, error) {
	p.mu.Lock()
	p.batches++
	p.mu.Unlock()
	out := &fleet.LocalPushBatchResponse{}
	for _, lp := range req.Pushes {
		r, err := p.LocalPush(ctx, lp)
		if err != nil {
			return nil, err
		}
		out.Results = append(out.Results, r)
	}
	return out, nil
}

func (p *fakePeer) LocalSession(_ context.Context, req *fleet.LocalSessionRequest, _ ...callopt.Option) (*fleet.LocalSessionResponse, error) {
	p.mu.Lock()
	p.sessions = append(p.sessions, req)
	p.mu.Unlock()
	if p.session == nil {
		return &fleet.LocalSessionResponse{}, nil
	}
	return p.session(req)
}
