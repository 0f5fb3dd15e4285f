package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// Host returns what pipeline stages may ask of the state server. The pipeline wraps it and
// provides timers and per-stage state itself.
func (s *Server) Host() stage.Host { return stageHost{s} }

type stageHost struct{ s *Server }

var _ stage.Host = stageHost{}

var errPipelineOwned = errors.New("timers and stage state are provided by the pipeline host")

func (h stageHost) Push(ctx context.Context, appID string, dids []string, payload []byte) (stage.PushResult, error) {
	s := h.s
	if appID == "" || len(dids) == 0 || len(dids) > MaxNamedTargets {
		return stage.PushResult{}, fmt.Errorf("push: need an app ID and 1 to %d dids", MaxNamedTargets)
	}
	if len(payload)+8 > s.cfg.MaxBody {
		return stage.PushResult{}, fmt.Errorf("push: payload of %d bytes exceeds the device maximum of %d", len(payload), s.cfg.MaxBody-8)
	}
	msgID := s.nextMsgID()
	targets := s.push(ctx, appID, s.targetsOf(appID, dids), msgID, payload, stage.AtLeastOnce, false, s.cfg.PushTimeout)
	out := stage.PushResult{MsgID: msgID, Targets: make([]stage.PushTarget, len(targets))}
	for i, t := range targets {
		out.Targets[i] = stage.PushTarget{DID: t.Did, ConnID: uint64(t.ConnId), Status: uint8(t.Status), Seq: uint64(t.Seq)}
	}
	return out, nil
}

// Resend writes a downlink again with the retransmit flag, bypassing the pipeline. A parked
// connection keeps its downlinks for its Resume instead. A downlink still in the pipeline (its
// first copy not yet written: the stage's timer ran out while later stages or its own batch were
// still at work) is not resent: its first copy goes out when the pipeline lets it through, and a
// retransmit sent before it would reach the device as a second delivery (see sendFirst).
func (h stageHost) Resend(_ context.Context, conn stage.Conn, seq, msgID uint64, payload []byte) error {
	s := h.s
	cs := s.conns.byIdentity(connKey{gw: conn.GatewayID, id: conn.ConnID})
	if cs == nil {
		return fmt.Errorf("resend: connection %s/%d is gone", conn.GatewayID, conn.ConnID)
	}
	// Under cs.mu, like sendFirst: a resend queues behind the first copy, or not at all.
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.parked {
		return nil
	}
	if in, ok := cs.inflight[seq]; ok && !in.written {
		s.metrics.resendsEarly.Add(1)
		return nil
	}
	if !s.sendDownlink(cs, seq, protocol.FlagRetransmit, msgID, payload, stage.AtLeastOnce, nil, 0) {
		if cs.parked {
			return nil
		}
		return fmt.Errorf("resend: gateway %s queue full", cs.gatewayID())
	}
	s.metrics.retransmits.Add(1)
	return nil
}

// Undelivered tells the app's business server a downlink was given up on. While the connection is
// parked the report waits: the device may still get the downlink when it resumes.
func (h stageHost) Undelivered(_ context.Context, conn stage.Conn, seq, msgID uint64, attempts int) error {
	if cs := h.s.conns.byIdentity(connKey{gw: conn.GatewayID, id: conn.ConnID}); cs != nil && cs.deferUndelivered(seq) {
		return nil
	}
	return h.s.reportUndelivered(conn, seq, msgID, attempts)
}

// deferUndelivered marks a parked connection's downlink to be reported only if the connection ends
// without the device ACKing it; false when the connection is not parked or does not hold it.
func (cs *connState) deferUndelivered(seq uint64) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	in, ok := cs.inflight[seq]
	if !cs.parked || !ok {
		return false
	}
	in.deferred = true
	cs.inflight[seq] = in
	return true
}

// reportUndelivered queues an UNDELIVERED event for the app's business server.
func (s *Server) reportUndelivered(conn stage.Conn, seq, msgID uint64, attempts int) error {
	l, err := s.business.forApp(conn.AppID)
	if err != nil {
		return fmt.Errorf("undelivered: %w", err)
	}
	if l == nil {
		return nil
	}
	ev := &api.Event{
		Kind: api.EventKind_UNDELIVERED, AppId: conn.AppID, Did: conn.DID, Uid: conn.UID,
		ConnId: int64(conn.ConnID), Seq: int64(seq), MsgId: int64(msgID), Attempts: int32(attempts), GatewayId: conn.GatewayID,
	}
	// Reserved: one per push given up on, and the business must hear of each.
	if err := l.batch.AddReserved(conn.ConnID, bizItem{ev: ev}); err != nil {
		s.metrics.businessQueueFull.Add(1)
		return fmt.Errorf("undelivered: business queue: %w", err)
	}
	s.metrics.undelivered.Add(1)
	return nil
}

// Bind makes the logged-in connections of dids held by this state server join a session;
// offline dids are skipped.
func (h stageHost) Bind(ctx context.Context, appID, session string, dids []string) error {
	if appID == "" || session == "" || strings.IndexByte(session, 0) >= 0 {
		return errors.New("bind: an app ID and a session name without NUL bytes are required")
	}
	h.s.localSession(ctx, &fleet.LocalSessionRequest{AppId: appID, Op: fleet.SessionOp_BIND, Session: session, Dids: dids})
	return nil
}

// Unbind makes the connections of dids held by this state server leave a session.
func (h stageHost) Unbind(ctx context.Context, appID, session string, dids []string) error {
	h.s.localSession(ctx, &fleet.LocalSessionRequest{AppId: appID, Op: fleet.SessionOp_UNBIND, Session: session, Dids: dids})
	return nil
}

// Sessions asks the app's business server which sessions a connection joins.
func (h stageHost) Sessions(ctx context.Context, conn stage.Conn) ([]string, error) {
	l, err := h.s.business.forApp(conn.AppID)
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	if l == nil {
		return nil, fmt.Errorf("sessions: no business server is configured for app %q", conn.AppID)
	}
	resp, err := l.cli.Sessions(ctx, &api.SessionsRequest{
		AppId: conn.AppID, Did: conn.DID, Uid: conn.UID, ConnId: int64(conn.ConnID), GatewayId: conn.GatewayID,
	})
	if err != nil {
		h.s.metrics.rpcError(peerBusiness, err)
		return nil, fmt.Errorf("sessions: asking the business server at %s: %w", l.addr, err)
	}
	return resp.Sessions, nil
}

// Join binds one connection, logged in or still logging in, to sessions.
func (h stageHost) Join(ctx context.Context, conn stage.Conn, sessions []string) error {
	for _, name := range sessions {
		if name == "" || len(name) > maxNameLen || strings.IndexByte(name, 0) >= 0 {
			return fmt.Errorf("join: session name %q is empty, longer than %d bytes or holds a NUL byte", name, maxNameLen)
		}
	}
	s := h.s
	cs := s.conns.byIdentity(connKey{gw: conn.GatewayID, id: conn.ConnID})
	if cs == nil {
		return fmt.Errorf("join: connection %s/%d is gone", conn.GatewayID, conn.ConnID)
	}
	var changes []sessionChange
	for _, name := range s.sessions.join(cs, sessions) {
		changes = append(changes, sessionChange{cs: cs, name: name, join: true})
	}
	s.syncGateways(ctx, changes)
	return nil
}

func (stageHost) SetTimer(context.Context, string, string, time.Duration, []byte) error {
	return errPipelineOwned
}
func (stageHost) CancelTimer(context.Context, string, string) error { return errPipelineOwned }
func (stageHost) Get(context.Context, string, string) ([]byte, bool, error) {
	return nil, false, errPipelineOwned
}
func (stageHost) Put(context.Context, string, string, []byte, time.Duration) error {
	return errPipelineOwned
}
func (stageHost) Delete(context.Context, string, string) error { return errPipelineOwned }
