package gateway

import (
	"github.com/platoim/plato/internal/overload"
)

// Admission control (docs/operations.md, "Overload"). Every queue toward the state servers is
// bounded, and what does not fit is refused per frame with a retryable code, never by closing a
// logged-in connection:
//   - an uplink is answered UplinkAck 1303 when the gateway already has max_uplinks_in_flight
//     unanswered, when the overload manager refuses uplinks, or when its lane is full;
//   - a Login or Resume is refused 1303 while the manager refuses logins (ipconf is told, through
//     the load report, to send devices elsewhere), or when its lane is full;
//   - the events that keep the state server's view right (a connection closed, a device's ACK of
//     a downlink it was sent, its first heartbeat in flight, a connection moved) take the lanes'
//     reserve: they are never refused for room. Each is bounded by construction: one close per
//     connection, one ACK per tracked downlink, one heartbeat per connection until it is answered.

// Reasons a frame was refused, for plato_gateway_overload_refused_total.
const (
	refusedInFlight  = iota // over gateway.max_uplinks_in_flight
	refusedOverload         // the overload manager's action
	refusedQueueFull        // the state server's lane was full
	numRefusedReasons
)

var refusedReasons = [numRefusedReasons]string{"in_flight", "overload", "queue_full"}

// newOverload makes the gateway's overload manager: the heap, the uplinks in flight against their
// bound, and the fullest lane toward a state server.
func (gw *Gateway) newOverload() *overload.Manager {
	return overload.Standard("gateway", gw.log, gw.cfg.Overload,
		overload.Resource{Name: "uplinks_in_flight", Pressure: func() float64 {
			return float64(gw.upInFlight.Load()) / float64(gw.cfg.MaxUplinksInFlight)
		}},
		overload.Resource{Name: "state_queue", Pressure: func() float64 {
			return overload.Fullest(gw.links.List(), func(l *stateLink) float64 { return l.batch.Fill() })
		}},
	)
}

// admitForward decides an uplink before it is forwarded: 0 to forward it, or the reason to refuse.
func (gw *Gateway) admitForward() int {
	if gw.upInFlight.Load() >= int64(gw.cfg.MaxUplinksInFlight) {
		return refusedInFlight
	}
	if gw.overload.Active(overload.RefuseUplinks) {
		return refusedOverload
	}
	return -1
}

// refuseUplink answers an uplink 1303 without forwarding it.
func (gw *Gateway) refuseUplink(c *conn, seq uint64, reason int) {
	gw.metrics.uplinksRefused[reason].Add(1)
	c.enqueue(refusalFrame(c, seq, overloadedAck))
}
