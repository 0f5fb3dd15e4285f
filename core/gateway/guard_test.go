package gateway

import (
	"testing"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// TestPanicClosesOnlyItsConnection makes the handling of one device's uplink panic, the way a bug
// reached by a hostile frame would: that device is closed with 1307, and the gateway goes on
// serving the others.
func TestPanicClosesOnlyItsConnection(t *testing.T) {
	h := newHarness(t, harnessOpts{wrapFrame: func(next func(*conn, protocol.Header, []byte)) func(*conn, protocol.Header, []byte) {
		return func(c *conn, hd protocol.Header, body []byte) {
			if hd.Signal == protocol.SigUplink && string(body) == "boom" {
				panic("a bug reached by a frame")
			}
			next(c, hd, body)
		}
	}})
	victim := h.login("demo", "victim")
	other := h.login("demo", "other")

	victim.send(protocol.SigUplink, 0, 2, []byte("boom"))
	f := victim.read()
	var cl protocol.Close
	if f.Signal != protocol.SigClose || cl.Decode(f.Body) != nil || cl.Code != protocol.CodeInternal {
		t.Fatalf("the device whose frame panicked got %v (%+v), want Close %d", f, cl, protocol.CodeInternal)
	}
	victim.expectClosed()
	if n := h.gw.metrics.panics.Load(); n != 1 {
		t.Errorf("panics counted: %d, want 1", n)
	}

	other.send(protocol.SigUplink, 0, 2, []byte("still here"))
	poll.Until(t, "the other device's uplink to reach the state server", func() bool {
		return len(h.state.find(func(ev *fleet.UpEvent) bool {
			return ev.ConnId == int64(other.id) && protocol.Signal(ev.Signal) == protocol.SigUplink && string(ev.Body) == "still here"
		})) == 1
	})
	fresh := h.login("demo", "fresh")
	if fresh.id == 0 {
		t.Fatal("no new connection after the panic")
	}
}
