package gateway_test

import (
	"slices"
	"testing"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/core/gateway/gatewaytest"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// answerInReply makes the harness's state server answer every uplink of a call that asks for it
// in the reply, with code 0, plus the extra frames given.
func answerInReply(h *gatewaytest.Harness, extra ...*fleet.DownFrame) {
	h.State.SetReply(func(req *fleet.DeliverRequest) *fleet.DeliverResponse {
		if !req.AcksInReply {
			return nil
		}
		resp := &fleet.DeliverResponse{}
		for _, ev := range req.Events {
			if protocol.Signal(ev.Signal) == protocol.SigUplink {
				resp.Acks = append(resp.Acks, &fleet.DownFrame{
					ConnId: ev.ConnId, Signal: int8(protocol.SigUplinkAck), Seq: ev.Seq, Body: (&protocol.Ack{}).Append(nil),
				})
			}
		}
		if len(resp.Acks) > 0 {
			resp.Acks = append(resp.Acks, extra...)
		}
		return resp
	})
}

// The gateway asks for UplinkAcks in the Deliver reply and writes those it gets to the devices as
// answers: the uplinks are no longer in flight (with one allowed in flight, the next is taken),
// and each device gets its acks in order.
func TestUplinkAcksInTheDeliverReplyReachTheDevice(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{Configure: func(c *gateway.Config) { c.MaxUplinksInFlight = 1 }})
	answerInReply(h)
	d := h.Login("a", "rita")
	for seq := uint64(1); seq <= 5; seq++ {
		d.Send(protocol.SigUplink, 0, seq, []byte("up"))
		f := d.Read()
		var ack protocol.Ack
		if f.Signal != protocol.SigUplinkAck || f.Seq != seq || ack.Decode(f.Body) != nil || ack.Code != protocol.CodeOK {
			t.Fatalf("got %v (%+v), want UplinkAck 0 of seq %d", f, ack, seq)
		}
	}
	if ups := h.State.Received(d.ID, protocol.SigUplink); len(ups) != 5 {
		t.Fatalf("the state server got %d uplinks, want 5", len(ups))
	}
}

// An ack in a reply for a connection the gateway does not hold is reported gone to the state
// server, as a Push's answer would say.
func TestAReplyAckForAConnectionNotHeldIsReportedGone(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	answerInReply(h, &fleet.DownFrame{ConnId: 987654, Signal: int8(protocol.SigUplinkAck), Seq: 1, Body: (&protocol.Ack{}).Append(nil)})
	d := h.Login("a", "rita")
	d.Send(protocol.SigUplink, 0, 1, []byte("up"))
	if f := d.Read(); f.Signal != protocol.SigUplinkAck || f.Seq != 1 {
		t.Fatalf("got %v, want UplinkAck of seq 1", f)
	}
	poll.Until(t, "the gateway to report connection 987654 gone", func() bool {
		gone, _ := h.State.Reports()
		return slices.Contains(gone, 987654)
	})
}

// HeartbeatAcks in a Deliver reply reach the device and end the connection's heartbeat in flight,
// as a pushed one does: the next heartbeat may take the lane's reserve again.
func TestHeartbeatAcksInTheDeliverReplyReachTheDevice(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	h.State.SetReply(func(req *fleet.DeliverRequest) *fleet.DeliverResponse {
		if !req.AcksInReply {
			return nil
		}
		resp := &fleet.DeliverResponse{}
		for _, ev := range req.Events {
			if protocol.Signal(ev.Signal) == protocol.SigHeartbeat {
				resp.Acks = append(resp.Acks, &fleet.DownFrame{ConnId: ev.ConnId, Signal: int8(protocol.SigHeartbeatAck), Seq: ev.Seq})
			}
		}
		return resp
	})
	d := h.Login("a", "rita")
	for seq := uint64(1); seq <= 3; seq++ {
		d.Send(protocol.SigHeartbeat, 0, seq, nil)
		if f := d.Read(); f.Signal != protocol.SigHeartbeatAck || f.Seq != seq {
			t.Fatalf("got %v, want HeartbeatAck of seq %d", f, seq)
		}
		if gateway.HeartbeatInFlight(h.Gateway, d.ID) {
			t.Fatalf("heartbeat %d answered in a reply is still in flight at the gateway", seq)
		}
	}
	if hbs := h.State.Received(d.ID, protocol.SigHeartbeat); len(hbs) != 3 {
		t.Fatalf("the state server got %d heartbeats, want 3", len(hbs))
	}
}
