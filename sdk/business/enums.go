package business

import "strconv"

// QoS is how hard Plato tries to deliver a push.
type QoS int

const (
	// QoSDefault lets the app's pipeline decide (the qosroute stage); at least once without one.
	QoSDefault QoS = 0
	// QoSAtMostOnce sends once: no ACK is waited for and nothing is resent. For what is stale a
	// second later (typing indicators, presence, live counters).
	QoSAtMostOnce QoS = 1
	// QoSAtLeastOnce resends until the device ACKs (the retransmit stage), or gives up and reports
	// the message Undelivered. The device may see it twice: Message.MsgID tells duplicates apart.
	QoSAtLeastOnce QoS = 2
)

func (q QoS) String() string {
	switch q {
	case QoSDefault:
		return "default"
	case QoSAtMostOnce:
		return "at_most_once"
	case QoSAtLeastOnce:
		return "at_least_once"
	}
	return "qos(" + strconv.Itoa(int(q)) + ")"
}

// Route is the path a push to a session took.
type Route int

const (
	// RouteDirect: one frame per member connection, sent over RPC to the gateway holding it.
	RouteDirect Route = 0
	// RouteBroadcast: one message over NATS that every gateway fans out to its local members.
	RouteBroadcast Route = 1
)

func (r Route) String() string {
	switch r {
	case RouteDirect:
		return "direct"
	case RouteBroadcast:
		return "broadcast"
	}
	return "route(" + strconv.Itoa(int(r)) + ")"
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
	EventResumed      EventKind = 4 // a device resumed its previous connection (reserved)
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
