package gateway_test

import (
	"testing"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/core/gateway/gatewaytest"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// TestPanicClosesOnlyItsConnection makes the handling of one device's uplink panic, the way a bug
// reached by a hostile frame would: that device is closed with 1307, and the gateway goes on
// serving the others.
func TestPanicClosesOnlyItsConnection(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{BeforeStart: func(gw *gateway.Gateway) {
		gateway.BeforeFrame(gw, func(hd protocol.Header, body []byte) {
			if hd.Signal == protocol.SigUplink && string(body) == "boom" {
				panic("a bug reached by a frame")
			}
		})
	}})
	victim := h.Login("demo", "victim")
	other := h.Login("demo", "other")

	victim.Send(protocol.SigUplink, 0, 2, []byte("boom"))
	f := victim.Read()
	var cl protocol.Close
	if f.Signal != protocol.SigClose || cl.Decode(f.Body) != nil || cl.Code != protocol.CodeInternal {
		t.Fatalf("the device whose frame panicked got %v (%+v), want Close %d", f, cl, protocol.CodeInternal)
	}
	victim.ExpectClosed()
	if n := h.Gateway.Stats().Panics; n != 1 {
		t.Errorf("panics counted: %d, want 1", n)
	}

	other.Send(protocol.SigUplink, 0, 2, []byte("still here"))
	poll.Until(t, "the other device's uplink to reach the state server", func() bool {
		ups := h.State.Received(other.ID, protocol.SigUplink)
		return len(ups) == 1 && string(ups[0].Body) == "still here"
	})
	fresh := h.Login("demo", "fresh")
	if fresh.ID == 0 {
		t.Fatal("no new connection after the panic")
	}
}
