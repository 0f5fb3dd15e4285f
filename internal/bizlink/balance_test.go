package bizlink

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// countLink counts the calls it gets, fails while failing is set, and blocks while hold is open.
type countLink struct {
	mu      sync.Mutex
	calls   int
	failing bool
	hold    chan struct{}
}

func (c *countLink) Deliver(ctx context.Context, _ *api.DeliverRequest) (*api.DeliverResponse, error) {
	c.mu.Lock()
	c.calls++
	fail, hold := c.failing, c.hold
	c.mu.Unlock()
	if hold != nil {
		<-hold
	}
	if fail {
		return nil, errors.New("down")
	}
	return &api.DeliverResponse{}, nil
}

func (c *countLink) Sessions(context.Context, *api.SessionsRequest) (*api.SessionsResponse, error) {
	return nil, errors.New("unused")
}

func (c *countLink) Authenticate(context.Context, *api.AuthenticateRequest) (*api.AuthenticateResponse, error) {
	return nil, errors.New("unused")
}

func (c *countLink) Close() {}

func (c *countLink) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func TestBalancedTakesTurnsWhenIdle(t *testing.T) {
	a, b, c := &countLink{}, &countLink{}, &countLink{}
	bl := newBalanced([]Link{a, b, c})
	for range 30 {
		if _, err := bl.Deliver(context.Background(), &api.DeliverRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if a.n() != 10 || b.n() != 10 || c.n() != 10 {
		t.Fatalf("calls %d/%d/%d, want 10 each", a.n(), b.n(), c.n())
	}
}

func TestBalancedPrefersTheLeastBusy(t *testing.T) {
	busy, idle := &countLink{hold: make(chan struct{})}, &countLink{}
	bl := newBalanced([]Link{busy, idle})
	// Park one call on busy (whichever the rotation picks first, the second goes elsewhere).
	done := make(chan struct{})
	go func() {
		_, _ = bl.eps[0].link.Deliver(context.Background(), nil)
		close(done)
	}()
	bl.eps[0].inflight.Add(1)
	for range 10 {
		if _, err := bl.Deliver(context.Background(), &api.DeliverRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if idle.n() != 10 {
		t.Fatalf("the idle endpoint got %d of 10 calls while the other had one in flight", idle.n())
	}
	bl.eps[0].inflight.Add(-1)
	close(busy.hold)
	<-done
}

func TestBalancedSkipsAFailingEndpointAndComesBack(t *testing.T) {
	down, up := &countLink{failing: true}, &countLink{}
	bl := newBalanced([]Link{down, up})
	now := time.Unix(1000, 0)
	bl.now = func() time.Time { return now }
	for i := range 20 {
		if _, err := bl.Deliver(context.Background(), &api.DeliverRequest{}); err != nil {
			t.Fatalf("call %d failed although one endpoint is up: %v", i, err)
		}
	}
	if up.n() != 20 {
		t.Fatalf("the live endpoint answered %d of 20", up.n())
	}
	// The failed endpoint is tried once, then cools down: not tried again while it does.
	if down.n() != 1 {
		t.Fatalf("the failing endpoint was tried %d times within its cool-down, want 1", down.n())
	}
	down.mu.Lock()
	down.failing = false
	down.mu.Unlock()
	now = now.Add(cooldownMax)
	for range 20 {
		if _, err := bl.Deliver(context.Background(), &api.DeliverRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if down.n() < 5 {
		t.Fatalf("the recovered endpoint got %d calls of 20 after its cool-down", down.n()-1)
	}
}

func TestBalancedAllFailingReturnsTheError(t *testing.T) {
	a, b := &countLink{failing: true}, &countLink{failing: true}
	bl := newBalanced([]Link{a, b})
	if _, err := bl.Deliver(context.Background(), &api.DeliverRequest{}); err == nil {
		t.Fatal("no error with every endpoint down")
	}
	if a.n() != 1 || b.n() != 1 {
		t.Fatalf("tries %d/%d, want each endpoint once", a.n(), b.n())
	}
	// Down endpoints are still tried (the soonest back first): nothing else is left.
	if _, err := bl.Deliver(context.Background(), &api.DeliverRequest{}); err == nil || a.n()+b.n() != 4 {
		t.Fatalf("second call: %v after %d tries", err, a.n()+b.n())
	}
}
