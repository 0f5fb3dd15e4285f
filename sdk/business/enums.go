package business

import (
	"strconv"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/delivery"
)

// QoS is how hard Plato tries to deliver a push (package delivery, shared with the stage SDK):
// QoSDefault lets the app's pipeline decide (the qosroute stage), at least once without one.
type QoS = delivery.QoS

// The QoS values.
const (
	QoSDefault     = delivery.QoSDefault
	QoSAtMostOnce  = delivery.AtMostOnce
	QoSAtLeastOnce = delivery.AtLeastOnce
)

// Route is the path a push to a session took: direct (one frame per member connection, over RPC to
// the gateway holding it) or broadcast (one NATS message that every gateway writes to its local
// members).
type Route = delivery.Route

// The routes a push can take.
const (
	RouteDirect    = delivery.RouteDirect
	RouteBroadcast = delivery.RouteBroadcast
)

// routeOf maps the RPC's route (DIRECT = 0, BROADCAST = 1) to Route.
func routeOf(r api.Route) Route {
	if r == api.Route_BROADCAST {
		return RouteBroadcast
	}
	return RouteDirect
}

// Status is how a push went for one device connection.
type Status int

const (
	// StatusSent: written to the device's gateway; not ACKed yet (or not waited for).
	StatusSent Status = 0
	// StatusAcked: the device ACKed it (only with Push.WaitAck).
	StatusAcked Status = 1
	// StatusOffline: the did (or uid) has no logged-in connection of this app.
	StatusOffline Status = 2
	// StatusTimeout: Push.WaitAck was set and the device did not ACK in time.
	StatusTimeout Status = 3
	// StatusFailed: the gateway could not be reached or refused it.
	StatusFailed Status = 4
	// StatusRejected: a pipeline stage rejected or dropped it; Target.Code and Message say why.
	StatusRejected Status = 5
	// StatusQueued: the device's connection dropped and is kept for it to resume (Plato's
	// state.reconnect_window); the downlink is sent when it does, or reported undelivered (at least
	// once) when it does not.
	StatusQueued Status = 6
)

func (s Status) String() string {
	switch s {
	case StatusSent:
		return "sent"
	case StatusAcked:
		return "acked"
	case StatusOffline:
		return "offline"
	case StatusTimeout:
		return "timeout"
	case StatusFailed:
		return "failed"
	case StatusRejected:
		return "rejected"
	case StatusQueued:
		return "queued"
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// EventKind is what an Event reports.
type EventKind int

const (
	EventUplink       EventKind = 0 // handled by Handlers.Uplink, never seen in an Event
	EventConnected    EventKind = 1 // a device logged in
	EventDisconnected EventKind = 2 // a device connection closed
	EventUndelivered  EventKind = 3 // a downlink was given up on
	EventResumed      EventKind = 4 // a device resumed its connection after a drop
)

func (k EventKind) String() string {
	switch k {
	case EventUplink:
		return "uplink"
	case EventConnected:
		return "connected"
	case EventDisconnected:
		return "disconnected"
	case EventUndelivered:
		return "undelivered"
	case EventResumed:
		return "resumed"
	}
	return "event(" + strconv.Itoa(int(k)) + ")"
}
