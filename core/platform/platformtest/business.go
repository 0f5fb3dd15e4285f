package platformtest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	bizservice "github.com/platoim/plato/sdk/business/rpc/plato/api/business"
	apiservice "github.com/platoim/plato/sdk/business/rpc/plato/api/plato"
	"github.com/platoim/plato/sdk/poll"
)

// Business is a real Kitex business server that records every event and answers uplinks as
// SetAnswer says (accepting all by default).
type Business struct {
	Addr string

	mu          sync.Mutex
	answer      func(ev *api.Event) *api.Result_
	sessions    func(req *api.SessionsRequest) []string
	auth        func(req *api.AuthenticateRequest) *api.AuthenticateResponse
	sessionAsks int
	events      []*api.Event
	notify      chan struct{}
}

// StartBusiness listens on a free loopback port until the test ends.
func StartBusiness(t testing.TB) *Business {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	quietKitex()
	b := &Business{Addr: ln.Addr().String(), notify: make(chan struct{}, 1)}
	svr := bizservice.NewServer(b, rpc.Server(ln)...)
	go func() { _ = svr.Run() }()
	t.Cleanup(func() { _ = svr.Stop() })
	return b
}

// Deliver implements the Business service.
func (b *Business) Deliver(_ context.Context, req *api.DeliverRequest) (*api.DeliverResponse, error) {
	resp := &api.DeliverResponse{}
	b.mu.Lock()
	for _, ev := range req.Events {
		b.events = append(b.events, ev)
		r := &api.Result_{}
		if ev.Kind == api.EventKind_UPLINK && b.answer != nil {
			if a := b.answer(ev); a != nil {
				r = a
			}
		}
		resp.Results = append(resp.Results, r)
	}
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
	return resp, nil
}

// SetAnswer decides the result of each uplink from now on; a nil result accepts.
func (b *Business) SetAnswer(f func(ev *api.Event) *api.Result_) {
	b.mu.Lock()
	b.answer = f
	b.mu.Unlock()
}

// Events returns what was delivered so far, optionally only of one kind for one did.
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

// WaitEvents polls until at least n events of kind for did arrived.
func (b *Business) WaitEvents(t testing.TB, kind api.EventKind, did string, n int) []*api.Event {
	t.Helper()
	var evs []*api.Event
	poll.Within(t, 10*time.Second, "business events", func() bool {
		evs = b.Events(kind, did)
		return len(evs) >= n
	})
	return evs
}

// StateClient is a Kitex client of Plato's RPC on a state server, as a business server would use.
func StateClient(t testing.TB, addr string) apiservice.Client {
	t.Helper()
	c, err := apiservice.NewClient("plato", rpc.Client(addr, 10*time.Second)...)
	if err != nil {
		t.Fatalf("Plato RPC client: %v", err)
	}
	return c
}

// Caller names app with the key Config gives it.
func Caller(app string) *api.Caller { return &api.Caller{AppId: app, Key: KeyOf(app)} }

// KeyOf is the business key Config configures for one of Apps.
func KeyOf(app string) string { return "platformtest-key-" + app }

// Sessions answers the Sessions callback with what SetSessions said for the did (none by default).
func (b *Business) Sessions(_ context.Context, req *api.SessionsRequest) (*api.SessionsResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sessionAsks++
	if b.sessions == nil {
		return &api.SessionsResponse{}, nil
	}
	return &api.SessionsResponse{Sessions: b.sessions(req)}, nil
}

// Authenticate answers the connect callback with what SetAuthenticate decided; it refuses
// everyone until then.
func (b *Business) Authenticate(_ context.Context, req *api.AuthenticateRequest) (*api.AuthenticateResponse, error) {
	b.mu.Lock()
	f := b.auth
	b.mu.Unlock()
	if f == nil {
		return &api.AuthenticateResponse{Code: 2000, Message: "this test business authenticates no one"}, nil
	}
	return f(req), nil
}

// SetAuthenticate decides the answer to the Authenticate callback from now on.
func (b *Business) SetAuthenticate(f func(req *api.AuthenticateRequest) *api.AuthenticateResponse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.auth = f
}

// SetSessions decides the answer to the Sessions callback from now on.
func (b *Business) SetSessions(f func(req *api.SessionsRequest) []string) {
	b.mu.Lock()
	b.sessions = f
	b.mu.Unlock()
}

// SessionAsks is how many times Plato asked the Sessions callback.
func (b *Business) SessionAsks() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sessionAsks
}
