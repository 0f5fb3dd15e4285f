package gateway

import (
	"context"
	"strconv"
	"time"

	"github.com/cloudwego/netpoll"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/platoim/plato/internal/overload"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/internal/telemetry"
	"github.com/platoim/plato/sdk/protocol"
)

type connCtxKey struct{}

// onConnect registers a new socket and arms its login timer.
func (gw *Gateway) onConnect(ctx context.Context, nc netpoll.Connection) context.Context {
	return gw.accept(ctx, nc, nil)
}

// accept registers a socket of either listener; ws is nil for TCP.
func (gw *Gateway) accept(ctx context.Context, nc netpoll.Connection, ws *wsConn) context.Context {
	c := &conn{id: gw.nextID.Add(1), nc: nc, gw: gw, fd: -1, ws: ws}
	defer gw.guard(c, "connect")
	// Set before the conn is published; taken (nil) under c.mu once a Login or Resume is
	// forwarded, and the connCold with it.
	c.cold = &connCold{loginTimer: gw.wheel.AfterFunc(gw.cfg.LoginTimeout, func() { gw.loginTimedOut(c) })}
	gw.setSocketOptions(c)
	gw.conns.add(c)
	gw.metrics.accepted.Add(1)
	_ = nc.AddCloseCallback(c.socketClosed)
	return &connCtx{Context: ctx, c: c}
}

// socketClosed is c's close callback: a method value holds only c (16 bytes), where a closure
// over the gateway, the conn and the netpoll connection took 48, on every connection.
func (c *conn) socketClosed(netpoll.Connection) error {
	defer c.gw.guard(nil, "close") // the socket is gone already
	c.gw.onSocketClosed(c, c.nc)
	return nil
}

// connCtx is the context netpoll keeps with a connection, carrying its conn under connCtxKey in
// 24 bytes (context.WithValue takes 48).
type connCtx struct {
	context.Context
	c *conn
}

func (x *connCtx) Value(key any) any {
	if key == (connCtxKey{}) {
		return x.c
	}
	return x.Context.Value(key)
}

func (gw *Gateway) loginTimedOut(c *conn) {
	c.mu.Lock()
	waiting := c.state == stateNew
	c.mu.Unlock()
	if waiting {
		c.closeWith(protocol.CodeLoginTimeout, "no Login within "+gw.cfg.LoginTimeout.String())
	}
}

// onRequest reads every complete frame. netpoll calls it again while input remains, so it must
// consume all input or close: the start of a frame not complete is carried (carry.go).
func (gw *Gateway) onRequest(ctx context.Context, nc netpoll.Connection) error {
	c, _ := ctx.Value(connCtxKey{}).(*conn)
	if c == nil {
		return nc.Close()
	}
	return gw.readCarried(c, nc)
}

// readFrames reads c's complete frames, and carries the start of one not complete yet
// (carryRest): it never waits for input.
func (gw *Gateway) readFrames(c *conn, nc netpoll.Connection) error {
	r := nc.Reader()
	defer r.Release()
	defer gw.guard(c, "read")
	defer c.releaseFlushes()
	for r.Len() > 0 {
		c.mu.Lock()
		closing := c.state == stateClosing || c.closed
		c.holdLocked()
		c.mu.Unlock()
		if closing {
			// Discard what arrives after we decided to close, so netpoll does not spin on it.
			return r.Skip(r.Len())
		}
		if r.Len() < protocol.HeaderLen {
			return gw.carryRest(c, r)
		}
		hb, err := r.Peek(protocol.HeaderLen)
		if err != nil {
			return gw.readFailed(c, err)
		}
		h, err := protocol.ParseHeader(hb, gw.cfg.MaxBody)
		if err != nil {
			gw.protocolError(c, r, err)
			return nil
		}
		if r.Len() < protocol.HeaderLen+int(h.Length) {
			return gw.carryRest(c, r)
		}
		if err := r.Skip(protocol.HeaderLen); err != nil {
			return err
		}
		body, err := r.ReadBinary(int(h.Length))
		if err != nil {
			return gw.readFailed(c, err)
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
	skipAll(r)
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
	reserved := false
	switch {
	case h.Signal == protocol.SigDownlinkAck && h.Flags&protocol.FlagBroadcast != 0:
		if !gw.acks.has(h.Seq, time.Now()) {
			// Only an at-least-once broadcast waits for ACKs; the others would cost the state
			// server a lookup per member for nothing.
			gw.metrics.broadcastAcksDropped.Add(1)
			return
		}
	case h.Signal == protocol.SigDownlinkAck:
		reserved = c.acked(int64(h.Seq))
	case h.Signal == protocol.SigHeartbeat:
		reserved = c.heartbeatSent()
	case h.Signal == protocol.SigUplink:
		if reason := gw.admitForward(); reason >= 0 {
			gw.refuseUplink(c, h.Seq, reason)
			return
		}
		c.forwarded(int64(h.Seq), monoNow())
	}
	ev := gw.newEvent() // back to the pool once delivered (pushpool.go)
	ev.ConnId, ev.Kind, ev.Signal, ev.Flags, ev.Seq, ev.Body = int64(c.id), fleet.UpKind_FRAME, int8(h.Signal), int16(h.Flags), int64(h.Seq), body
	if gw.forward(c, link, ev, reserved) {
		return
	}
	switch h.Signal {
	case protocol.SigUplink:
		c.unforwarded(int64(h.Seq))
		gw.refuseUplink(c, h.Seq, refusedQueueFull)
	case protocol.SigHeartbeat:
		c.heartbeatAnswered() // this one never left: the next may take the reserve
	}
	// An ACK the gateway does not know of, or a second heartbeat while one is in flight: dropped
	// (and counted), as the state server is not keeping up.
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
	a := gw.admit(c, m.AppID, m.DID, m.UID, m.Token)
	if a.code != 0 {
		reject(a.code, a.msg)
		return
	}
	if a.link == nil {
		return // closing meanwhile (its login timer fired)
	}
	if !gw.forward(c, a.link, &fleet.UpEvent{
		ConnId: int64(c.id), Kind: fleet.UpKind_FRAME, Signal: int8(protocol.SigLogin), Seq: int64(h.Seq), Body: body,
		AppId: m.AppID, Did: m.DID, Uid: a.uid, RemoteAddr: remoteAddr(c.nc),
	}, false) {
		gw.refuseQueuedLogin(c)
	}
}

// refuseQueuedLogin closes a connection whose Login or Resume found its state server's lane full:
// nothing was set up for it yet, and the device retries, here or elsewhere.
func (gw *Gateway) refuseQueuedLogin(c *conn) {
	gw.metrics.loginsRefused[refusedQueueFull].Add(1)
	c.closeWith(protocol.CodeOverloaded, "overloaded: the state server's queue is full; retry later")
}

// admission is admit's answer: the token's uid and the did's state server, or the code and
// message to refuse with; neither when the connection is closing meanwhile.
type admission struct {
	uid  string
	link *stateLink
	code protocol.Code
	msg  string
}

// admit checks a Login's or Resume's app and token, picks the did's state server and takes a
// connection of the app's quota, and marks c pending. The token says who the device is: a frame
// naming another uid than the token's is a device lying.
func (gw *Gateway) admit(c *conn, appID, did, uid, tok string) admission {
	if gw.overload.Active(overload.RefuseLogins) {
		// First and cheapest: a pressed gateway spends nothing on a device that can go elsewhere.
		gw.metrics.loginsRefused[refusedOverload].Add(1)
		return admission{code: protocol.CodeOverloaded, msg: "gateway overloaded; retry later (ipconf ranks others first)"}
	}
	app := gw.cfg.Apps.Get(appID)
	if app == nil {
		return admission{code: protocol.CodeUnknownApp, msg: "app " + strconv.Quote(appID) + " is not configured"}
	}
	if o := c.wsOrigin(); !app.AllowsOrigin(o) {
		return admission{code: protocol.CodeOriginRefused, msg: "origin " + strconv.Quote(o) + " may not log in to app " + strconv.Quote(appID)}
	}
	claims, err := gw.tokens.Verify(tok, appID, did, time.Now())
	if err != nil {
		code, ok := protocol.CodeOf(err)
		if !ok {
			code = protocol.CodeTokenInvalid
		}
		return admission{code: code, msg: err.Error()}
	}
	if uid != "" && uid != claims.UID {
		return admission{code: protocol.CodeTokenMismatch, msg: "token mismatch: the token was issued for another uid"}
	}
	link := pick(gw.links.List(), did)
	if link == nil {
		return admission{code: protocol.CodeStateLost, msg: "no state server available; retry later"}
	}
	u := gw.appUsage(app.ID)
	if !gw.admitLogin(app, u) {
		return admission{code: protocol.CodeOverloaded, msg: "the app's connection quota is used up; retry later"}
	}
	c.mu.Lock()
	if c.state != stateNew {
		c.mu.Unlock()
		u.conns.Add(-1)
		return admission{}
	}
	c.state = statePending
	c.setIdentityLocked(app.ID, did, claims.UID)
	c.link = link
	c.app, c.usage = app, u
	// A connection past its Login keeps no timer (80 bytes); a refused Resume arms a new one.
	lt := c.takeLoginTimerLocked()
	c.mu.Unlock()
	if lt != nil {
		lt.Stop()
	}
	return admission{uid: claims.UID, link: link}
}

// resume checks a Resume's token like a Login's and hands it to the did's state server, which
// answers ResumeAck 0 (LOGIN_OK) or 1208 (RESUME_REFUSED: the socket stays open for a Login).
func (gw *Gateway) resume(c *conn, h protocol.Header, body []byte) {
	var m protocol.Resume
	if err := m.Decode(body); err != nil {
		c.closeWith(protocol.CodeMalformed, "malformed Resume: "+err.Error())
		return
	}
	if m.AppID == "" || m.DID == "" {
		c.closeWith(protocol.CodeMalformed, "Resume needs app_id and did")
		return
	}
	a := gw.admit(c, m.AppID, m.DID, m.UID, m.Token)
	if a.code != 0 {
		gw.metrics.resumes.Add(int(a.code))
		ack := (&protocol.ResumeAck{Code: a.code, Message: a.msg}).Append(nil)
		c.mu.Lock()
		c.state = stateClosing
		c.reason = a.code
		c.mu.Unlock()
		c.enqueue(&fleet.DownFrame{ConnId: int64(c.id), Action: fleet.DownAction_SEND_AND_CLOSE, Signal: int8(protocol.SigResumeAck), Seq: int64(h.Seq), Body: ack})
		return
	}
	if a.link == nil {
		return
	}
	if !gw.forward(c, a.link, &fleet.UpEvent{
		ConnId: int64(c.id), Kind: fleet.UpKind_FRAME, Signal: int8(protocol.SigResume), Seq: int64(h.Seq), Body: body,
		AppId: m.AppID, Did: m.DID, Uid: a.uid, RemoteAddr: remoteAddr(c.nc),
	}, false) {
		gw.refuseQueuedLogin(c)
	}
}

// refuseResume is the state server's ResumeAck 1208: nothing to resume. The connection goes back
// to waiting for a Login (its login timer re-armed), and gives back its quota until then.
func (gw *Gateway) refuseResume(c *conn, f *fleet.DownFrame) bool {
	c.mu.Lock()
	if c.state != statePending {
		c.mu.Unlock()
		return !c.closed
	}
	// Sessions the state server synced before it found the connection gone are left too.
	app, sessions, u := c.appID(), c.sessionsLocked(), c.usage
	c.state = stateNew
	c.key, c.uid, c.link, c.app, c.usage = "", "", nil, nil, nil
	if c.cold != nil {
		c.cold.sessions = nil
	}
	if k := c.coldLocked(); !c.closed && k.loginTimer == nil {
		// The wheel runs callbacks with no lock held, so arming under c.mu cannot deadlock.
		k.loginTimer = gw.wheel.AfterFunc(gw.cfg.LoginTimeout, func() { gw.loginTimedOut(c) })
	}
	c.trimColdLocked()
	c.mu.Unlock()
	gw.leaveAllSessions(c, app, sessions)
	if u != nil {
		u.conns.Add(-1)
	}
	gw.metrics.resumes.Add(int(protocol.CodeResumeRejected))
	return c.enqueue(f)
}

// forward queues ev for the connection's state server and reports whether it was taken. A full
// lane means the state server is not keeping up: the caller refuses the frame (overload.go) rather
// than buffer without bound. A reserved event takes the lane's reserve and is never refused for
// room.
//
// A frame the tracer samples gets a "plato.gateway.frame" span, from its arrival to its queuing,
// and carries the span's traceparent so the state server's spans join the same trace.
func (gw *Gateway) forward(c *conn, l *stateLink, ev *fleet.UpEvent, reserved bool) bool {
	ctx, span := gw.cfg.Tracer.StartRoot("plato.gateway.frame")
	if span != nil {
		span.SetAttributes(attribute.String("signal", protocol.Signal(ev.Signal).String()),
			attribute.String("gateway", gw.cfg.ID), attribute.Int64("conn", int64(c.id)))
		ev.Traceparent = telemetry.TraceParent(ctx)
		defer span.End()
	}
	add := l.batch.Add
	if reserved {
		add = l.batch.AddReserved
	}
	if err := add(c.id, ev); err != nil {
		gw.metrics.forwardRefused.Add(1)
		if span != nil {
			span.SetStatus(codes.Error, "state server queue full")
		}
		return false
	}
	return true
}

// onClose runs once when the socket is gone, whoever closed it.
func (gw *Gateway) onClose(c *conn) {
	c.mu.Lock()
	c.closed = true
	gw.upInFlight.Add(-int64(len(c.upPendingLocked())))
	if c.link != nil {
		// Along with closed, under c.mu: a push that finds it closed, or gone from the table,
		// must know its close event is coming (push.go).
		gw.closedIDs.add(c.id, time.Now())
	}
	c.queue, c.queued = nil, 0
	gw.slow.unwatchLocked(c)
	link, app, did, uid, reason, key := c.link, c.appID(), c.did(), c.uid, c.reason, c.key
	sessions, u := c.sessionsLocked(), c.usage
	c.usage = nil
	if c.cold != nil {
		c.cold.unacked, c.cold.upPending, c.cold.sessions = nil, nil, nil
	}
	lt := c.takeLoginTimerLocked()
	c.mu.Unlock()
	if lt != nil {
		lt.Stop()
	}
	gw.leaveAllSessions(c, app, sessions)
	gw.conns.remove(c, key)
	if u != nil {
		u.conns.Add(-1)
	}
	if reason == 0 {
		// The socket went away without a Close from either side: the device may Resume.
		reason = protocol.CodeConnectionLost
	}
	gw.metrics.closed.Add(int(reason))
	if link == nil {
		return
	}
	// The identity rides along in case the state server is lost before it takes the event
	// (rerouteClosed).
	ev := &fleet.UpEvent{ConnId: int64(c.id), Kind: fleet.UpKind_CLOSED, Reason: int32(reason), AppId: app, Did: did, Uid: uid}
	if err := link.batch.AddReserved(c.id, ev); err != nil {
		gw.log.Warn("could not tell the state server a connection closed", "conn", c.id, "err", err)
	}
}
