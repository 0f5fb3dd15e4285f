package gateway_test

import (
	"testing"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/core/gateway/gatewaytest"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// TestIdleConnectionHoldsNoColdPart: a logged-in connection that only heartbeats carries conn
// alone; its login timer went with its Login, and a session held for a while leaves nothing.
func TestIdleConnectionHoldsNoColdPart(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{NoNATS: true})
	pending := h.Dial()
	a := h.Login("app", "a")
	a.Send(protocol.SigHeartbeat, 0, 2, nil)
	if cold, held := gateway.ConnHasCold(h.Gateway, a.ID); !held || cold {
		t.Fatalf("logged-in connection: cold %v, held %v; want no cold part", cold, held)
	}
	h.Sessions(gatewaytest.Join(a, "s"))
	if cold, _ := gateway.ConnHasCold(h.Gateway, a.ID); !cold {
		t.Fatal("a connection in a session holds no cold part: where are its sessions?")
	}
	h.Sessions(gatewaytest.Leave(a, "s"))
	if cold, _ := gateway.ConnHasCold(h.Gateway, a.ID); cold {
		t.Fatal("the cold part outlived the last session left")
	}
	// A socket yet to log in keeps its login timer: it is still closed for not logging in.
	_ = pending
	poll.Until(t, "the gateway to accept the socket that did not log in", func() bool { return len(gateway.ConnIDs(h.Gateway)) == 2 })
	for _, id := range gateway.ConnIDs(h.Gateway) {
		if id == a.ID {
			continue
		}
		if cold, held := gateway.ConnHasCold(h.Gateway, id); held && !cold {
			t.Fatalf("connection %d, not logged in, holds no login timer", id)
		}
	}
}
