package state

import (
	"context"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// The State service's side of business calls in a fleet: a peer coordinating a business call asks
// this state server to act on the connections it holds.

// They are reachable by business servers too, so the caller's app key is checked here again:
// no app can act on another's devices through them either.
func (h *handler) LocalPush(ctx context.Context, req *fleet.LocalPushRequest) (*fleet.LocalPushResponse, error) {
	if _, err := h.s.authorize(&api.Caller{AppId: req.AppId, Key: req.Key}); err != nil {
		return nil, err
	}
	return h.s.localPush(ctx, req), nil
}

func (h *handler) LocalSession(ctx context.Context, req *fleet.LocalSessionRequest) (*fleet.LocalSessionResponse, error) {
	if _, err := h.s.authorize(&api.Caller{AppId: req.AppId, Key: req.Key}); err != nil {
		return nil, err
	}
	return h.s.localSession(ctx, req), nil
}

// localPush pushes to the connections this server holds among the request's targets; dids and uids
// it does not hold are left out, for the coordinator to report.
func (s *Server) localPush(ctx context.Context, req *fleet.LocalPushRequest) *fleet.LocalPushResponse {
	return s.localPushStart(req)(ctx)
}

// localPushStart starts localPush and returns the wait for its answer (see pushStart).
func (s *Server) localPushStart(req *fleet.LocalPushRequest) func(ctx context.Context) *fleet.LocalPushResponse {
	l := &localPushing{}
	s.localPushInto(l, req)
	return l.answer
}

// localPushInto is localPushStart with the push's state in l, zero and not copied after: a batch
// keeps its pushes' in one allocation (localPushBatch); l.answer waits.
func (s *Server) localPushInto(l *localPushing, req *fleet.LocalPushRequest) {
	app := req.AppId
	// l holds what a push to one did (each push of a typical PushBatch) needs; seen, which tells
	// a connection named twice, is made only when the push names more than one.
	l.s = s
	l.targets, l.origins = l.oneTarget[:0], l.oneOrigin[:0]
	var seen map[*connState]fleet.TargetOrigin
	if len(req.Dids)+len(req.Uids) > 1 || req.Session != "" {
		seen = map[*connState]fleet.TargetOrigin{}
	}
	add := func(t target, o fleet.TargetOrigin) {
		if seen != nil {
			if first, ok := seen[t.cs]; ok {
				if o == fleet.TargetOrigin_UID && first == fleet.TargetOrigin_DID {
					l.alsoUID = append(l.alsoUID, t)
					seen[t.cs] = o // once, however often the uid is named
				}
				return
			}
			seen[t.cs] = o
		}
		if req.ExcludeSession != "" && t.cs.member(req.ExcludeSession) && !t.cs.isParked() {
			// It gets the session's broadcast: one copy is enough.
			l.byBroadcast = append(l.byBroadcast, &fleet.LocalTarget{
				Did: t.did, Uid: t.uid, ConnId: int64(t.cs.key.id), Status: int32(api.PushStatus_SENT),
				Message: "sent by the session broadcast", Origin: o,
			})
			l.broadcastConns = append(l.broadcastConns, t.cs)
			return
		}
		l.targets = append(l.targets, t)
		l.origins = append(l.origins, o)
	}
	for _, did := range req.Dids {
		if cs := s.conns.byDID(app, did); cs != nil {
			add(target{did: did, cs: cs}, fleet.TargetOrigin_DID)
		}
	}
	for _, uid := range req.Uids {
		for _, cs := range s.conns.byUID(app, uid) {
			add(target{did: cs.did, uid: uid, cs: cs}, fleet.TargetOrigin_UID)
		}
	}
	if req.Session != "" {
		for _, cs := range s.sessions.members(app, req.Session) {
			add(target{did: cs.did, uid: cs.uid, cs: cs}, fleet.TargetOrigin_SESSION)
		}
	}
	timeout := s.cfg.PushTimeout
	if req.TimeoutMs > 0 && time.Duration(req.TimeoutMs)*time.Millisecond < timeout {
		timeout = time.Duration(req.TimeoutMs) * time.Millisecond
	}
	s.pushStartRun(&l.run, app, l.targets, uint64(req.MsgId), req.Payload, stage.QoS(req.Qos), req.WaitAck, timeout)
}

// answer waits for the push l started and reports it.
func (l *localPushing) answer(ctx context.Context) *fleet.LocalPushResponse {
	return l.s.localPushAnswer(l.run.wait(ctx, l.targets), l.origins, l.targets, l.byBroadcast, l.broadcastConns, l.alsoUID, &l.one)
}

// localPushing is what localPushStart keeps for its answer.
type localPushing struct {
	targets        []target
	origins        []fleet.TargetOrigin
	byBroadcast    []*fleet.LocalTarget
	broadcastConns []*connState
	// alsoUID are devices of named uids that their named did reaches already: sent once, and
	// reported under the uid too, or the coordinator would report the uid offline.
	alsoUID []target
	s       *Server
	run     pushRun

	oneTarget [1]target
	oneOrigin [1]fleet.TargetOrigin
	one       oneLocalAnswer
}

// oneLocalAnswer is the storage of a local push's answer about one connection.
type oneLocalAnswer struct {
	resp fleet.LocalPushResponse
	ts   [1]*fleet.LocalTarget
	t    fleet.LocalTarget
}

// localPushAnswer reports what a local push did to each connection it reached.
// One connection reached (each push of a typical PushBatch) fills one, made by the caller.
func (s *Server) localPushAnswer(pushed []*api.PushTarget, origins []fleet.TargetOrigin, targets []target, byBroadcast []*fleet.LocalTarget, broadcastConns []*connState, alsoUID []target, one *oneLocalAnswer) *fleet.LocalPushResponse {
	var resp *fleet.LocalPushResponse
	if len(pushed) == 1 && len(byBroadcast) == 0 && len(alsoUID) == 0 {
		one.ts[0], one.resp.Targets = &one.t, one.ts[:]
		resp = &one.resp
	} else {
		resp = &fleet.LocalPushResponse{Targets: make([]*fleet.LocalTarget, len(pushed), len(pushed)+len(byBroadcast))}
		for i := range pushed {
			resp.Targets[i] = &fleet.LocalTarget{}
		}
	}
	for i, t := range pushed {
		*resp.Targets[i] = fleet.LocalTarget{
			Did: t.Did, Uid: t.Uid, ConnId: t.ConnId, Status: int32(t.Status), Seq: t.Seq, Code: t.Code, Message: t.Message, Origin: origins[i],
		}
	}
	resp.Targets = append(resp.Targets, byBroadcast...)
	if len(alsoUID) > 0 {
		reported := make(map[*connState]*fleet.LocalTarget, len(resp.Targets))
		for i, t := range targets {
			reported[t.cs] = resp.Targets[i]
		}
		for i, cs := range broadcastConns {
			reported[cs] = byBroadcast[i]
		}
		for _, t := range alsoUID {
			c := *reported[t.cs]
			c.Uid, c.Origin = t.uid, fleet.TargetOrigin_UID
			resp.Targets = append(resp.Targets, &c)
		}
	}
	return resp
}

// localSession applies a session operation to the connections this server holds.
func (s *Server) localSession(ctx context.Context, req *fleet.LocalSessionRequest) *fleet.LocalSessionResponse {
	app, name := req.AppId, req.Session
	resp := &fleet.LocalSessionResponse{}
	var changes []sessionChange
	leave := func(cs *connState) {
		if s.sessions.leave(cs, name) {
			changes = append(changes, sessionChange{cs: cs, name: name})
		}
	}
	switch req.Op {
	case fleet.SessionOp_BIND, fleet.SessionOp_REPLACE:
		keep := map[*connState]bool{}
		for _, did := range req.Dids {
			cs := s.conns.byDID(app, did)
			if cs == nil {
				continue
			}
			keep[cs] = true
			resp.Dids = append(resp.Dids, did)
			for _, n := range s.sessions.join(cs, []string{name}) {
				changes = append(changes, sessionChange{cs: cs, name: n, join: true})
			}
		}
		if req.Op == fleet.SessionOp_REPLACE {
			for _, cs := range s.sessions.members(app, name) {
				if !keep[cs] {
					leave(cs)
				}
			}
		}
	case fleet.SessionOp_UNBIND:
		for _, did := range req.Dids {
			if cs := s.conns.byDID(app, did); cs != nil {
				leave(cs)
			}
		}
	case fleet.SessionOp_DISSOLVE:
		for _, cs := range s.sessions.members(app, name) {
			leave(cs)
		}
	case fleet.SessionOp_KICK:
		msg := req.Message
		if msg == "" {
			msg = "kicked by the business server"
		}
		for _, did := range req.Dids {
			if cs := s.conns.byDID(app, did); cs != nil {
				s.kick(cs, protocol.CodeKicked, msg)
				resp.Dids = append(resp.Dids, did)
			}
		}
		return resp
	case fleet.SessionOp_ONLINE:
		var conns []*connState
		if name != "" {
			conns = s.sessions.members(app, name)
		} else {
			for _, did := range req.Dids {
				if cs := s.conns.byDID(app, did); cs != nil {
					conns = append(conns, cs)
				}
			}
		}
		for _, cs := range conns {
			cs.mu.Lock()
			live := cs.loggedIn && !cs.closed
			sessions := append([]string(nil), cs.sessions...)
			cs.mu.Unlock()
			if live {
				resp.Devices = append(resp.Devices, &fleet.LocalDevice{
					Did: cs.did, Uid: cs.uid, GatewayId: cs.gatewayID(), ConnId: int64(cs.key.id), RemoteAddr: cs.remote(), Sessions: sessions,
				})
			}
		}
		return resp
	}
	s.syncGateways(ctx, changes)
	if name != "" {
		resp.Members = int32(s.sessions.size(app, name))
	}
	return resp
}

// apiTarget is a LocalTarget as the business sees it.
func apiTarget(t *fleet.LocalTarget) *api.PushTarget {
	return &api.PushTarget{Did: t.Did, Uid: t.Uid, ConnId: t.ConnId, Status: api.PushStatus(t.Status), Seq: t.Seq, Code: t.Code, Message: t.Message}
}
