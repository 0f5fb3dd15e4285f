package business

import "context"

// Handlers are a business server's answers to Plato, plain functions; each is optional. They are
// called concurrently (see the package documentation) and must be safe for that.
type Handlers struct {
	// Uplink gets each message a device sent. nil accepts it and the device gets its UplinkAck; a
	// *Refusal (Refuse) refuses it with its code; any other error or a panic refuses it with
	// CodeRefused and is logged. A nil Uplink accepts everything.
	Uplink func(ctx context.Context, u Uplink) error
	// Sessions answers which sessions a device's new connection joins; the sessionbind stage asks it
	// at each login and binds the connection to them. A nil Sessions joins none.
	Sessions func(ctx context.Context, d Device) ([]string, error)
	// Connected: a device logged in.
	Connected func(ctx context.Context, e Event)
	// Disconnected: a device connection ended; e.Reason is the protocol close code. The connection
	// has left its sessions. A connection that dropped without a Close ends only when its reconnect
	// window passed without a Resume (e.Reason 1211, or the code it dropped with).
	Disconnected func(ctx context.Context, e Event)
	// Undelivered: Plato gave up on a downlink (the retransmit stage ran out of attempts, or the
	// connection closed first); e.MsgID is the PushResult.MsgID.
	Undelivered func(ctx context.Context, e Event)
	// Resumed: a device whose connection dropped resumed it, on whichever gateway (Plato's
	// docs/protocol.md §11.1). It is the same connection: e.ConnID is unchanged, its sessions are
	// kept, and no Disconnected or Connected is sent for the drop; e.GatewayID is the new gateway.
	// A drop nobody resumes ends with Disconnected when Plato's reconnect window passes.
	Resumed func(ctx context.Context, e Event)
	// Authenticate decides who a device is, for an app configured with apps.<app>.auth.callback:
	// ipconf asks it with whatever credential the device sent, before handing the device a
	// gateway token. Return the Identity (a UID is required), or a *Refusal with your code
	// (2000-2999), which the device gets in ipconf's 401 answer; any other error or a panic
	// refuses with CodeRefused and is logged. A nil Authenticate refuses every device.
	Authenticate func(ctx context.Context, c Credential) (Identity, error)
}

// Uplink is a message a device sent.
type Uplink struct {
	AppID string
	DID   string
	UID   string
	// ConnID is the connection it came on; Seq its sequence number there (increasing, so a device
	// that resends after a lost ACK can be recognised by ConnID and Seq).
	ConnID    int64
	Seq       int64
	GatewayID string
	// Payload is the message body, a copy the handler owns.
	Payload []byte
	// TraceParent is the W3C traceparent of Plato's delivery span when the message is sampled for
	// tracing (docs/observability.md), empty otherwise: extract it to continue the trace.
	TraceParent string
}

// Event is a notification about a device connection.
type Event struct {
	Kind      EventKind
	AppID     string
	DID       string
	UID       string
	ConnID    int64
	GatewayID string
	// Reason is the protocol close code (EventDisconnected).
	Reason int
	// MsgID, Seq and Attempts describe the message given up on (EventUndelivered): its id, its
	// downlink sequence number and how many times it was sent.
	MsgID    int64
	Seq      int64
	Attempts int
}
