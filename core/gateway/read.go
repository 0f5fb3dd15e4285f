package gateway

import (
	"context"
	"strconv"
	"time"

	"github.com/cloudwego/netpoll"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/internal/telemetry"
	"github.com/platoim/plato/sdk/protocol"
)

type connCtxKey struct{}

// onConnect registers a new socket and arms its login timer.
func (gw *Gateway) onConnect(ctx context.Context, nc netpoll.Connection) context.Context {
	c := &conn{id: gw.nextID.Add(1), nc: nc, gw: gw}
	defer gw.guard(c, "connect")
	gw.conns.add(c)
	gw.metrics.accepted.Add(1)
	c.loginTimer = gw.wheel.AfterFunc(gw.cfg.LoginTimeout, func() {
		c.mu.Lock()
		waiting := c.state == stateNew
		c.mu.Unlock()
		if waiting {
			c.closeWith(protocol.CodeLoginTimeout, "no Login within "+gw.cfg.LoginTimeout.String())
		}
	})
	_ = nc.AddCloseCallback(func(netpoll.Connection) error {
		defer gw.guard(nil, "close") // the socket is gone already
		gw.onClose(c)
		return nil
	})
	return context.WithValue(ctx, connCtxKey{}, c)
}

// onRequest reads every complete frame. netpoll calls it again while input remains, so it must
// consume all input or close: a partial frame blocks in Peek/Next up to the read timeout.
func (gw *Gateway) onRequest(ctx context.Context, nc netpoll.Connection) error {
	c, _ := ctx.Value(connCtxKey{}).(*conn)
	r := nc.Reader()
	defer r.Release()
	if c == nil {
		return nc.Close()
	}
	defer gw.guard(c, "read")
	for r.Len() > 0 {
		c.mu.Lock()
		closing := c.state == stateClosing || c.closed
		c.mu.Unlock()
		if closing {
			// Discard what arrives after we decided to close, so netpoll does not spin on it.
			return r.Skip(r.Len())
		}
		hb, err := r.Peek(protocol.HeaderLen)
		if err != nil {
			c.abort(protocol.CodeClientClose)
			return err
		}
		h, err := protocol.ParseHeader(hb, gw.cfg.MaxBody)
		if err != nil {
			gw.protocolError(c, r, err)
			return nil
		}
		if err := r.Skip(protocol.HeaderLen); err != nil {
			return err
		}
		body, err := r.ReadBinary(int(h.Length))
		if err != nil {
			c.abort(protocol.CodeClientClose)
			return err
		}
		gw.metrics.bytesIn.Add(int64(protocol.HeaderLen + len(body)))
		gw.metrics.framesIn.Add(uint8(h.Signal))
		gw.onFrame(c, h, body)
	}
	return nil
}

func (gw *Gateway) protocolError(c *conn, r netpoll.Reader, err error) {
	code, ok := protocol.CodeOf(err)
	if !ok {
		code = protocol.CodeMalformed
	}
	gw.metrics.protocolErrors.Add(int(code))
	gw.log.Debug("closing connection on protocol error", "conn", c.id, "err", err)
	c.closeWith(code, err.Error())
	_ = r.Skip(r.Len())
}

// handle acts on one frame: login is checked here, everything else goes to the state server.
func (gw *Gateway) handle(c *conn, h protocol.Header, body []byte) {
	if !h.Signal.FromDevice() {
		c.closeWith(protocol.CodeBadDirection, h.Signal.String()+" is sent by servers only")
		return
	}
	c.mu.Lock()
	st, link := c.state, c.link
	c.mu.Unlock()
	switch h.Signal {
	case protocol.SigClose:
		c.mu.Lock()
		c.reason = protocol.CodeClientClose
		c.mu.Unlock()
		c.abort(protocol.CodeClientClose)
		return
	case protocol.SigLogin:
		if st != stateNew {
			c.closeWith(protocol.CodeAlreadyLogged, "Login on a connection that already sent one")
			return
		}
		gw.login(c, h, body)
		return
	case protocol.SigResume:
		if st != stateNew {
			c.closeWith(protocol.CodeAlreadyLogged, "Resume on a connection that already logged in")
			return
		}
		gw.resume(c, h, body)
		return
	}
	if st == stateNew || link == nil {
		c.closeWith(protocol.CodeNotLoggedIn, h.Signal.String()+" before Login")
		return
	}
	if h.Signal == protocol.SigUplink && st == stateLoggedIn {
		if code, closeIt := gw.admitUplink(c, protocol.HeaderLen+len(body), time.Now()); code != 0 {
			if closeIt {
				c.closeWith(protocol.CodeRateLimited, "uplinks far over the app's limit per device")
				return
			}
			ack := (&protocol.Ack{Code: code, Message: code.String() + ": retry later"}).Append(nil)
			c.enqueue(&fleet.DownFrame{ConnId: int64(c.id), Signal: int8(protocol.SigUplinkAck), Seq: int64(h.Seq), Body: ack})
			return
		}
	}
	if h.Signal == protocol.SigDownlinkAck && h.Flags&protocol.FlagBroadcast != 0 && !gw.acks.has(h.Seq, time.Now()) {
		// Only an at-least-once broadcast waits for ACKs; the others would cost the state server a
		// lookup per member for nothing.
		gw.metrics.broadcastAcksDropped.Add(1)
		return
	}
	gw.forward(c, link, &fleet.UpEvent{
		ConnId: int64(c.id), Kind: fleet.UpKind_FRAME, Signal: int8(h.Signal), Flags: int16(h.Flags), Seq: int64(h.Seq), Body: body,
	})
}

func (gw *Gateway) login(c *conn, h protocol.Header, body []byte) {
	var m protocol.Login
	reject := func(code protocol.Code, msg string) {
		ack := (&protocol.LoginAck{Code: code, Message: msg}).Append(nil)
		c.mu.Lock()
		c.state = stateClosing
		c.reason = code
		c.mu.Unlock()
		gw.metrics.logins.Add(int(code))
		c.enqueue(&fleet.DownFrame{ConnId: int64(c.id), Action: fleet.DownAction_SEND_AND_CLOSE, Signal: int8(protocol.SigLoginAck), Seq: int64(h.Seq), Body: ack})
	}
	if err := m.Decode(body); err != nil {
		reject(protocol.CodeMalformed, err.Error())
		return
	}
	if m.AppID == "" || m.DID == "" {
		reject(protocol.CodeMalformed, "Login needs app_id and did")
		return
	}
	app := gw.cfg.Apps.Get(m.AppID)
	if app == nil {
		reject(protocol.CodeUnknownApp, "app "+strconv.Quote(m.AppID)+" is not configured")
		return
	}
	claims, err := gw.tokens.Verify(m.Token, m.AppID, m.DID, time.Now())
	if err != nil {
		code, ok := protocol.CodeOf(err)
		if !ok {
			code = protocol.CodeTokenInvalid
		}
		reject(code, err.Error())
		return
	}
	if m.UID != "" && m.UID != claims.UID {
		// The token says who the device is; a Login naming someone else is a device lying.
		reject(protocol.CodeTokenMismatch, "token mismatch: the token was issued for another uid")
		return
	}
	link := pick(gw.links.List(), m.DID)
	if link == nil {
		reject(protocol.CodeStateLost, "no state server available; retry later")
		return
	}
	u := gw.usage.Of(app.ID)
	if !gw.admitLogin(app, u) {
		reject(protocol.CodeOverloaded, "the app's connection quota is used up; retry later")
		return
	}
	c.mu.Lock()
	if c.state != stateNew {
		c.mu.Unlock()
		u.conns.Add(-1)
		return
	}
	c.state = statePending
	c.appID, c.did, c.link = m.AppID, m.DID, link
	c.app, c.usage = app, u
	c.mu.Unlock()
	c.loginTimer.Stop()
	gw.forward(c, link, &fleet.UpEvent{
		ConnId: int64(c.id), Kind: fleet.UpKind_FRAME, Signal: int8(protocol.SigLogin), Seq: int64(h.Seq), Body: body,
		AppId: m.AppID, Did: m.DID, Uid: claims.UID, RemoteAddr: c.nc.RemoteAddr().String(),
	})
}

// resume answers a Resume. Resuming a previous connection needs the reconnect machinery, which
// this version does not have; but the token is checked first, so a forged, expired or foreign
// one is refused as such (and the connection closed), never answered as if it could resume.
func (gw *Gateway) resume(c *conn, h protocol.Header, body []byte) {
	var m protocol.Resume
	answer := func(code protocol.Code, msg string, action fleet.DownAction) {
		ack := (&protocol.ResumeAck{Code: code, Message: msg}).Append(nil)
		c.enqueue(&fleet.DownFrame{ConnId: int64(c.id), Action: action, Signal: int8(protocol.SigResumeAck), Seq: int64(h.Seq), Body: ack})
	}
	if err := m.Decode(body); err != nil {
		c.closeWith(protocol.CodeMalformed, "malformed Resume: "+err.Error())
		return
	}
	if gw.cfg.Apps.Get(m.AppID) == nil {
		answer(protocol.CodeUnknownApp, "app "+strconv.Quote(m.AppID)+" is not configured", fleet.DownAction_SEND_AND_CLOSE)
		return
	}
	claims, err := gw.tokens.Verify(m.Token, m.AppID, m.DID, time.Now())
	if err == nil && m.UID != "" && m.UID != claims.UID {
		err = &protocol.Error{Code: protocol.CodeTokenMismatch, Msg: "the token was issued for another uid"}
	}
	if err != nil {
		code, ok := protocol.CodeOf(err)
		if !ok {
			code = protocol.CodeTokenInvalid
		}
		answer(code, err.Error(), fleet.DownAction_SEND_AND_CLOSE)
		return
	}
	// Keep the socket open for a Login.
	answer(protocol.CodeResumeRejected, "resume is not supported by this server: send Login", fleet.DownAction_SEND)
}

// forward queues ev for the connection's state server; a full queue means the state server is not
// keeping up, and the device is told to come back later rather than buffering without bound.
//
// A frame the tracer samples gets a "plato.gateway.frame" span, from its arrival to its queuing,
// and carries the span's traceparent so the state server's spans join the same trace.
func (gw *Gateway) forward(c *conn, l *stateLink, ev *fleet.UpEvent) {
	ctx, span := gw.cfg.Tracer.StartRoot("plato.gateway.frame")
	if span != nil {
		span.SetAttributes(attribute.String("signal", protocol.Signal(ev.Signal).String()),
			attribute.String("gateway", gw.cfg.ID), attribute.Int64("conn", int64(c.id)))
		ev.Traceparent = telemetry.TraceParent(ctx)
		defer span.End()
	}
	if err := l.batch.Add(c.id, ev); err != nil {
		gw.metrics.forwardRefused.Add(1)
		if span != nil {
			span.SetStatus(codes.Error, "state server queue full")
		}
		c.closeWith(protocol.CodeOverloaded, "state server queue full")
	}
}

// onClose runs once when the socket is gone, whoever closed it.
func (gw *Gateway) onClose(c *conn) {
	c.mu.Lock()
	c.closed = true
	c.queue = nil
	link, app, did, reason := c.link, c.appID, c.did, c.reason
	sessions, u := c.sessions, c.usage
	c.usage = nil
	c.sessions = nil
	c.mu.Unlock()
	c.loginTimer.Stop()
	gw.leaveAllSessions(c, app, sessions)
	key := ""
	if did != "" {
		key = didKey(app, did)
	}
	gw.conns.remove(c, key)
	if u != nil {
		u.conns.Add(-1)
	}
	if reason == 0 {
		reason = protocol.CodeClientClose
	}
	gw.metrics.closed.Add(int(reason))
	if link == nil {
		return
	}
	if err := link.batch.Add(c.id, &fleet.UpEvent{ConnId: int64(c.id), Kind: fleet.UpKind_CLOSED, Reason: int32(reason)}); err != nil {
		gw.log.Warn("could not tell the state server a connection closed", "conn", c.id, "err", err)
	}
}
