package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/core/gateway/gatewaytest"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/sdk/poll"
)

// A gateway's registry entry carries its endpoint only while it takes logins (it reaches a state
// server), and says so at once when that changes, not at its next report: with a report interval
// of an hour, the entry loses its endpoint when the only state server leaves the registry and gets
// it back when the state server returns. ipconf and a migration read the entry; a report interval
// late, a gateway just linked again looked unavailable, and one with no state server was handed out.
func TestRegistryEntryFollowsWhetherTheGatewayTakesLogins(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{Configure: func(c *gateway.Config) { c.ReportInterval = time.Hour }})
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	endpoint := func() string {
		lctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
		defer cancel()
		nodes, err := h.Registry.List(lctx, registry.RoleGateway)
		if err != nil {
			t.Fatalf("listing gateways: %v", err)
		}
		for _, n := range nodes {
			if n.ID == gatewaytest.ID {
				return n.Endpoint
			}
		}
		t.Fatalf("gateway %s is not in the registry", gatewaytest.ID)
		return ""
	}
	poll.Until(t, "the entry to carry the endpoint", func() bool { return endpoint() == h.Gateway.Endpoint() })

	states, err := h.Registry.List(ctx, registry.RoleState)
	if err != nil || len(states) != 1 {
		t.Fatalf("state servers in the registry: %v, %v", states, err)
	}
	state := states[0]
	if err := h.Registry.Delete(ctx, registry.RoleState, state.ID); err != nil {
		t.Fatalf("deregistering the state server: %v", err)
	}
	poll.Until(t, "the entry to lose the endpoint", func() bool { return endpoint() == "" })

	state.UpdatedAt = time.Now()
	if err := h.Registry.Put(ctx, state); err != nil {
		t.Fatalf("registering the state server again: %v", err)
	}
	poll.Until(t, "the entry to carry the endpoint again", func() bool { return endpoint() == h.Gateway.Endpoint() })
	h.Login("demo", "device-1")
}
