// Package delivery names how Plato delivers a push: the guarantee it gives (QoS) and the path it
// takes (Route). Business servers ask for them (sdk/business), pipeline stages decide them
// (sdk/stage), and the servers carry them; they are declared once, here.
package delivery

import "strconv"

// QoS is a push's delivery guarantee.
type QoS uint8

const (
	// QoSDefault is no opinion: the business asked for nothing, or a stage leaves the choice to
	// others. A downlink whose QoS is still QoSDefault when it is sent is delivered at least once.
	QoSDefault QoS = iota
	// AtMostOnce sends once: no ACK is waited for, nothing is resent, nothing is reported
	// undelivered. For what is stale a second later (typing indicators, presence, live counters).
	AtMostOnce
	// AtLeastOnce resends until the device acknowledges (the retransmit stage), or gives up and
	// reports the message undelivered. The device may see it twice: its msg ID tells duplicates
	// apart.
	AtLeastOnce
)

// String returns the QoS as written in configs ("at_most_once"), for logs.
func (q QoS) String() string {
	switch q {
	case QoSDefault:
		return "default"
	case AtMostOnce:
		return "at_most_once"
	case AtLeastOnce:
		return "at_least_once"
	}
	return "qos(" + strconv.Itoa(int(q)) + ")"
}

// Route is the path a push takes to its connections.
type Route uint8

const (
	// RouteDefault is no opinion; the host picks (direct).
	RouteDefault Route = iota
	// RouteDirect delivers to each target connection on its own, over RPC to the gateway holding
	// it (per-connection sequence numbers, ACKs and QoS).
	RouteDirect
	// RouteBroadcast hands a session push once to every gateway over NATS, which writes it to its
	// local members: cheap for large sessions, but nothing is tracked per connection, so the host
	// may downgrade a QoS it cannot honour on this path.
	RouteBroadcast
)

// String returns the Route's name ("direct"), for logs.
func (r Route) String() string {
	switch r {
	case RouteDefault:
		return "default"
	case RouteDirect:
		return "direct"
	case RouteBroadcast:
		return "broadcast"
	}
	return "route(" + strconv.Itoa(int(r)) + ")"
}
