package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// A state server that dies takes its memory with it, but not the connections: the gateways hold
// the sockets and know each one's app, did, uid and sessions, the last downlink seq written and the
// at-least-once downlinks not ACKed yet. A gateway that finds a state server lost (Ping) moves each
// of its connections to the state server the did hashes to now, with an ADOPTED event; a restarted
// state server is refilled the same way. Devices notice nothing but the uplinks that were inside
// the lost server, answered 1210 by their gateway (docs/protocol.md §11.3).

// newBoot names this process for Ping: a restarted state server answers with another boot.
func newBoot() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Ping answers a gateway's liveness check.
func (h *handler) Ping(_ context.Context, req *fleet.PingRequest) (*fleet.PingResponse, error) {
	if h.s.gwAuth != nil {
		if err := h.s.gwAuth.Verify(req.GatewayId, req.Proof); err != nil {
			return nil, fmt.Errorf("ping from %q refused: %w", req.GatewayId, err)
		}
	}
	return &fleet.PingResponse{Boot: h.s.boot}, nil
}

// adopt takes over a logged-in connection its gateway moves here. It is the same connection to
// the device and to the business server (no event); stages see it from its next signal on.
func (s *Server) adopt(l *gatewayLink, key connKey, ev *fleet.UpEvent) {
	if cs := s.conns.get(key); cs != nil {
		if s.conns.byRoute(key) == cs {
			return // moved here twice (a lost server that came back and was lost again)
		}
		s.disconnect(cs, protocol.CodeReplaced)
	}
	cs := newConnState(key, ev.AppId, ev.Did, ev.Uid, ev.RemoteAddr, l)
	cs.loggedIn = true
	cs.lastUpSeq = uint64(ev.Seq)
	cs.nextDownSeq = uint64(ev.DownSeq)
	var resend []inflight
	var seqs []uint64
	for _, f := range ev.Unacked {
		var d protocol.Downlink
		if f == nil || d.Decode(f.Body) != nil || f.Seq <= 0 {
			continue
		}
		seq := uint64(f.Seq)
		if cs.inflight == nil {
			cs.inflight = make(map[uint64]inflight, len(ev.Unacked))
		}
		// deferred: the server that tracked it was lost, so the end of the connection reports it
		// undelivered unless the device ACKs it first, whatever the stage answers (consult below).
		in := inflight{msgID: d.MsgID, payload: d.Payload, qos: stage.AtLeastOnce, sent: time.Now().UnixNano(), written: true, deferred: true}
		cs.inflight[seq] = in
		cs.order = append(cs.order, seq)
		cs.nextDownSeq = max(cs.nextDownSeq, seq)
		resend, seqs = append(resend, in), append(seqs, seq)
	}
	if !s.conns.addPending(cs) {
		return
	}
	if replaced := s.conns.activate(cs); replaced != nil && replaced != cs {
		s.kick(replaced, protocol.CodeReplaced, "the same did is connected on another connection")
	}
	// The gateway holds these already: only this server's index needs them.
	s.sessions.join(cs, ev.Sessions)
	s.armHeartbeat(cs)
	for i, in := range resend {
		s.sendDownlink(cs, seqs[i], protocol.FlagRetransmit, in.msgID, in.payload, in.qos, nil, 0)
	}
	// The lost server's resend timers died with it: the stage is asked again about each downlink,
	// written twice now as far as anyone knows (its first copy and this replay).
	for _, seq := range seqs {
		s.consult(cs, seq, 2)
	}
	s.metrics.adopted.Add(1)
	s.metrics.replayed.Add(int64(len(resend)))
	s.log.Debug("adopted", "app", cs.appID, "did", cs.did, "gateway", key.gw, "conn", key.id, "sessions", len(ev.Sessions), "unacked", len(resend))
}

// closedElsewhere tells the business about a connection that ended while the state server holding
// it was lost: its gateway sends the CLOSED event, with the connection's identity, here instead.
func (s *Server) closedElsewhere(key connKey, ev *fleet.UpEvent) {
	l, err := s.business.forApp(ev.AppId)
	if err != nil || l == nil {
		return
	}
	s.metrics.closed.Add(int(ev.Reason))
	e := &api.Event{Kind: api.EventKind_DISCONNECTED, AppId: ev.AppId, Did: ev.Did, Uid: ev.Uid, ConnId: int64(key.id), Reason: ev.Reason, GatewayId: key.gw}
	if err := l.batch.AddReserved(key.id, bizItem{ev: e}); err != nil {
		s.metrics.businessQueueFull.Add(1)
	}
}
