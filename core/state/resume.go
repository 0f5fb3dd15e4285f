package state

import (
	"context"
	"runtime/debug"
	"slices"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// A connection whose socket dropped without the device meaning it is parked rather than ended:
// its identity, uid, sessions, sequence numbers and unACKed downlinks stay, pushes for it queue,
// and a Resume on any gateway within state.reconnect_window picks it up (docs/protocol.md §11.1).
// Stages see nothing of a park: no disconnect signal runs unless the window passes.

// resumable reports whether a connection that ended with code may be resumed: the drops the device
// did not ask for. A deliberate Close, a kick, a replacement or a protocol violation ends it.
func resumable(code protocol.Code) bool {
	switch code {
	case protocol.CodeHeartbeatTimeout, protocol.CodeShuttingDown, protocol.CodeSlowConsumer,
		protocol.CodeMigrated, protocol.CodeStateLost, protocol.CodeConnectionLost,
		protocol.CodeOverloaded, protocol.CodeInternal:
		return true
	}
	return false
}

// closed acts on a gateway's report that one of its sockets closed with reason.
func (s *Server) closed(key connKey, reason protocol.Code) {
	cs := s.conns.get(key)
	if cs == nil {
		return
	}
	if rk, ok := cs.routeKey(); ok && rk == key {
		s.dropped(cs, reason, key)
		return
	}
	// Parked already (the gateway said Gone first, or the heartbeat timed out): a reason that ends
	// the connection for good still does.
	cs.mu.Lock()
	mine := cs.parked && !cs.resuming && cs.park.lastRoute == key
	cs.mu.Unlock()
	if mine && !resumable(reason) {
		s.disconnect(cs, reason)
	}
}

// dropped parks the connection when its device may resume it, and ends it otherwise. from is the
// route the drop was reported for: when the connection has left it meanwhile (its device resumed
// elsewhere between the report and now, as a redirected device does within milliseconds of its
// old gateway's close event), the report is about a socket it no longer uses and nothing is done.
// The zero key drops it whatever its route.
func (s *Server) dropped(cs *connState, reason protocol.Code, from connKey) {
	if !resumable(reason) || s.cfg.ReconnectWindow <= 0 {
		if from == (connKey{}) || cs.onRoute(from) {
			s.disconnect(cs, reason)
		}
		return
	}
	if !s.park(cs, reason, from) {
		s.disconnect(cs, reason)
	}
}

// onRoute reports whether the connection's socket is k now.
func (cs *connState) onRoute(k connKey) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	r := cs.route.Load()
	return r != nil && r.key == k
}

// park keeps a logged-in connection for the reconnect window. It reports false when there is
// nothing to keep (the login had not been accepted) or it is gone; true when parked, now or before,
// or when it is no longer on the route from (not zero): it moved on, and there is nothing to park.
func (s *Server) park(cs *connState, reason protocol.Code, from connKey) bool {
	cs.mu.Lock()
	if cs.closed || !cs.loggedIn {
		cs.mu.Unlock()
		return false
	}
	if cs.parked {
		cs.mu.Unlock()
		return true
	}
	// Checked under cs.mu, where finishResume moves the route: a caller's earlier look at the
	// route may be stale, and parking the connection the device just resumed would leave it
	// parked while its device, connected, waits for pushes that queue for a Resume never coming.
	if cur := cs.route.Load(); from != (connKey{}) && (cur == nil || cur.key != from) {
		cs.mu.Unlock()
		return true
	}
	r := cs.route.Swap(nil)
	cs.parked, cs.parkReason = true, reason
	cs.park = &parkState{lastRoute: r.key, timer: s.wheel.AfterFunc(s.cfg.ReconnectWindow, func() { s.expire(cs) })}
	hb := cs.hbTimer
	cs.hbTimer = nil
	cs.mu.Unlock()
	if hb != nil {
		hb.Stop()
	}
	s.conns.reroute(cs, r.key, cs.key)
	s.metrics.parks.Add(1)
	s.metrics.parkedNow.Add(1)
	s.log.Debug("parked", "app", cs.appID, "did", cs.did, "conn", cs.key.id, "reason", reason)
	return true
}

// expire ends a connection no Resume came for.
func (s *Server) expire(cs *connState) {
	cs.mu.Lock()
	due := cs.parked && !cs.resuming && !cs.closed
	reason := cs.parkReason
	cs.mu.Unlock()
	if !due {
		return
	}
	s.metrics.parkExpired.Add(1)
	s.disconnect(cs, reason)
}

const nothingKept = "nothing is kept under that connection for this device: log in"

// resume answers a Resume the gateway checked the token of: ev.Did and ev.Uid are the token's.
// It never blocks on I/O except for a connection in sessions, whose new gateway must know them
// before the ResumeAck (so no broadcast is missed after it); that is done off the Deliver call.
func (s *Server) resume(l *gatewayLink, key connKey, ev *fleet.UpEvent) {
	var m protocol.Resume
	seq := uint64(ev.Seq)
	refuse := func(msg string) {
		s.metrics.resumes.Add(int(protocol.CodeResumeRejected))
		body := (&protocol.ResumeAck{Code: protocol.CodeResumeRejected, Message: msg}).Append(nil)
		s.sendTo(l, key.id, fleet.DownAction_RESUME_REFUSED, protocol.SigResumeAck, seq, body)
	}
	if err := m.Decode(ev.Body); err != nil {
		refuse("the Resume did not decode: " + err.Error())
		return
	}
	if s.conns.get(key) != nil {
		refuse("the connection is already known; log in")
		return
	}
	cs := s.conns.byDID(ev.AppId, ev.Did)
	if cs == nil {
		refuse("nothing is kept for this device (the window passed, or its state server changed): log in")
		return
	}
	cs.mu.Lock()
	if cs.closed || cs.resuming || cs.uid != ev.Uid || !cs.loggedIn {
		cs.mu.Unlock()
		refuse(nothingKept)
		return
	}
	if !cs.parked {
		// The device is back before its old socket was seen to drop (a network switch leaves it
		// half open): the Resume proves it moved, so the old socket is closed and the connection
		// taken over.
		cur := cs.route.Load()
		cs.mu.Unlock()
		if cur == nil || cur.key.id != m.PrevConnID {
			refuse(nothingKept)
			return
		}
		body := (&protocol.Close{Code: protocol.CodeMigrated, Message: "resumed on another connection"}).Append(nil)
		s.sendRoute(cur, cs.did, fleet.DownAction_SEND_AND_CLOSE, protocol.SigClose, 0, 0, body)
		if !s.park(cs, protocol.CodeConnectionLost, cur.key) {
			refuse("the connection ended meanwhile: log in")
			return
		}
		cs.mu.Lock()
	}
	if !cs.parked || cs.closed || cs.park.lastRoute.id != m.PrevConnID {
		cs.mu.Unlock()
		refuse(nothingKept)
		return
	}
	cs.resuming = true
	var changes []*fleet.SessionChange
	for _, name := range cs.sessions {
		changes = append(changes, &fleet.SessionChange{ConnId: int64(key.id), Session: name, Join: true})
	}
	cs.mu.Unlock()
	r := &route{key: key, gw: l, remote: ev.RemoteAddr}
	if len(changes) == 0 {
		s.finishResume(cs, r, seq, m.LastDownlink)
		return
	}
	go func() {
		// Off the Deliver call, a panic would take the process down: a device's Resume reaches here.
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("panic answering a Resume", "did", cs.did, "panic", r, "stack", string(debug.Stack()))
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RPCTimeout)
		defer cancel()
		if err := s.syncLink(ctx, l, changes); err != nil {
			// Direct pushes still reach it; the gateway's broadcasts will not until it rejoins.
			s.log.Warn("resumed connection's sessions not synced to its new gateway", "did", cs.did, "gateway", l.id, "err", err)
		}
		s.finishResume(cs, r, seq, m.LastDownlink)
	}()
}

// finishResume routes the connection to its new socket and answers ResumeAck 0, then sends what
// the device missed: the UplinkAcks decided while it was away, the unACKed downlinks above
// lastDown (with the retransmit flag), then the pushes that waited, through the pipeline.
func (s *Server) finishResume(cs *connState, r *route, seq, lastDown uint64) {
	cs.mu.Lock()
	cs.resuming = false
	if cs.closed || !cs.parked {
		cs.mu.Unlock()
		s.metrics.resumes.Add(int(protocol.CodeResumeRejected))
		body := (&protocol.ResumeAck{Code: protocol.CodeResumeRejected, Message: "the connection ended meanwhile: log in"}).Append(nil)
		s.sendRoute(r, cs.did, fleet.DownAction_RESUME_REFUSED, protocol.SigResumeAck, 0, seq, body)
		return
	}
	cs.parked = false
	park := cs.park
	cs.park = nil
	pt := park.timer
	// Filed under the new route before anything is sent on it, so the device's first frames find it.
	s.conns.reroute(cs, connKey{}, r.key)
	cs.route.Store(r)
	cs.lastSeen.Store(time.Now().UnixNano())
	var acked []uint64
	var replay []uint64
	for q, in := range cs.inflight {
		switch {
		case q <= lastDown:
			acked = append(acked, q)
		case in.written:
			replay = append(replay, q)
		}
		// Not written yet: it is still in the pipeline, whose outcome sends it on the new route.
	}
	slices.Sort(replay)
	ackedIn := make([]inflight, len(acked))
	for i, q := range acked {
		in := cs.inflight[q]
		in.stopTimer()
		ackedIn[i] = in
		delete(cs.inflight, q)
	}
	// The ResumeAck and the replays are queued under cs.mu: a push that follows takes its seq after
	// them and reaches the gateway after them.
	ack := (&protocol.ResumeAck{Code: protocol.CodeOK, ConnID: r.key.id, HeartbeatMs: uint32(s.cfg.HeartbeatInterval / time.Millisecond)}).Append(nil)
	s.sendRoute(r, cs.did, fleet.DownAction_LOGIN_OK, protocol.SigResumeAck, 0, seq, ack)
	for _, a := range park.acks {
		s.sendAckRoute(cs, r, a.seq, a.body)
	}
	for _, q := range replay {
		in := cs.inflight[q]
		s.sendDownlinkRoute(r, q, protocol.FlagRetransmit, in.msgID, in.payload, in.qos, nil, 0)
	}
	queued := park.queued
	seqs := make([]uint64, len(queued))
	// Counted in the lane as they get their seqs, so a push that follows and no stage listens to
	// does not skip the lane ahead of them (downlinkdirect.go).
	counted := make([]bool, len(queued))
	for i, p := range queued {
		seqs[i] = cs.trackLocked(s.cfg.MaxInflight, inflight{msgID: p.msgID, payload: p.payload, qos: p.qos, w: p.w, idx: p.idx, sent: p.sent}, &s.metrics)
		counted[i] = cs.enterLaneLocked()
	}
	evicted := cs.takeEvicted()
	cs.mu.Unlock()
	s.reportEvicted(cs, evicted)
	if pt != nil {
		pt.Stop()
	}
	s.metrics.parkedNow.Add(-1)
	s.metrics.resumes.Add(int(protocol.CodeOK))
	s.metrics.replayed.Add(int64(len(replay)))
	// The device acknowledged these by resuming past them: stages that listen hear it as their ACKs.
	ackListened := !s.skips(cs.appID, stage.SignalDownlinkAck)
	for i, q := range acked {
		if ackListened {
			s.through(stage.Event{Signal: stage.SignalDownlinkAck, Conn: cs.stageConn(), Seq: q, MsgID: ackedIn[i].msgID}, reserved, func(pipeline.Outcome) {})
		}
		s.metrics.downlinkAcks.Add(1)
		if w := ackedIn[i].w; w != nil {
			w.ack(ackedIn[i].idx)
		}
	}
	for i, p := range queued {
		q, p := seqs[i], p
		s.through(stage.Event{Signal: stage.SignalDownlink, Conn: cs.stageConn(), Seq: q, MsgID: p.msgID, Payload: p.payload, QoS: p.qos}, reserved, func(o pipeline.Outcome) {
			s.downlinkOutcome(cs, q, p.msgID, p.payload, p.qos, o, p.w, nil, p.idx)
			if counted[i] {
				cs.leftLane()
			}
		})
	}
	s.armHeartbeat(cs)
	s.notify(cs, api.EventKind_RESUMED, 0)
	s.log.Debug("resumed", "app", cs.appID, "did", cs.did, "conn", cs.key.id, "gateway", r.key.gw, "route", r.key.id,
		"replayed", len(replay), "queued", len(queued))
}
