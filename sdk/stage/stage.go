package stage

import (
	"context"
	"log/slog"
	"time"

	"github.com/platoim/plato/sdk/delivery"
)

// Signal names a kind of event, as written in pipeline YAML.
type Signal string

// The signals a stage can handle.
const (
	SignalLogin       Signal = "login"        // a device logs in (token, did, uid)
	SignalUplink      Signal = "uplink"       // a device message on its way to the business server
	SignalDownlink    Signal = "downlink"     // a business message on its way to a device
	SignalDownlinkAck Signal = "downlink_ack" // a device acknowledged a downlink
	SignalHeartbeat   Signal = "heartbeat"    // a device keep-alive
	SignalDisconnect  Signal = "disconnect"   // a device connection closed
	// SignalRoute is a business push, once, before it fans out to connections: stages choose the
	// path it takes and its QoS (RouteEvent). Each connection it reaches is then a downlink.
	SignalRoute Signal = "route"
	// SignalRetransmit is the state server asking, per batch, what to do about downlinks the
	// device has not ACKed (RetransmitEvent): the state server keeps them and their timers, the
	// stage keeps the policy.
	SignalRetransmit Signal = "retransmit"
	// SignalTimer is a timer the stage set with Host.SetTimer firing; it goes to that stage only and
	// is never listed in YAML.
	SignalTimer Signal = "timer"
)

// Signals are the signals a pipeline YAML may list (SignalTimer never is), oldest first: a signal
// added later goes at the end, so existing indexes keep their meaning.
var Signals = []Signal{SignalLogin, SignalUplink, SignalDownlink, SignalDownlinkAck, SignalHeartbeat, SignalDisconnect, SignalRoute, SignalRetransmit}

// QoS is a push's delivery guarantee (package delivery, shared with the business SDK).
type QoS = delivery.QoS

// The QoS values. QoSDefault is no opinion: on a route event, the business asked for nothing; in a
// Reply, the stage leaves the choice to others.
const (
	QoSDefault  = delivery.QoSDefault
	AtMostOnce  = delivery.AtMostOnce
	AtLeastOnce = delivery.AtLeastOnce
)

// Route is the path a push takes to its connections (package delivery).
type Route = delivery.Route

// The routes. RouteDefault is no opinion; the host picks.
const (
	RouteDefault   = delivery.RouteDefault
	RouteDirect    = delivery.RouteDirect
	RouteBroadcast = delivery.RouteBroadcast
)

// Conn identifies the device connection an event belongs to.
type Conn struct {
	AppID string
	DID   string
	UID   string
	// ConnID is unique per gateway; GatewayID and ConnID together name a connection.
	ConnID     uint64
	GatewayID  string
	RemoteAddr string
}

// Info describes a stage; the host checks it against the pipeline YAML.
type Info struct {
	Name    string
	Version string
}

// InitRequest is what the host tells a stage before any event.
type InitRequest struct {
	// Pipeline is the app ID whose pipeline this stage instance serves, or "default".
	Pipeline string
	// Stage is the stage's name in the pipeline YAML.
	Stage string
	// Config is the stage's config block from the YAML, as JSON ("{}" when absent).
	Config []byte
	// Host lets the stage act on the platform.
	Host Host
	// Logger writes to the host's log under the stage's name.
	Logger *slog.Logger
}

// Stage is the part every stage implements. Handlers are optional: implement the ones for the
// signals the stage handles (LoginHandler, UplinkHandler, ...); the host sends only those.
type Stage interface {
	Info() Info
	// Init is called once per process start, before any event. An error stops the stage from
	// loading and is shown to the operator.
	Init(ctx context.Context, req InitRequest) error
}

// LoginEvent is a device logging in. The gateway has already checked the token's signature when
// the token gate is on; an auth stage may check again, and more.
type LoginEvent struct {
	Conn     Conn
	Seq      uint64
	Token    string
	Platform string
	// TraceParent is the W3C trace context of the signal, for stages that trace.
	TraceParent string
}

// UplinkEvent is a device message on its way to the business server.
type UplinkEvent struct {
	Conn        Conn
	Seq         uint64
	Payload     []byte
	TraceParent string
}

// DownlinkEvent is a business message on its way to one device connection.
type DownlinkEvent struct {
	Conn        Conn
	Seq         uint64
	MsgID       uint64
	Payload     []byte
	TraceParent string
	// QoS is the push's QoS after routing. QoSDefault means at least once, for compatibility with
	// hosts and pushes that predate QoS; the retransmit stage tracks everything but AtMostOnce.
	QoS QoS
}

// DownlinkAckEvent is a device acknowledging the downlink with Seq.
type DownlinkAckEvent struct {
	Conn        Conn
	Seq         uint64
	MsgID       uint64 // 0 when the host no longer knows the message
	TraceParent string
}

// HeartbeatEvent is a device keep-alive.
type HeartbeatEvent struct {
	Conn Conn
	Seq  uint64
}

// DisconnectEvent is a device connection that closed, with the protocol close code.
type DisconnectEvent struct {
	Conn   Conn
	Reason uint16
}

// RouteEvent is one business push before it fans out: stages choose its path and QoS by
// answering with Routed. It has no Conn: it concerns every connection the push reaches.
type RouteEvent struct {
	AppID   string
	Session string // "" when the push names only dids/uids
	Targets int    // dids and uids the push names directly
	Members int    // session members, over every state server of the fleet
	MsgID   uint64
	Payload []byte
	QoS     QoS // what the business asked for (QoSDefault: nothing)
	// TraceParent is the W3C trace context of the push.
	TraceParent string
}

// RetransmitEvent is one downlink the state server holds unACKed, asking what to do next. It is
// asked once the downlink is first written (Attempts 1) and again after each resend. The stage
// answers with ResendAfter (write it again, flagged as a retransmit, if still unACKed after the
// wait), GiveUpAfter (report it undelivered to the business server if still unACKed after the wait)
// or Untrack (forget about resends and reports; the ACK and a Resume still find it). The zero
// Reply untracks too: a pipeline without a retransmit stage neither resends nor reports.
type RetransmitEvent struct {
	Conn  Conn
	Seq   uint64
	MsgID uint64
	// QoS is the downlink's QoS after routing; QoSDefault means at least once.
	QoS QoS
	// Attempts is how many times the downlink was written so far, the first send included.
	Attempts int
}

// TimerEvent is a timer this stage set, firing.
type TimerEvent struct {
	AppID string
	Key   string
	Data  []byte
}

// The handler interfaces. A reply with the zero value lets the signal continue unchanged.
type (
	LoginHandler interface {
		OnLogin(ctx context.Context, ev *LoginEvent) Reply
	}
	UplinkHandler interface {
		OnUplink(ctx context.Context, ev *UplinkEvent) Reply
	}
	DownlinkHandler interface {
		OnDownlink(ctx context.Context, ev *DownlinkEvent) Reply
	}
	DownlinkAckHandler interface {
		OnDownlinkAck(ctx context.Context, ev *DownlinkAckEvent) Reply
	}
	HeartbeatHandler interface {
		OnHeartbeat(ctx context.Context, ev *HeartbeatEvent) Reply
	}
	DisconnectHandler interface {
		OnDisconnect(ctx context.Context, ev *DisconnectEvent) Reply
	}
	TimerHandler interface {
		OnTimer(ctx context.Context, ev *TimerEvent) Reply
	}
	RouteHandler interface {
		OnRoute(ctx context.Context, ev *RouteEvent) Reply
	}
	RetransmitHandler interface {
		OnRetransmit(ctx context.Context, ev *RetransmitEvent) Reply
	}
)

// Verdict is what happens to a signal after a stage.
type Verdict uint8

const (
	// Continue passes the signal to the next stage (and then to Plato's own handling).
	Continue Verdict = iota
	// Reject stops the signal; the device is told Code (a refused login is closed, a refused
	// uplink gets an UplinkAck with Code, a refused downlink is not sent).
	Reject
	// Drop stops the signal silently: later stages and Plato's own handling never see it.
	Drop
	// Fail says the stage could not handle the signal (a service it needs is down, ...). The host
	// applies the stage's on_failure to that signal alone, as if its call had failed: fail_closed
	// rejects it with 1306, fail_open lets it continue past the stage. Message says why (logged).
	Fail
)

// Reply is a handler's answer. The zero Reply continues unchanged.
type Reply struct {
	Verdict Verdict
	// Code and Message explain a Reject: a Plato code (docs/protocol.md) or a business code
	// (2000-2999).
	Code    uint16
	Message string
	// Payload, when Replace is set, replaces the uplink's or downlink's payload for later stages.
	Payload []byte
	Replace bool
	// Route and QoS are the stage's choice for a route event (zero: no opinion); a later stage's
	// non-zero value overrides an earlier one's. Other signals ignore them.
	Route Route
	QoS   QoS
	// After is a retransmit event's wait (ResendAfter, GiveUpAfter); other signals ignore it.
	After time.Duration
}

// ResendAfter answers a retransmit event: write the downlink again if it is still unACKed after d.
func ResendAfter(d time.Duration) Reply { return Reply{After: max(d, time.Millisecond)} }

// GiveUpAfter answers a retransmit event: if the downlink is still unACKed after d, the state
// server reports it undelivered (with its attempts) to the business server; d may be 0.
func GiveUpAfter(d time.Duration) Reply { return Reply{Verdict: Reject, After: max(d, 0)} }

// Untrack answers a retransmit event: the downlink is neither resent nor reported undelivered.
func Untrack() Reply { return Reply{Verdict: Drop} }

// RejectWith returns a Reply that rejects with code and message.
func RejectWith(code uint16, message string) Reply {
	return Reply{Verdict: Reject, Code: code, Message: message}
}

// FailWith returns a Reply that fails the signal: the stage's on_failure decides what happens to it.
// Use it instead of panicking when a handler cannot do its job for one signal.
func FailWith(message string) Reply { return Reply{Verdict: Fail, Message: message} }

// Rewrite returns a Reply that continues with payload in place of the original.
func Rewrite(payload []byte) Reply { return Reply{Payload: payload, Replace: true} }

// Routed returns a Reply that continues a route event with route r and QoS q (either may be
// zero: no opinion).
func Routed(r Route, q QoS) Reply { return Reply{Route: r, QoS: q} }

// Host is what a stage may ask of the platform. Calls from an out-of-process stage travel back to the
// host over gRPC; each is bounded by ctx.
type Host interface {
	// Push sends a new downlink to dids of appID; it passes through the app's pipeline like any
	// other, this stage's OnDownlink included.
	Push(ctx context.Context, appID string, dids []string, payload []byte) (PushResult, error)
	// Resend writes a downlink again, with the retransmit flag and its original seq, to the
	// connection, bypassing the pipeline. It fails when the connection is gone.
	Resend(ctx context.Context, conn Conn, seq, msgID uint64, payload []byte) error
	// Undelivered tells the app's business server a downlink was given up on.
	Undelivered(ctx context.Context, conn Conn, seq, msgID uint64, attempts int) error
	// Bind adds dids to a session of appID; Unbind removes them.
	Bind(ctx context.Context, appID, session string, dids []string) error
	Unbind(ctx context.Context, appID, session string, dids []string) error
	// Sessions asks the app's business server which sessions conn should join (its Sessions
	// callback).
	Sessions(ctx context.Context, conn Conn) ([]string, error)
	// Join binds the connection (logged in, or logging in from OnLogin) to sessions; it leaves
	// them when it closes.
	Join(ctx context.Context, conn Conn, sessions []string) error
	// SetTimer makes the host call this stage's OnTimer with key and data after d; setting a key
	// again replaces its timer. CancelTimer removes it. Keys are per app and per stage.
	SetTimer(ctx context.Context, appID, key string, d time.Duration, data []byte) error
	CancelTimer(ctx context.Context, appID, key string) error
	// Get, Put and Delete are small per-app, per-stage state kept by the host: it survives the
	// stage's process restarting or being swapped, not the state server restarting (it lives in
	// the state server's memory). A ttl of 0 keeps a value until it is deleted.
	Get(ctx context.Context, appID, key string) ([]byte, bool, error)
	Put(ctx context.Context, appID, key string, value []byte, ttl time.Duration) error
	Delete(ctx context.Context, appID, key string) error
}

// PushResult reports a Push.
type PushResult struct {
	MsgID   uint64
	Targets []PushTarget
}

// PushTarget is one did's outcome; Status uses the state server's PushStatus numbering
// (0 sent, 2 offline, 4 failed).
type PushTarget struct {
	DID    string
	ConnID uint64
	Status uint8
	Seq    uint64
}
