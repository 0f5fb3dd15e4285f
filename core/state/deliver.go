package state

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/internal/timewheel"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// Deliver takes a gateway's batch of device events. It never blocks on I/O: each event is handed to
// the app's pipeline (whose lanes keep a connection's events in order) and finished in the
// pipeline's callback; answers and business deliveries are queued on their own batchers. A caller
// that reads answers in the reply (acks_in_reply) is held up to state.uplink_ack_wait for those of
// its uplinks (replyacks.go).
//
// The request is only borrowed: a gateway in this process takes its events back for its next
// frames once the call returns (internal/colocal's requestLent), so nothing here may keep the
// request, an event, or an event's lists past the call; what is kept is copied out (strings,
// which are immutable, and a frame's body, which the gateway makes for that frame alone). The
// tests' deliver helpers wipe the events after each call, and under the race detector the
// end-to-end tests report an event read after its call (a pipeline callback reading its login
// event fails TestPipelineCarriesLoginUplinkDownlink with a data race).
func (h *handler) Deliver(_ context.Context, req *fleet.DeliverRequest) (*fleet.DeliverResponse, error) {
	s := h.s
	if s.gwAuth != nil {
		if err := s.gwAuth.Verify(req.GatewayId, req.Proof); err != nil {
			s.metrics.deliverRefused.Add(1)
			return nil, fmt.Errorf("deliver from %q refused: %w", req.GatewayId, err)
		}
	}
	if req.Boot != "" && req.Boot != s.boot {
		// Meant for this server's previous run: the gateway moves those connections here itself.
		return &fleet.DeliverResponse{Restarted: true}, nil
	}
	l := s.gatewayFor(req.GatewayId)
	if l == nil {
		s.log.Warn("events from an unregistered gateway dropped", "gateway", req.GatewayId, "events", len(req.Events))
		return &fleet.DeliverResponse{}, nil
	}
	if len(req.Gone) > 0 || len(req.Moved) > 0 {
		// What the gateway found when it wrote an earlier reply's answers (replyacks.go).
		s.gone(l, req.Gone)
		s.moved(l, req.Moved)
	}
	var col *ackCollector
	if req.AcksInReply && s.cfg.UplinkAckWait > 0 {
		col = newAckCollector(req.Events)
	}
	now := time.Now().UnixNano()
	for _, ev := range req.Events {
		key := connKey{gw: req.GatewayId, id: uint64(ev.ConnId)}
		switch ev.Kind {
		case fleet.UpKind_CLOSED:
			if ev.Orphan && s.conns.get(key) == nil {
				s.closedElsewhere(key, ev)
				continue
			}
			s.closed(key, protocol.Code(ev.Reason))
			continue
		case fleet.UpKind_ADOPTED:
			s.adopt(l, key, ev)
			continue
		}
		sig := protocol.Signal(ev.Signal)
		switch sig {
		case protocol.SigLogin:
			s.login(l, key, ev)
			continue
		case protocol.SigResume:
			s.resume(l, key, ev)
			continue
		}
		cs := s.conns.byRoute(key)
		if cs == nil {
			// The gateway thinks this connection is logged in but we do not know it (we restarted,
			// or it was closed meanwhile): have the device start over.
			body := (&protocol.Close{Code: protocol.CodeStateLost, Message: "connection unknown to the state server; log in again"}).Append(nil)
			s.sendTo(l, key.id, fleet.DownAction_SEND_AND_CLOSE, protocol.SigClose, 0, body)
			continue
		}
		cs.lastSeen.Store(now)
		s.metrics.framesIn.Add(1)
		seq := uint64(ev.Seq)
		switch sig {
		case protocol.SigHeartbeat:
			s.heartbeat(cs, key, seq, ev.Traceparent, col) // heartbeatreply.go
		case protocol.SigUplink:
			payload := ev.Body
			s.expectUplink(cs, col)
			sp := s.startFrame(stage.SignalUplink, cs.appID, ev.Traceparent)
			s.through(stage.Event{Signal: stage.SignalUplink, Conn: cs.stageConn(), Seq: seq, Payload: payload, TraceParent: sp.traceParent()}, refusable, func(out pipeline.Outcome) {
				s.uplinkOutcome(cs, seq, payload, out, sp)
			})
		case protocol.SigDownlinkAck:
			if uint16(ev.Flags)&protocol.FlagBroadcast != 0 {
				// A broadcast's ACK: its seq is a msg_id outside the connection's sequence, and
				// broadcasts are not tracked per connection.
				continue
			}
			sp := s.startFrame(stage.SignalDownlinkAck, cs.appID, ev.Traceparent)
			if s.skips(cs.appID, stage.SignalDownlinkAck) {
				s.downlinkAck(cs, seq)
				sp.end(protocol.CodeOK)
				continue
			}
			msgID := cs.inflightMsg(seq)
			policy := reserved
			if msgID == 0 {
				policy = skippable // nothing in flight: a device could send these without bound
			}
			s.through(stage.Event{Signal: stage.SignalDownlinkAck, Conn: cs.stageConn(), Seq: seq, MsgID: msgID, TraceParent: sp.traceParent()}, policy, func(pipeline.Outcome) {
				s.downlinkAck(cs, seq)
				sp.end(protocol.CodeOK)
			})
		}
	}
	if col == nil {
		return &fleet.DeliverResponse{}, nil
	}
	col.wait(s.cfg.UplinkAckWait, &s.metrics, &s.waitTimers)
	return &fleet.DeliverResponse{Acks: s.finish(col)}, nil
}

// login records the connection at once (so its next frames find it) and lets the pipeline decide.
func (s *Server) login(l *gatewayLink, key connKey, ev *fleet.UpEvent) {
	var m protocol.Login
	_ = m.Decode(ev.Body) // the gateway decoded it already; this is for the token and platform
	cs := newConnState(key, ev.AppId, ev.Did, ev.Uid, ev.RemoteAddr, l)
	sp := s.startFrame(stage.SignalLogin, ev.AppId, ev.Traceparent)
	if !s.conns.addPending(cs) {
		body := (&protocol.LoginAck{Code: protocol.CodeAlreadyLogged, Message: "already logged in"}).Append(nil)
		s.sendTo(l, key.id, fleet.DownAction_SEND, protocol.SigLoginAck, uint64(ev.Seq), body)
		sp.end(protocol.CodeAlreadyLogged)
		return
	}
	seq := uint64(ev.Seq)
	sev := stage.Event{Signal: stage.SignalLogin, Conn: cs.stageConn(), Seq: seq, Token: m.Token, Platform: m.Platform, TraceParent: sp.traceParent()}
	s.through(sev, refusable, func(out pipeline.Outcome) {
		if out.Verdict != stage.Continue {
			sp.end(s.refuseLogin(cs, seq, out))
			return
		}
		sp.end(s.acceptLogin(cs, seq, m.Platform))
	})
}

// acceptLogin makes the connection its did's and answers LOGIN_OK; it returns the login's code
// (1209 when the device left while the login was in the pipeline).
func (s *Server) acceptLogin(cs *connState, seq uint64, platform string) protocol.Code {
	cs.mu.Lock()
	if cs.closed {
		cs.mu.Unlock()
		return protocol.CodeClientClose
	}
	cs.loggedIn = true
	// Indexed under cs.mu, so a disconnect that does not wait for the pipeline lane either comes
	// first (and the login stops above) or finds the connection indexed and forgets it.
	replaced := s.conns.activate(cs)
	cs.mu.Unlock()
	s.armHeartbeat(cs)
	if replaced != nil && replaced != cs {
		// One did is one device: its newest connection wins.
		s.kick(replaced, protocol.CodeReplaced, "the same did logged in on another connection")
	}
	s.metrics.logins.Add(1)
	s.notify(cs, api.EventKind_CONNECTED, 0)
	ack := (&protocol.LoginAck{
		Code: protocol.CodeOK, ConnID: cs.key.id, HeartbeatMs: uint32(s.cfg.HeartbeatInterval / time.Millisecond),
	}).Append(nil)
	s.send(cs, fleet.DownAction_LOGIN_OK, protocol.SigLoginAck, 0, seq, ack)
	s.log.Debug("login", "app", cs.appID, "did", cs.did, "uid", cs.uid, "gateway", cs.key.gw, "conn", cs.key.id, "platform", platform)
	return protocol.CodeOK
}

// refuseLogin answers a login a stage rejected (or the pipeline refused), forgets the connection,
// and returns the code the device was told.
func (s *Server) refuseLogin(cs *connState, seq uint64, out pipeline.Outcome) protocol.Code {
	if out.Stage != "" {
		s.metrics.loginsRejected.Add(1)
	}
	code, msg := rejection(out)
	body := (&protocol.LoginAck{Code: code, Message: msg}).Append(nil)
	s.send(cs, fleet.DownAction_SEND_AND_CLOSE, protocol.SigLoginAck, 0, seq, body)
	cs.mu.Lock()
	cs.closed = true
	cs.mu.Unlock()
	s.sessions.leaveAll(cs) // a stage may have joined it to sessions before a later one refused it
	s.conns.remove(cs)
	return code
}

// rejection turns a stage's verdict into what the device is told.
func rejection(out pipeline.Outcome) (protocol.Code, string) {
	code, msg := protocol.Code(out.Code), out.Message
	if code == 0 {
		code = protocol.CodeForbidden
	}
	if out.Stage != "" {
		msg = out.Stage + ": " + msg
	}
	return code, msg
}

func (s *Server) uplinkOutcome(cs *connState, seq uint64, payload []byte, out pipeline.Outcome, sp *sigSpan) {
	switch out.Verdict {
	case stage.Reject:
		if out.Stage != "" { // not the pipeline refusing it for a full lane
			s.metrics.uplinksRejected.Add(1)
		}
		code, msg := rejection(out)
		s.ackUplink(cs, seq, code, msg, sp)
		return
	case stage.Drop:
		// A stage swallowed it on purpose (a filter): the device is done with it.
		s.metrics.uplinksRejected.Add(1)
		s.ackUplink(cs, seq, protocol.CodeOK, "", sp)
		return
	}
	if out.Payload != nil {
		payload = out.Payload
	}
	s.uplink(cs, seq, payload, sp)
}

// uplink hands a device message to its business server; the device's ACK waits for the answer.
func (s *Server) uplink(cs *connState, seq uint64, payload []byte, sp *sigSpan) {
	cs.mu.Lock()
	if !cs.loggedIn {
		// It waited behind its login in the pipeline lane, and the login was refused.
		cs.mu.Unlock()
		s.ackUplink(cs, seq, protocol.CodeNotLoggedIn, "the login was refused", sp)
		return
	}
	if seq <= cs.lastUpSeq {
		s.metrics.duplicates.Add(1)
		sp.end(protocol.CodeDuplicate) // its ACK may wait for earlier uplinks; the answer is decided
		if cs.upInflight > 0 {
			cs.dupAcks = append(cs.dupAcks, seq)
			cs.mu.Unlock()
			return
		}
		cs.mu.Unlock()
		s.ackDuplicate(cs, seq)
		return
	}
	cs.lastUpSeq = seq
	cs.mu.Unlock()
	l, err := s.business.forApp(cs.appID)
	if err != nil || l == nil {
		s.ackUplink(cs, seq, protocol.CodeNoBusiness, "no business server for app "+cs.appID, sp)
		return
	}
	s.metrics.uplinks.Add(1)
	ev := &api.Event{
		Kind: api.EventKind_UPLINK, AppId: cs.appID, Did: cs.did, Uid: cs.uid,
		ConnId: int64(cs.key.id), Seq: int64(seq), Payload: payload, GatewayId: cs.gatewayID(),
	}
	cs.mu.Lock()
	cs.upInflight++
	cs.mu.Unlock()
	it := bizItem{ev: ev, up: cs, seq: seq, sp: sp}
	if err := l.batch.Add(cs.key.id, it); err != nil {
		s.metrics.businessQueueFull.Add(1)
		s.uplinkDone(it, protocol.CodeOverloaded, "business delivery queue full")
	}
}

// uplinkDone answers the uplink it carried to the business server with its outcome, and then the
// duplicates that arrived while it was in flight.
func (s *Server) uplinkDone(it bizItem, code protocol.Code, msg string) {
	cs := it.up
	s.ackUplink(cs, it.seq, code, msg, it.sp)
	cs.mu.Lock()
	cs.upInflight--
	var dups []uint64
	if cs.upInflight == 0 {
		dups, cs.dupAcks = cs.dupAcks, nil
	}
	cs.mu.Unlock()
	for _, d := range dups {
		s.ackDuplicate(cs, d)
	}
}

// ackUplink answers an uplink, and ends its span (sp may be nil): in the reply of the Deliver call
// that carried it, by Push, or kept for a parked connection (replyacks.go).
func (s *Server) ackUplink(cs *connState, seq uint64, code protocol.Code, msg string, sp *sigSpan) {
	s.metrics.uplinkAcks.Add(int(code))
	s.countUplink(cs.appID, code)
	body := okAckBody
	if code != protocol.CodeOK || msg != "" {
		body = (&protocol.Ack{Code: code, Message: msg}).Append(nil)
	}
	s.routeAck(cs, seq, body)
	sp.end(code)
}

// okAckBody is the UplinkAck body of nearly every uplink, shared by all of them: nothing writes
// into a frame's body once it is made, and its capacity is its length, so an append copies.
var okAckBody = func() []byte { b := (&protocol.Ack{Code: protocol.CodeOK}).Append(nil); return b[:len(b):len(b)] }()

// keepAckLocked holds an UplinkAck for a parked connection, to send after its ResumeAck: the
// device learns the real outcome of the uplinks it had in flight. It reports false when the
// connection has a route (it resumed, or was never parked). cs.mu is held.
func (cs *connState) keepAckLocked(seq uint64, body []byte, m *metrics) bool {
	if cs.closed {
		return true // nobody to tell
	}
	if !cs.parked {
		return cs.route.Load() == nil
	}
	if p := cs.park; len(p.acks) < maxKeptAcks {
		p.acks = append(p.acks, keptAck{seq: seq, body: body})
		m.ackPaths[ackKept].Add(1)
	}
	return true
}

// maxKeptAcks bounds the UplinkAcks kept for a parked connection: its uplinks in flight, usually a few.
const maxKeptAcks = 256

type keptAck struct {
	seq  uint64
	body []byte
}

func (s *Server) ackDuplicate(cs *connState, seq uint64) {
	s.ackUplink(cs, seq, protocol.CodeDuplicate, "sequence number not above the last one; not delivered again", nil)
}

// notify tells the app's business server about a connection event, in order with its uplinks.
func (s *Server) notify(cs *connState, kind api.EventKind, reason protocol.Code) {
	s.notifyEvent(cs, &api.Event{
		Kind: kind, AppId: cs.appID, Did: cs.did, Uid: cs.uid, ConnId: int64(cs.key.id),
		Reason: int32(reason), GatewayId: cs.gatewayID(),
	})
}

func (s *Server) notifyEvent(cs *connState, ev *api.Event) {
	l, err := s.business.forApp(cs.appID)
	if err != nil || l == nil {
		return
	}
	// Reserved: a connection's events are a handful over its life, and the business's view of who
	// is online depends on every one of them.
	if err := l.batch.AddReserved(cs.key.id, bizItem{ev: ev}); err != nil {
		s.metrics.businessQueueFull.Add(1)
		s.log.Warn("business event dropped: the server is stopping", "app", cs.appID, "did", cs.did, "kind", ev.Kind.String())
	}
}

// inflightMsg is the msg ID of the downlink with seq, or 0 when it is not in flight.
func (cs *connState) inflightMsg(seq uint64) uint64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.inflight[seq].msgID
}

func (s *Server) downlinkAck(cs *connState, seq uint64) {
	cs.mu.Lock()
	in, ok := cs.inflight[seq]
	if ok {
		in.stopTimer()
		delete(cs.inflight, seq)
	}
	cs.mu.Unlock()
	if !ok {
		return
	}
	s.metrics.downlinkAcks.Add(1)
	s.ackLatency.Record(context.Background(), time.Duration(time.Now().UnixNano()-in.sent).Seconds())
	if in.w != nil {
		in.w.ack(in.idx)
	}
}

// kick closes a connection on the server's initiative: the device gets Close(code). A code the
// device may resume after (a heartbeat timeout) parks the connection; the others end it.
func (s *Server) kick(cs *connState, code protocol.Code, msg string) {
	body := (&protocol.Close{Code: code, Message: msg}).Append(nil)
	s.send(cs, fleet.DownAction_SEND_AND_CLOSE, protocol.SigClose, 0, 0, body)
	s.dropped(cs, code, connKey{})
}

// disconnect ends a connection: it runs the disconnect signal through the pipeline (stages clean
// up there), then forgets the connection. It is safe to call more than once.
func (s *Server) disconnect(cs *connState, reason protocol.Code) {
	first, loggedIn := s.markClosed(cs)
	if !first {
		return
	}
	s.sessions.leaveAll(cs)
	if !loggedIn {
		s.conns.remove(cs)
		return
	}
	sp := s.startSignal(stage.SignalDisconnect, cs.appID)
	s.through(stage.Event{Signal: stage.SignalDisconnect, Conn: cs.stageConn(), Reason: uint16(reason), TraceParent: sp.traceParent()}, reserved, func(pipeline.Outcome) {
		s.forget(cs, reason)
		sp.end(protocol.CodeOK)
	})
}

// markClosed marks cs closed and stops its timers. first reports that this call did it (a
// connection is closed once); loggedIn, that its login had been accepted.
func (s *Server) markClosed(cs *connState) (first, loggedIn bool) {
	cs.mu.Lock()
	if cs.closed {
		cs.mu.Unlock()
		return false, false
	}
	cs.closed = true
	loggedIn = cs.loggedIn
	hb, wasParked := cs.hbTimer, cs.parked
	var pt *timewheel.Timer
	if cs.park != nil {
		// The rest of the park (its queued pushes) is forget's to report.
		pt, cs.park.timer = cs.park.timer, nil
	}
	cs.hbTimer, cs.parked = nil, false
	cs.mu.Unlock()
	if hb != nil {
		hb.Stop()
	}
	if pt != nil {
		pt.Stop()
	}
	if wasParked {
		s.metrics.parkedNow.Add(-1)
	}
	return true, loggedIn
}

// forget drops the connection. The downlinks still in flight that a stage tracked (or gave up on
// while the connection was parked, or that were pushed while it was parked) are reported
// undelivered here, from the state server's own table, with the attempts made.
func (s *Server) forget(cs *connState, reason protocol.Code) {
	cs.mu.Lock()
	var lost []undelivered
	for seq, in := range cs.inflight {
		in.stopTimer()
		if in.reportable() {
			lost = append(lost, undelivered{seq: seq, msgID: in.msgID, attempts: in.attempts})
		}
	}
	slices.SortFunc(lost, func(a, b undelivered) int { return cmp.Compare(a.seq, b.seq) })
	var queued []parkedPush
	if cs.park != nil {
		queued = cs.park.queued
	}
	for _, q := range queued {
		if q.qos != stage.AtMostOnce {
			lost = append(lost, undelivered{msgID: q.msgID})
		}
		if q.w != nil {
			q.w.ack(q.idx)
		}
	}
	cs.inflight, cs.order, cs.park = nil, nil, nil
	cs.mu.Unlock()
	if s.conns.remove(cs) {
		s.metrics.closed.Add(int(reason))
		for _, u := range lost {
			s.reportUndelivered(cs.stageConn(), u.seq, u.msgID, u.attempts)
		}
		s.notify(cs, api.EventKind_DISCONNECTED, reason)
	}
}

type undelivered struct {
	seq, msgID uint64
	attempts   int
}

// armHeartbeat closes the connection when nothing was heard for HeartbeatTimeout. The timer checks
// lastSeen and re-arms for the rest, so frames never touch the wheel.
func (s *Server) armHeartbeat(cs *connState) {
	timeout := s.cfg.HeartbeatTimeout
	check := func() {
		idle := time.Duration(time.Now().UnixNano() - cs.lastSeen.Load())
		if idle >= timeout {
			s.metrics.heartbeatTimeouts.Add(1)
			s.kick(cs, protocol.CodeHeartbeatTimeout, "no frame for "+timeout.String())
			return
		}
		cs.mu.Lock()
		t := cs.hbTimer
		cs.mu.Unlock()
		if t != nil { // nil: parked meanwhile
			t.Reset(timeout - idle)
		}
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed || cs.parked {
		// It closed (or dropped) between its login's acceptance and now: disconnect found no timer
		// to stop.
		return
	}
	cs.hbTimer = s.wheel.AfterFunc(timeout, check)
}
