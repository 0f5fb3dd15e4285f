package gateway_test

import (
	"testing"
	"time"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/core/gateway/gatewaytest"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// expectRefused reads the UplinkAcks 1303 of seqs from..to, in order.
func expectRefused(t *testing.T, d *gatewaytest.Device, from, to uint64) {
	t.Helper()
	for seq := from; seq <= to; seq++ {
		f := d.Read()
		var ack protocol.Ack
		if f.Signal != protocol.SigUplinkAck || f.Seq != seq || ack.Decode(f.Body) != nil || ack.Code != protocol.CodeOverloaded {
			t.Fatalf("got %v (%+v), want UplinkAck 1303 of seq %d", f, ack, seq)
		}
	}
}

// TestRefusalsOfOneReadKeepTheirOrder: uplinks arriving together, all but the first refused for
// the bound on uplinks in flight, are each answered 1303 in their order (their answers leave
// together, coalesce.go); and a partial frame at the end of a read does not hold back the answers
// to the frames before it.
func TestRefusalsOfOneReadKeepTheirOrder(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{Configure: func(c *gateway.Config) { c.MaxUplinksInFlight = 1 }})
	d := h.Login("a", "rita")
	var burst []byte
	for seq := uint64(1); seq <= 40; seq++ {
		burst = protocol.AppendFrame(burst, protocol.SigUplink, 0, seq, []byte("up"))
	}
	d.WriteRaw(burst)
	expectRefused(t, d, 2, 40) // 1 is in flight: the state server of the harness does not answer

	burst = burst[:0]
	for seq := uint64(41); seq <= 60; seq++ {
		burst = protocol.AppendFrame(burst, protocol.SigUplink, 0, seq, []byte("up"))
	}
	last := protocol.AppendFrame(nil, protocol.SigUplink, 0, 61, []byte("the last uplink"))
	d.WriteRaw(append(burst, last[:protocol.HeaderLen+3]...))
	expectRefused(t, d, 41, 60) // before the rest of 61 is sent
	d.WriteRaw(last[protocol.HeaderLen+3:])
	expectRefused(t, d, 61, 61)
	// Seq 1 goes to the state server on a batch lane, not in the read: on a busy machine it can
	// arrive after the refusals were written.
	poll.Within(t, 10*time.Second, "the forwarded uplink to reach the state server", func() bool {
		return len(h.State.Received(d.ID, protocol.SigUplink)) > 0
	})
	if ups := h.State.Received(d.ID, protocol.SigUplink); len(ups) != 1 || ups[0].Seq != 1 {
		t.Fatalf("the state server got %d uplinks, want only seq 1", len(ups))
	}
}
