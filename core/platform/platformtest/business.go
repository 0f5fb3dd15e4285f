package platformtest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/core/rpcopt"
	"github.com/platoim/plato/idl/kitex_gen/plato/business"
	bizservice "github.com/platoim/plato/idl/kitex_gen/plato/business/business"
	stateservice "github.com/platoim/plato/idl/kitex_gen/plato/state/state"
)

// Business is a real Kitex business server that records every event and answers uplinks as
// SetAnswer says (accepting all by default).
type Business struct {
	Addr string

	mu     sync.Mutex
	answer func(ev *business.Event) *business.Result_
	events []*business.Event
	notify chan struct{}
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
	svr := bizservice.NewServer(b, rpcopt.Server(ln)...)
	go func() { _ = svr.Run() }()
	t.Cleanup(func() { _ = svr.Stop() })
	return b
}

// Deliver implements the Business service.
func (b *Business) Deliver(_ context.Context, req *business.DeliverRequest) (*business.DeliverResponse, error) {
	resp := &business.DeliverResponse{}
	b.mu.Lock()
	for _, ev := range req.Events {
		b.events = append(b.events, ev)
		r := &business.Result_{}
		if ev.Kind == business.EventKind_UPLINK && b.answer != nil {
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
func (b *Business) SetAnswer(f func(ev *business.Event) *business.Result_) {
	b.mu.Lock()
	b.answer = f
	b.mu.Unlock()
}

// Events returns what was delivered so far, optionally only of one kind for one did.
func (b *Business) Events(kind business.EventKind, did string) []*business.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*business.Event
	for _, ev := range b.events {
		if ev.Kind == kind && (did == "" || ev.Did == did) {
			out = append(out, ev)
		}
	}
	return out
}

// WaitEvents polls until at least n events of kind for did arrived.
func (b *Business) WaitEvents(t testing.TB, kind business.EventKind, did string, n int) []*business.Event {
	t.Helper()
	var evs []*business.Event
	Eventually(t, 10*time.Second, "business events", func() bool {
		evs = b.Events(kind, did)
		return len(evs) >= n
	})
	return evs
}

// StateClient is a Kitex client for a state server, as a business server would use.
func StateClient(t testing.TB, addr string) stateservice.Client {
	t.Helper()
	c, err := stateservice.NewClient("plato-state", rpcopt.Client(addr, 10*time.Second)...)
	if err != nil {
		t.Fatalf("state client: %v", err)
	}
	return c
}
