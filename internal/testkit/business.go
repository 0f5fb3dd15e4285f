package testkit

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	bizservice "github.com/platoim/plato/sdk/business/rpc/plato/api/business"
	"github.com/platoim/plato/sdk/poll"
)

// Business is a fake business server: a real Kitex Business service that records every event Plato
// delivers, in order, and answers the callbacks as the test says: uplinks accepted (SetAnswer,
// SetUplink), no sessions (SetSessions), every device refused at connect (SetAuthenticate). It
// serves every app. Its methods are safe to call from any goroutine.
type Business struct {
	// Addr is its RPC address, the business address of the apps it serves.
	Addr string

	mu          sync.Mutex
	events      []*api.Event
	answer      func(*api.Event) *api.Result_
	sessions    func(*api.SessionsRequest) []string
	auth        func(*api.AuthenticateRequest) *api.AuthenticateResponse
	sessionAsks int
}

var _ api.Business = (*Business)(nil)

// ServeBusiness serves a Business on a free loopback port. It returns it with what stops its
// server: pass that to t.Cleanup, or call it beside the test's other stops.
func ServeBusiness(t testing.TB) (*Business, func()) {
	t.Helper()
	l := Listen(t)
	b := &Business{Addr: l.Addr}
	return b, Serve(bizservice.NewServer(b, l.Options()...))
}

// SetAnswer decides the result of each uplink from now on; a nil result, or a nil f, accepts.
func (b *Business) SetAnswer(f func(ev *api.Event) *api.Result_) {
	b.mu.Lock()
	b.answer = f
	b.mu.Unlock()
}

// SetUplink is SetAnswer with the result as a code and a message: code 0 accepts, 2000-2999
// refuses with the business's code. Nil accepts all.
func (b *Business) SetUplink(f func(ev *api.Event) (code int32, message string)) {
	if f == nil {
		b.SetAnswer(nil)
		return
	}
	b.SetAnswer(func(ev *api.Event) *api.Result_ {
		r := &api.Result_{}
		r.Code, r.Message = f(ev)
		return r
	})
}

// SetSessions decides the answer to the Sessions callback (asked by the sessionbind stage) from
// now on. Nil: no session.
func (b *Business) SetSessions(f func(req *api.SessionsRequest) []string) {
	b.mu.Lock()
	b.sessions = f
	b.mu.Unlock()
}

// SetAuthenticate decides the answer to the Authenticate callback from now on. Nil: every device
// is refused (code 2000).
func (b *Business) SetAuthenticate(f func(req *api.AuthenticateRequest) *api.AuthenticateResponse) {
	b.mu.Lock()
	b.auth = f
	b.mu.Unlock()
}

// Events returns the events of kind for did delivered so far, in order; did "" means every did.
// The events are shared: do not modify them.
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

// WaitEvents waits until at least n events of kind for did arrived (did "" means every did), and
// returns them all. It fails the test after poll.Timeout.
func (b *Business) WaitEvents(t testing.TB, kind api.EventKind, did string, n int) []*api.Event {
	t.Helper()
	var evs []*api.Event
	poll.Until(t, fmt.Sprintf("%d %s events of %q at the business", n, kind, did), func() bool {
		evs = b.Events(kind, did)
		return len(evs) >= n
	})
	return evs
}

// SessionAsks is how many times Plato asked the Sessions callback.
func (b *Business) SessionAsks() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sessionAsks
}

// Deliver implements the Business service: it records the events and answers each uplink as
// SetAnswer said.
func (b *Business) Deliver(_ context.Context, req *api.DeliverRequest) (*api.DeliverResponse, error) {
	b.mu.Lock()
	answer := b.answer
	b.mu.Unlock()
	resp := &api.DeliverResponse{Results: make([]*api.Result_, len(req.Events))}
	for i, ev := range req.Events {
		// The payload may point into Kitex's read buffer, which is reused once the call returns.
		ev.Payload = bytes.Clone(ev.Payload)
		r := &api.Result_{}
		if ev.Kind == api.EventKind_UPLINK && answer != nil {
			if a := answer(ev); a != nil {
				r = a
			}
		}
		resp.Results[i] = r
	}
	b.mu.Lock()
	b.events = append(b.events, req.Events...)
	b.mu.Unlock()
	return resp, nil
}

// Sessions implements the Business service with what SetSessions said.
func (b *Business) Sessions(_ context.Context, req *api.SessionsRequest) (*api.SessionsResponse, error) {
	b.mu.Lock()
	b.sessionAsks++
	f := b.sessions
	b.mu.Unlock()
	if f == nil {
		return &api.SessionsResponse{}, nil
	}
	return &api.SessionsResponse{Sessions: f(req)}, nil
}

// Authenticate implements the Business service with what SetAuthenticate said.
func (b *Business) Authenticate(_ context.Context, req *api.AuthenticateRequest) (*api.AuthenticateResponse, error) {
	b.mu.Lock()
	f := b.auth
	b.mu.Unlock()
	if f == nil {
		return &api.AuthenticateResponse{Code: 2000, Message: "the test business authenticates no one"}, nil
	}
	return f(req), nil
}
