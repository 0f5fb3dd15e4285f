package stage

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"unicode/utf8"
)

// handlers are a Stage's optional handler interfaces, found once by type assertion. Both the
// plugin side and InProcess run events through them, so a stage behaves the same either way.
type handlers struct {
	login       LoginHandler
	uplink      UplinkHandler
	downlink    DownlinkHandler
	downlinkAck DownlinkAckHandler
	heartbeat   HeartbeatHandler
	disconnect  DisconnectHandler
	route       RouteHandler
	timer       TimerHandler
	retransmit  RetransmitHandler
}

func handlersOf(s Stage) *handlers {
	h := &handlers{}
	h.login, _ = s.(LoginHandler)
	h.uplink, _ = s.(UplinkHandler)
	h.downlink, _ = s.(DownlinkHandler)
	h.downlinkAck, _ = s.(DownlinkAckHandler)
	h.heartbeat, _ = s.(HeartbeatHandler)
	h.disconnect, _ = s.(DisconnectHandler)
	h.route, _ = s.(RouteHandler)
	h.timer, _ = s.(TimerHandler)
	h.retransmit, _ = s.(RetransmitHandler)
	return h
}

// signals lists the signals h has handlers for, in the order of Signals, then SignalTimer.
func (h *handlers) signals() []Signal {
	var out []Signal
	add := func(ok bool, s Signal) {
		if ok {
			out = append(out, s)
		}
	}
	add(h.login != nil, SignalLogin)
	add(h.uplink != nil, SignalUplink)
	add(h.downlink != nil, SignalDownlink)
	add(h.downlinkAck != nil, SignalDownlinkAck)
	add(h.heartbeat != nil, SignalHeartbeat)
	add(h.disconnect != nil, SignalDisconnect)
	add(h.route != nil, SignalRoute)
	add(h.retransmit != nil, SignalRetransmit)
	add(h.timer != nil, SignalTimer)
	return out
}

// run handles events in order into replies[i], and turns a handler's panic into a *BatchError
// for the whole batch (logging the panic with its stack to log). cleanStrings makes every string a
// handler sees valid UTF-8; the plugin side skips it, as the host's encoder already did it.
func (h *handlers) run(ctx context.Context, log *slog.Logger, events []Event, replies []Reply, cleanStrings bool) (err error) {
	defer func() {
		if p := recover(); p != nil {
			msg := fmt.Sprintf("panic: %v", p)
			log.Error("stage handler panicked; the batch fails", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = &BatchError{Message: msg}
		}
	}()
	h.dispatch(ctx, events, replies, cleanStrings)
	return nil
}

// scratch holds one typed event of each kind. dispatch fills and reuses them for every event of a
// batch, so handling an event costs no allocation: the pointer a handler gets is valid only
// during the call (doc.go says so).
type scratch struct {
	login       LoginEvent
	uplink      UplinkEvent
	downlink    DownlinkEvent
	downlinkAck DownlinkAckEvent
	heartbeat   HeartbeatEvent
	disconnect  DisconnectEvent
	route       RouteEvent
	timer       TimerEvent
	retransmit  RetransmitEvent
}

// dispatch calls the handler for each event's signal. A signal the stage has no handler for,
// or one this SDK does not know, gets the zero Reply (continue unchanged).
func (h *handlers) dispatch(ctx context.Context, events []Event, replies []Reply, cleanStrings bool) {
	sc := new(scratch)
	for i := range events {
		ev := &events[i]
		if cleanStrings && !validEvent(ev) {
			c := cleanEvent(*ev)
			ev = &c
		}
		var r Reply
		switch ev.Signal {
		case SignalLogin:
			if h.login != nil {
				sc.login = LoginEvent{Conn: ev.Conn, Seq: ev.Seq, Token: ev.Token, Platform: ev.Platform, TraceParent: ev.TraceParent}
				r = h.login.OnLogin(ctx, &sc.login)
			}
		case SignalUplink:
			if h.uplink != nil {
				sc.uplink = UplinkEvent{Conn: ev.Conn, Seq: ev.Seq, Payload: ev.Payload, TraceParent: ev.TraceParent}
				r = h.uplink.OnUplink(ctx, &sc.uplink)
			}
		case SignalDownlink:
			if h.downlink != nil {
				sc.downlink = DownlinkEvent{Conn: ev.Conn, Seq: ev.Seq, MsgID: ev.MsgID, Payload: ev.Payload, TraceParent: ev.TraceParent, QoS: ev.QoS}
				r = h.downlink.OnDownlink(ctx, &sc.downlink)
			}
		case SignalDownlinkAck:
			if h.downlinkAck != nil {
				sc.downlinkAck = DownlinkAckEvent{Conn: ev.Conn, Seq: ev.Seq, MsgID: ev.MsgID, TraceParent: ev.TraceParent}
				r = h.downlinkAck.OnDownlinkAck(ctx, &sc.downlinkAck)
			}
		case SignalHeartbeat:
			if h.heartbeat != nil {
				sc.heartbeat = HeartbeatEvent{Conn: ev.Conn, Seq: ev.Seq}
				r = h.heartbeat.OnHeartbeat(ctx, &sc.heartbeat)
			}
		case SignalDisconnect:
			if h.disconnect != nil {
				sc.disconnect = DisconnectEvent{Conn: ev.Conn, Reason: ev.Reason}
				r = h.disconnect.OnDisconnect(ctx, &sc.disconnect)
			}
		case SignalRoute:
			if h.route != nil {
				sc.route = RouteEvent{AppID: ev.Conn.AppID, Session: ev.Session, Targets: ev.Targets, Members: ev.Members,
					MsgID: ev.MsgID, Payload: ev.Payload, QoS: ev.QoS, TraceParent: ev.TraceParent}
				r = h.route.OnRoute(ctx, &sc.route)
			}
		case SignalRetransmit:
			if h.retransmit != nil {
				sc.retransmit = RetransmitEvent{Conn: ev.Conn, Seq: ev.Seq, MsgID: ev.MsgID, QoS: ev.QoS, Attempts: ev.Attempts}
				r = h.retransmit.OnRetransmit(ctx, &sc.retransmit)
			}
		case SignalTimer:
			if h.timer != nil {
				sc.timer = TimerEvent{AppID: ev.Conn.AppID, Key: ev.TimerKey, Data: ev.TimerData}
				r = h.timer.OnTimer(ctx, &sc.timer)
			}
		}
		replies[i] = r
	}
}

// clean returns s, or s with invalid UTF-8 replaced by U+FFFD. Strings crossing to a plugin must
// be valid UTF-8 (proto3 strings), and devices are not trusted to send valid UTF-8, so every path
// cleans them, in process too, for identical behaviour. It allocates only for invalid input.
func clean(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func validEvent(ev *Event) bool {
	c := &ev.Conn
	return utf8.ValidString(c.AppID) && utf8.ValidString(c.DID) && utf8.ValidString(c.UID) &&
		utf8.ValidString(c.GatewayID) && utf8.ValidString(c.RemoteAddr) && utf8.ValidString(ev.Token) &&
		utf8.ValidString(ev.Platform) && utf8.ValidString(ev.TimerKey) && utf8.ValidString(ev.TraceParent) &&
		utf8.ValidString(ev.Session)
}

func cleanEvent(ev Event) Event {
	ev.Conn = cleanConn(ev.Conn)
	ev.Token, ev.Platform, ev.TimerKey, ev.TraceParent = clean(ev.Token), clean(ev.Platform), clean(ev.TimerKey), clean(ev.TraceParent)
	ev.Session = clean(ev.Session)
	return ev
}

func cleanConn(c Conn) Conn {
	c.AppID, c.DID, c.UID = clean(c.AppID), clean(c.DID), clean(c.UID)
	c.GatewayID, c.RemoteAddr = clean(c.GatewayID), clean(c.RemoteAddr)
	return c
}
