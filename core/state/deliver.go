package state

import (
	"context"
	"time"

	"github.com/platoim/plato/idl/kitex_gen/plato/business"
	"github.com/platoim/plato/idl/kitex_gen/plato/common"
	"github.com/platoim/plato/idl/kitex_gen/plato/state"
	"github.com/platoim/plato/sdk/protocol"
)

// Deliver takes a gateway's batch of device events. It never blocks on I/O: answers and business
// deliveries are queued on their own batchers, so the gateway's lane moves on at once.
func (h *handler) Deliver(_ context.Context, req *state.DeliverRequest) (*state.DeliverResponse, error) {
	s := h.s
	l := s.gateways.get(req.GatewayId)
	if l == nil {
		// A gateway can deliver before its registry entry reached us; look it up directly.
		l = s.gateways.lookup(req.GatewayId)
	}
	if l == nil {
		s.log.Warn("events from an unregistered gateway dropped", "gateway", req.GatewayId, "events", len(req.Events))
		return &state.DeliverResponse{}, nil
	}
	now := time.Now().UnixNano()
	for _, ev := range req.Events {
		key := connKey{gw: req.GatewayId, id: uint64(ev.ConnId)}
		if ev.Kind == common.UpKind_CLOSED {
			if cs := s.conns.get(key); cs != nil {
				s.closeConn(cs, protocol.Code(ev.Reason))
			}
			continue
		}
		sig := protocol.Signal(ev.Signal)
		if sig == protocol.SigLogin {
			s.login(l, key, ev)
			continue
		}
		cs := s.conns.get(key)
		if cs == nil {
			// The gateway thinks this connection is logged in but we do not know it (we restarted,
			// or it was closed meanwhile): have the device start over.
			body := (&protocol.Close{Code: protocol.CodeStateLost, Message: "connection unknown to the state server; log in again"}).Append(nil)
			s.sendTo(l, key.id, common.DownAction_SEND_AND_CLOSE, protocol.SigClose, 0, body)
			continue
		}
		cs.lastSeen.Store(now)
		s.metrics.framesIn.Add(1)
		switch sig {
		case protocol.SigHeartbeat:
			s.send(cs, common.DownAction_SEND, protocol.SigHeartbeatAck, 0, uint64(ev.Seq), nil)
		case protocol.SigUplink:
			s.uplink(cs, uint64(ev.Seq), ev.Body)
		case protocol.SigDownlinkAck:
			s.downlinkAck(cs, uint64(ev.Seq))
		}
	}
	return &state.DeliverResponse{}, nil
}

func (s *Server) login(l *gatewayLink, key connKey, ev *common.UpEvent) {
	var m protocol.Login
	_ = m.Decode(ev.Body) // the gateway decoded it already; this is for the fields it does not forward
	if old := s.conns.get(key); old != nil {
		body := (&protocol.LoginAck{Code: protocol.CodeAlreadyLogged, Message: "already logged in"}).Append(nil)
		s.sendTo(l, key.id, common.DownAction_SEND, protocol.SigLoginAck, uint64(ev.Seq), body)
		return
	}
	cs := &connState{key: key, appID: ev.AppId, did: ev.Did, uid: ev.Uid, remote: ev.RemoteAddr, gw: l}
	cs.lastSeen.Store(time.Now().UnixNano())
	s.armHeartbeat(cs)
	if replaced := s.conns.add(cs); replaced != nil {
		// One did is one device: its newest connection wins.
		s.kick(replaced, protocol.CodeReplaced, "the same did logged in on another connection")
	}
	s.metrics.logins.Add(1)
	s.notify(cs, business.EventKind_CONNECTED, 0)
	ack := (&protocol.LoginAck{
		Code: protocol.CodeOK, ConnID: key.id, HeartbeatMs: uint32(s.cfg.HeartbeatInterval / time.Millisecond),
	}).Append(nil)
	s.send(cs, common.DownAction_LOGIN_OK, protocol.SigLoginAck, 0, uint64(ev.Seq), ack)
	s.log.Debug("login", "app", cs.appID, "did", cs.did, "uid", cs.uid, "gateway", key.gw, "conn", key.id, "platform", m.Platform)
}

// uplink hands a device message to its business server; the device's ACK waits for the answer.
func (s *Server) uplink(cs *connState, seq uint64, payload []byte) {
	cs.mu.Lock()
	if seq <= cs.lastUpSeq {
		s.metrics.duplicates.Add(1)
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
		s.ackUplink(cs, seq, protocol.CodeNoBusiness, "no business server for app "+cs.appID)
		return
	}
	s.metrics.uplinks.Add(1)
	ev := &business.Event{
		Kind: business.EventKind_UPLINK, AppId: cs.appID, Did: cs.did, Uid: cs.uid,
		ConnId: int64(cs.key.id), Seq: int64(seq), Payload: payload, GatewayId: cs.key.gw,
	}
	cs.mu.Lock()
	cs.upInflight++
	cs.mu.Unlock()
	done := func(code protocol.Code, msg string) {
		s.ackUplink(cs, seq, code, msg)
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
	if err := l.batch.Add(cs.key.id, bizItem{ev: ev, done: done}); err != nil {
		s.metrics.businessErrors.Add(1)
		done(protocol.CodeOverloaded, "business delivery queue full")
	}
}

func (s *Server) ackUplink(cs *connState, seq uint64, code protocol.Code, msg string) {
	body := (&protocol.Ack{Code: code, Message: msg}).Append(nil)
	s.send(cs, common.DownAction_SEND, protocol.SigUplinkAck, 0, seq, body)
}

func (s *Server) ackDuplicate(cs *connState, seq uint64) {
	s.ackUplink(cs, seq, protocol.CodeDuplicate, "sequence number not above the last one; not delivered again")
}

// notify tells the app's business server about a connection event, in order with its uplinks.
func (s *Server) notify(cs *connState, kind business.EventKind, reason protocol.Code) {
	l, err := s.business.forApp(cs.appID)
	if err != nil || l == nil {
		return
	}
	ev := &business.Event{
		Kind: kind, AppId: cs.appID, Did: cs.did, Uid: cs.uid, ConnId: int64(cs.key.id),
		Reason: int32(reason), GatewayId: cs.key.gw,
	}
	if err := l.batch.Add(cs.key.id, bizItem{ev: ev}); err != nil {
		s.log.Warn("business event dropped: queue full", "app", cs.appID, "did", cs.did, "kind", kind.String())
	}
}

func (s *Server) downlinkAck(cs *connState, seq uint64) {
	cs.mu.Lock()
	in, ok := cs.inflight[seq]
	if ok {
		delete(cs.inflight, seq)
	}
	cs.mu.Unlock()
	if !ok {
		return
	}
	s.metrics.downlinkAcks.Add(1)
	if in.w != nil {
		in.w.ack(in.idx)
	}
}

// kick closes a connection on the server's initiative: the device gets Close(code).
func (s *Server) kick(cs *connState, code protocol.Code, msg string) {
	body := (&protocol.Close{Code: code, Message: msg}).Append(nil)
	s.send(cs, common.DownAction_SEND_AND_CLOSE, protocol.SigClose, 0, 0, body)
	s.closeConn(cs, code)
}

// closeConn forgets a connection once, stops its timer, and tells the business server.
func (s *Server) closeConn(cs *connState, reason protocol.Code) {
	cs.mu.Lock()
	if cs.closed {
		cs.mu.Unlock()
		return
	}
	cs.closed = true
	cs.inflight, cs.order = nil, nil
	cs.mu.Unlock()
	if cs.hbTimer != nil {
		cs.hbTimer.Stop()
	}
	if s.conns.remove(cs) {
		s.metrics.closed.Add(1)
		s.notify(cs, business.EventKind_DISCONNECTED, reason)
	}
}

// armHeartbeat closes the connection when nothing was heard for HeartbeatTimeout. The timer checks
// lastSeen and re-arms for the rest, so frames never touch the wheel.
func (s *Server) armHeartbeat(cs *connState) {
	timeout := s.cfg.HeartbeatTimeout
	var check func()
	check = func() {
		idle := time.Duration(time.Now().UnixNano() - cs.lastSeen.Load())
		if idle >= timeout {
			s.metrics.heartbeatTimeouts.Add(1)
			s.kick(cs, protocol.CodeHeartbeatTimeout, "no frame for "+timeout.String())
			return
		}
		cs.hbTimer.Reset(timeout - idle)
	}
	cs.hbTimer = s.wheel.AfterFunc(timeout, check)
}
