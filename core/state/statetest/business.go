package statetest

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	bizservice "github.com/platoim/plato/sdk/business/rpc/plato/api/business"
	"github.com/platoim/plato/sdk/poll"
)

// Business is a fake business server: a real Kitex Business service that records every event
// the state server delivers, in order, and answers uplinks as SetUplink says (accepting all until
// then). It serves every app.
type Business struct {
	// Addr is its RPC address, the state server's state.business.default.
	Addr string

	mu       sync.Mutex
	events   []*api.Event
	uplink   func(*api.Event) (code int32, message string)
	sessions func(*api.SessionsRequest) []string
}

var _ api.Business = (*Business)(nil)

func startBusiness(t testing.TB, stops *stoppers) *Business {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("statetest: %v", err)
	}
	b := &Business{Addr: ln.Addr().String()}
	srv := bizservice.NewServer(b, rpc.Server(ln)...)
	go func() { _ = srv.Run() }()
	stops.add(srv.Stop)
	return b
}

// SetUplink decides the answer to each uplink from now on: code 0 accepts, 2000-2999 refuses
// with the business's code. Nil accepts all.
func (b *Business) SetUplink(f func(ev *api.Event) (code int32, message string)) {
	b.mu.Lock()
	b.uplink = f
	b.mu.Unlock()
}

// SetSessions decides the answer to the Sessions callback (asked by the sessionbind stage) from
// now on. Nil: no session.
func (b *Business) SetSessions(f func(req *api.SessionsRequest) []string) {
	b.mu.Lock()
	b.sessions = f
	b.mu.Unlock()
}

// Events returns the events of kind for did delivered so far, in order; did "" means every did.
func (b *Business) Events(kind api.EventKind, did string) []*api.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*api.Event
	for _, ev := range b.events {
		if ev.Kind == kind && (did == "" || ev.Did == did) {
			out = append(out, ev)
		}
	}
	return out
}

// WaitEvents waits until at least n events of kind for did arrived, and returns them all.
func (b *Business) WaitEvents(t testing.TB, kind api.EventKind, did string, n int) []*api.Event {
	t.Helper()
	var evs []*api.Event
	poll.Within(t, wait, kind.String()+" events of "+did, func() bool {
		evs = b.Events(kind, did)
		return len(evs) >= n
	})
	return evs
}

// Deliver implements the Business service.
func (b *Business) Deliver(_ context.Context, req *api.DeliverRequest) (*api.DeliverResponse, error) {
	b.mu.Lock()
	uplink := b.uplink
	b.mu.Unlock()
	resp := &api.DeliverResponse{Results: make([]*api.Result_, len(req.Events))}
	for i, ev := range req.Events {
		ev.Payload = bytes.Clone(ev.Payload)
		r := &api.Result_{}
		if ev.Kind == api.EventKind_UPLINK && uplink != nil {
			r.Code, r.Message = uplink(ev)
		}
		resp.Results[i] = r
	}
	b.mu.Lock()
	b.events = append(b.events, req.Events...)
	b.mu.Unlock()
	return resp, nil
}

// Sessions implements the Business service.
// Authenticate refuses every device: the state server never asks it (ipconf does).
func (b *Business) Authenticate(context.Context, *api.AuthenticateRequest) (*api.AuthenticateResponse, error) {
	return &api.AuthenticateResponse{Code: 2000, Message: "statetest authenticates no one"}, nil
}

func (b *Business) Sessions(_ context.Context, req *api.SessionsRequest) (*api.SessionsResponse, error) {
	b.mu.Lock()
	f := b.sessions
	b.mu.Unlock()
	if f == nil {
		return &api.SessionsResponse{}, nil
	}
	return &api.SessionsResponse{Sessions: f(req)}, nil
}
