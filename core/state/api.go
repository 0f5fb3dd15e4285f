package state

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// MaxNamedTargets bounds the dids and uids one request names.
const MaxNamedTargets = 10000

// maxNameLen bounds session names, dids and uids in requests.
const maxNameLen = 256

// apiHandler is Plato's RPC for business servers (idl/plato.thrift), served next to the State
// service on the state server's address.
type apiHandler struct{ s *Server }

var _ api.Plato = (*apiHandler)(nil)

// apiCalls counts the calls of Plato's RPC by method and result (plato_state_api_calls_total):
// ok, or the code of the PlatoError it was refused with.
func apiCalls() *rpc.Calls {
	return rpc.NewCalls(func(resp any, err error) (int, bool) {
		if err != nil {
			return -1, true // not a PlatoError: Kitex turned it into a transport error
		}
		if r, ok := resp.(interface{ GetErr() *api.PlatoError }); ok && r.GetErr() != nil {
			return int(r.GetErr().Code), true
		}
		return 0, false
	}, "Push", "PushBatch", "Bind", "Unbind", "Kick", "Online")
}

func platoError(code protocol.Code, format string, args ...any) *api.PlatoError {
	return &api.PlatoError{Code: int32(code), Message: fmt.Sprintf(format, args...)}
}

// authorize checks the caller's key against its app's: every call may reach only the caller's
// own app, so a business server holding app B's key can never name app A's devices.
func (s *Server) authorize(c *api.Caller) (string, error) {
	if c == nil || c.AppId == "" {
		return "", platoError(protocol.CodeInvalidArgument, "caller.app_id is required")
	}
	app := s.cfg.Apps.Get(c.AppId)
	if app == nil {
		return "", platoError(protocol.CodeAppMismatch, "app %q is not configured (apps.%s)", c.AppId, c.AppId)
	}
	if !app.CheckKey(c.Key) {
		return "", platoError(protocol.CodeAppMismatch, "wrong key for app %q", c.AppId)
	}
	return c.AppId, nil
}

func checkName(what, v string) error {
	switch {
	case v == "":
		return platoError(protocol.CodeInvalidArgument, "%s is empty", what)
	case len(v) > maxNameLen:
		return platoError(protocol.CodeInvalidArgument, "%s is longer than %d bytes", what, maxNameLen)
	case !utf8.ValidString(v):
		return platoError(protocol.CodeInvalidArgument, "%s is not valid UTF-8", what)
	}
	for i := 0; i < len(v); i++ {
		if v[i] == 0 {
			return platoError(protocol.CodeInvalidArgument, "%s contains a NUL byte", what)
		}
	}
	return nil
}

// checkDIDs bounds and checks the dids a call names.
func checkDIDs(dids []string) error {
	if len(dids) > MaxNamedTargets {
		return platoError(protocol.CodeInvalidArgument, "%d dids exceed the maximum of %d per call", len(dids), MaxNamedTargets)
	}
	return checkNames("a did", dids)
}

// partition splits the dids a call named, in their order and each once, into those the state
// servers acted on (done) and the others.
func partition(named, done []string) (in, out []string) {
	acted := make(map[string]bool, len(done))
	for _, did := range done {
		acted[did] = true
	}
	seen := make(map[string]bool, len(named))
	for _, did := range named {
		if seen[did] {
			continue
		}
		seen[did] = true
		if acted[did] {
			in = append(in, did)
		} else {
			out = append(out, did)
		}
	}
	return in, out
}

func checkNames(what string, vs []string) error {
	for _, v := range vs {
		if err := checkName(what, v); err != nil {
			return err
		}
	}
	return nil
}

// Push sends a downlink to dids, to every device of uids, and to a session. The session part is
// routed by the app's pipeline (the qosroute stage): directly, one frame per member connection
// over RPC, or as one NATS broadcast that each gateway fans out to its local members.
func (a *apiHandler) Push(ctx context.Context, req *api.PushRequest) (*api.PushResponse, error) {
	s := a.s
	app, err := s.authorize(req.Caller)
	if err != nil {
		return nil, err
	}
	p, perr := s.checkPush(ctx, app, req.Caller.Key, req)
	if perr != nil {
		return nil, perr
	}
	r, err := s.route(ctx, p.routeEvent())
	if err != nil {
		return nil, err
	}
	if err := s.planPush(p, r); err != nil {
		return nil, err
	}
	lp := p.lp
	mine, theirs, failed := gather(ctx, s,
		func() *fleet.LocalPushResponse { return s.localPush(ctx, lp) },
		func(ctx context.Context, peer *peer) (*fleet.LocalPushResponse, error) {
			return peer.cli.LocalPush(ctx, lp, s.peerTimeout(p.timeout))
		})
	p.resp.Targets = p.merge(append(theirs, mine), failed)
	return p.resp, nil
}

// plannedPush is one push between its checks and its delivery.
type plannedPush struct {
	app     string
	req     *api.PushRequest
	named   int
	members int
	msgID   uint64
	timeout time.Duration
	resp    *api.PushResponse
	// lp is what each state server is asked to do with the connections it holds: lpv, in the
	// same allocation.
	lp  *fleet.LocalPushRequest
	lpv fleet.LocalPushRequest
	// The storage of resp, and of its answer about a push to one did (each push of a typical
	// PushBatch).
	respv   api.PushResponse
	oneOut  [1]*api.PushTarget
	oneTarg api.PushTarget
}

func (p *plannedPush) routeEvent() stage.Event {
	return stage.Event{
		Signal: stage.SignalRoute, Conn: stage.Conn{AppID: p.app}, Session: p.req.Session,
		Targets: p.named, Members: p.members, MsgID: p.msgID, Payload: p.req.Payload, QoS: stage.QoS(p.req.Qos),
	}
}

// checkPush counts a push against its app's quota, checks its fields, counts the session's
// members and gives it a msg_id: everything before its route is decided.
func (s *Server) checkPush(ctx context.Context, app, key string, req *api.PushRequest) (*plannedPush, *api.PlatoError) {
	return s.checkPushInto(ctx, &plannedPush{}, app, key, req)
}

// checkPushInto is checkPush filling p, zero and not copied after (a batch's plans are one
// allocation). It returns p when the push may go on.
func (s *Server) checkPushInto(ctx context.Context, p *plannedPush, app, key string, req *api.PushRequest) (*plannedPush, *api.PlatoError) {
	if c := s.appCounters(app); c != nil {
		c.pushes.Add(1)
	}
	if !s.admitPush(app) {
		return nil, platoError(protocol.CodeOverloaded, "app %q is over its pushes_per_sec quota; retry later", app)
	}
	named := len(req.Dids) + len(req.Uids)
	switch {
	case named == 0 && req.Session == "":
		return nil, platoError(protocol.CodeInvalidArgument, "no target: name dids, uids or a session")
	case named > MaxNamedTargets:
		return nil, platoError(protocol.CodeInvalidArgument, "%d dids and uids exceed the maximum of %d per push", named, MaxNamedTargets)
	case len(req.Payload)+8 > s.cfg.MaxBody:
		return nil, platoError(protocol.CodeInvalidArgument, "payload of %d bytes exceeds the device maximum of %d", len(req.Payload), s.cfg.MaxBody-8)
	case req.Qos < api.QoS_DEFAULT || req.Qos > api.QoS_AT_LEAST_ONCE:
		return nil, platoError(protocol.CodeInvalidArgument, "unknown qos %d", req.Qos)
	}
	if err := checkNames("a did", req.Dids); err != nil {
		return nil, asPlatoError(err)
	}
	if err := checkNames("a uid", req.Uids); err != nil {
		return nil, asPlatoError(err)
	}
	if req.Session != "" {
		if err := checkName("session", req.Session); err != nil {
			return nil, asPlatoError(err)
		}
	}
	timeout := s.cfg.PushTimeout
	if req.TimeoutMs > 0 && time.Duration(req.TimeoutMs)*time.Millisecond < timeout {
		timeout = time.Duration(req.TimeoutMs) * time.Millisecond
	}
	members := 0
	if req.Session != "" {
		count, err := s.fleetSession(ctx, &fleet.LocalSessionRequest{AppId: app, Key: key, Op: fleet.SessionOp_COUNT, Session: req.Session})
		if err != nil {
			return nil, asPlatoError(err)
		}
		members = int(count.Members)
	}
	p.app, p.req, p.named, p.members, p.msgID, p.timeout = app, req, named, members, s.nextMsgID(), timeout
	p.lpv = fleet.LocalPushRequest{
		AppId: app, Key: key, Dids: req.Dids, Uids: req.Uids, MsgId: int64(p.msgID),
		WaitAck: req.WaitAck, TimeoutMs: int32(timeout / time.Millisecond),
	}
	p.lp = &p.lpv
	return p, nil
}

// planPush settles how a routed push goes: it broadcasts the session part when routed so, and
// completes what the state servers are asked.
func (s *Server) planPush(p *plannedPush, r routing) *api.PlatoError {
	req := p.req
	p.respv = api.PushResponse{MsgId: int64(p.msgID), Route: api.Route_DIRECT, Qos: api.QoS(r.qos), SessionMembers: int32(p.members)}
	p.resp = &p.respv
	p.lp.Payload, p.lp.Qos = r.payload, int32(r.qos)
	switch {
	case req.Session != "" && p.members > 0 && r.route == stage.RouteBroadcast && s.canBroadcast(r.qos):
		// One message for every gateway, whichever state server holds the members.
		if err := s.broadcast(p.app, req.Session, p.msgID, r.qos, r.payload); err != nil {
			return asPlatoError(err)
		}
		p.lp.ExcludeSession = req.Session
		p.resp.Route = api.Route_BROADCAST
		s.metrics.pushesBroadcast.Add(1)
	case req.Session != "" && p.members > 0:
		if p.members+p.named > MaxPushTargets {
			return platoError(protocol.CodeInvalidArgument, "%d direct targets exceed the maximum of %d: route sessions this large by broadcast (qosroute broadcast_min_members)", p.members+p.named, MaxPushTargets)
		}
		p.lp.Session = req.Session
		s.metrics.pushesDirect.Add(1)
	default:
		s.metrics.pushesDirect.Add(1)
	}
	return nil
}

// asPlatoError keeps a PlatoError as it is and makes any other error one (code 1503: the call
// could not be completed and may be retried).
func asPlatoError(err error) *api.PlatoError {
	var pe *api.PlatoError
	if errors.As(err, &pe) {
		return pe
	}
	return platoError(protocol.CodeOverloaded, "%v", err)
}

// merge is mergeTargets for p's request, and for a push to one did (each push of a typical
// PushBatch) without its maps and allocations: the answer is p's own storage.
func (p *plannedPush) merge(parts []*fleet.LocalPushResponse, failed []error) []*api.PushTarget {
	req := p.req
	if len(req.Dids) != 1 || len(req.Uids) != 0 {
		return mergeTargets(req, parts, failed)
	}
	did := req.Dids[0]
	var found *fleet.LocalTarget
	for _, part := range parts {
		if part == nil {
			continue
		}
		for _, t := range part.Targets {
			if t.Origin != fleet.TargetOrigin_DID || t.Did != did {
				return mergeTargets(req, parts, failed) // session members too: the general way
			}
			found = t // the last, as mergeTargets' map keeps
		}
	}
	if found != nil {
		p.oneTarg = api.PushTarget{Did: found.Did, Uid: found.Uid, ConnId: found.ConnId, Status: api.PushStatus(found.Status), Seq: found.Seq, Code: found.Code, Message: found.Message}
	} else {
		p.oneTarg = api.PushTarget{Did: did, Status: api.PushStatus_OFFLINE}
		if len(failed) > 0 {
			p.oneTarg.Status, p.oneTarg.Message = api.PushStatus_FAILED, "not known: "+errors.Join(failed...).Error()
		}
	}
	p.oneOut[0] = &p.oneTarg
	return p.oneOut[:]
}

// mergeTargets orders the state servers' targets as the request named them (dids, the devices of
// each uid, then session members) and reports what no state server holds: offline, or failed when
// a state server could not be asked.
func mergeTargets(req *api.PushRequest, parts []*fleet.LocalPushResponse, failed []error) []*api.PushTarget {
	byDID := map[string]*fleet.LocalTarget{}
	byUID := map[string][]*fleet.LocalTarget{}
	var members []*api.PushTarget
	for _, part := range parts {
		if part == nil {
			continue
		}
		for _, t := range part.Targets {
			switch t.Origin {
			case fleet.TargetOrigin_DID:
				byDID[t.Did] = t
			case fleet.TargetOrigin_UID:
				byUID[t.Uid] = append(byUID[t.Uid], t)
			default:
				members = append(members, apiTarget(t))
			}
		}
	}
	missing, why := api.PushStatus_OFFLINE, ""
	if len(failed) > 0 {
		missing, why = api.PushStatus_FAILED, "not known: "+errors.Join(failed...).Error()
	}
	out := make([]*api.PushTarget, 0, len(req.Dids)+len(req.Uids)+len(members))
	seen := map[string]bool{}
	for _, did := range req.Dids {
		if seen[did] {
			continue
		}
		seen[did] = true
		if t := byDID[did]; t != nil {
			out = append(out, apiTarget(t))
		} else {
			out = append(out, &api.PushTarget{Did: did, Status: missing, Message: why})
		}
	}
	seen = map[string]bool{}
	for _, uid := range req.Uids {
		if seen[uid] {
			continue
		}
		seen[uid] = true
		if ts := byUID[uid]; len(ts) > 0 {
			for _, t := range ts {
				out = append(out, apiTarget(t))
			}
		} else {
			out = append(out, &api.PushTarget{Uid: uid, Status: missing, Message: why})
		}
	}
	return append(out, members...)
}

// fleetSession applies a session operation on every state server and sums up the answers. A state
// server that cannot be asked fails the call: it may have been applied in part.
func (s *Server) fleetSession(ctx context.Context, req *fleet.LocalSessionRequest) (*fleet.LocalSessionResponse, error) {
	mine, theirs, failed := gather(ctx, s,
		func() *fleet.LocalSessionResponse { return s.localSession(ctx, req) },
		func(ctx context.Context, p *peer) (*fleet.LocalSessionResponse, error) {
			return p.cli.LocalSession(ctx, req)
		})
	if len(failed) > 0 {
		return nil, platoError(protocol.CodeOverloaded, "%s: the call may have been applied in part; retry it", errors.Join(failed...))
	}
	sum := &fleet.LocalSessionResponse{}
	for _, r := range append(theirs, mine) {
		if r == nil {
			continue // a state server that is gone
		}
		sum.Members += r.Members
		sum.Dids = append(sum.Dids, r.Dids...)
		sum.Devices = append(sum.Devices, r.Devices...)
	}
	return sum, nil
}

// routing is what the pipeline decided for a push.
type routing struct {
	route   stage.Route
	qos     stage.QoS
	payload []byte
}

// route runs a push's route signal through the app's pipeline and settles what nobody chose:
// direct, and the QoS the business asked for, or at least once.
func (s *Server) route(ctx context.Context, ev stage.Event) (routing, error) {
	type routed struct {
		r   routing
		err error
	}
	done := make(chan routed, 1)
	s.routeStart(ev, func(r routing, err error) { done <- routed{r, err} })
	select {
	case out := <-done:
		return out.r, out.err
	case <-ctx.Done():
		return routing{}, platoError(protocol.CodePipelineFailed, "routing the push: %v", ctx.Err())
	}
}

// routeStart is route without the wait: then runs when the pipeline decided, on a pipeline lane
// (or at once without a pipeline), so a batch routes all its pushes in one go.
func (s *Server) routeStart(ev stage.Event, then func(routing, error)) {
	if s.routeSkips(ev.Conn.AppID, ev.Session != "") {
		then(s.routeOf(ev.QoS, ev.Payload, pipeline.Outcome{}))
		return
	}
	// Only what routeOf needs is kept for the outcome, not the whole event.
	qos, payload := ev.QoS, ev.Payload
	s.through(ev, refusable, func(out pipeline.Outcome) { then(s.routeOf(qos, payload, out)) })
}

// routeOf settles a push's routing from its route signal's outcome: direct, and the QoS the
// business asked for (qos, payload), or at least once, unless a stage chose otherwise.
func (s *Server) routeOf(qos stage.QoS, payload []byte, out pipeline.Outcome) (routing, error) {
	r := routing{route: stage.RouteDirect, qos: qos, payload: payload}
	if out.Verdict != stage.Continue {
		if out.Stage != "" {
			s.metrics.routesRejected.Add(1)
		}
		code, msg := rejection(out)
		return r, platoError(code, "push refused: %s", msg)
	}
	if out.Route != stage.RouteDefault {
		r.route = out.Route
	}
	if out.QoS != stage.QoSDefault {
		r.qos = out.QoS
	}
	if out.Payload != nil {
		r.payload = out.Payload
	}
	if r.qos == stage.QoSDefault {
		r.qos = stage.AtLeastOnce
	}
	return r, nil
}

// Bind makes the logged-in connections of dids join a session (or, with replace, be exactly its
// members), in the state server's index and in each gateway's local one.
func (a *apiHandler) Bind(ctx context.Context, req *api.BindRequest) (*api.BindResponse, error) {
	s := a.s
	app, err := s.authorize(req.Caller)
	if err != nil {
		return nil, err
	}
	if err := checkName("session", req.Session); err != nil {
		return nil, err
	}
	if err := checkDIDs(req.Dids); err != nil {
		return nil, err
	}
	op := fleet.SessionOp_BIND
	if req.Replace {
		op = fleet.SessionOp_REPLACE
	}
	sum, err := s.fleetSession(ctx, &fleet.LocalSessionRequest{AppId: app, Key: req.Caller.Key, Op: op, Session: req.Session, Dids: req.Dids})
	if err != nil {
		return nil, err
	}
	_, offline := partition(req.Dids, sum.Dids)
	return &api.BindResponse{Members: sum.Members, Offline: offline}, nil
}

// Unbind makes dids (or, with all, every member) leave a session.
func (a *apiHandler) Unbind(ctx context.Context, req *api.UnbindRequest) (*api.UnbindResponse, error) {
	s := a.s
	app, err := s.authorize(req.Caller)
	if err != nil {
		return nil, err
	}
	if err := checkName("session", req.Session); err != nil {
		return nil, err
	}
	if len(req.Dids) == 0 && !req.All {
		return nil, platoError(protocol.CodeInvalidArgument, "name dids, or set all to dissolve the session")
	}
	if err := checkNames("a did", req.Dids); err != nil {
		return nil, err
	}
	op := fleet.SessionOp_UNBIND
	if req.All {
		op = fleet.SessionOp_DISSOLVE
	}
	sum, err := s.fleetSession(ctx, &fleet.LocalSessionRequest{AppId: app, Key: req.Caller.Key, Op: op, Session: req.Session, Dids: req.Dids})
	if err != nil {
		return nil, err
	}
	return &api.UnbindResponse{Members: sum.Members}, nil
}

// Kick closes the connections of dids with Close 1202 and the business's message.
func (a *apiHandler) Kick(ctx context.Context, req *api.KickRequest) (*api.KickResponse, error) {
	s := a.s
	app, err := s.authorize(req.Caller)
	if err != nil {
		return nil, err
	}
	switch {
	case len(req.Dids) == 0:
		return nil, platoError(protocol.CodeInvalidArgument, "dids is empty")
	case len(req.Message) > 1024:
		return nil, platoError(protocol.CodeInvalidArgument, "message is longer than 1024 bytes")
	}
	if err := checkDIDs(req.Dids); err != nil {
		return nil, err
	}
	sum, err := s.fleetSession(ctx, &fleet.LocalSessionRequest{AppId: app, Key: req.Caller.Key, Op: fleet.SessionOp_KICK, Dids: req.Dids, Message: req.Message})
	if err != nil {
		return nil, err
	}
	kicked, _ := partition(req.Dids, sum.Dids)
	return &api.KickResponse{Kicked: kicked}, nil
}

// Online lists the logged-in devices of a session, or which of dids are logged in.
func (a *apiHandler) Online(ctx context.Context, req *api.OnlineRequest) (*api.OnlineResponse, error) {
	s := a.s
	app, err := s.authorize(req.Caller)
	if err != nil {
		return nil, err
	}
	switch {
	case req.Session != "" && len(req.Dids) > 0:
		return nil, platoError(protocol.CodeInvalidArgument, "name a session or dids, not both")
	case req.Session != "":
		if err := checkName("session", req.Session); err != nil {
			return nil, err
		}
	case len(req.Dids) > 0:
		if err := checkDIDs(req.Dids); err != nil {
			return nil, err
		}
	default:
		return nil, platoError(protocol.CodeInvalidArgument, "name a session or dids")
	}
	sum, err := s.fleetSession(ctx, &fleet.LocalSessionRequest{AppId: app, Key: req.Caller.Key, Op: fleet.SessionOp_ONLINE, Session: req.Session, Dids: req.Dids})
	if err != nil {
		return nil, err
	}
	resp := &api.OnlineResponse{Devices: make([]*api.Device, len(sum.Devices))}
	for i, d := range sum.Devices {
		resp.Devices[i] = &api.Device{Did: d.Did, Uid: d.Uid, GatewayId: d.GatewayId, ConnId: d.ConnId, RemoteAddr: d.RemoteAddr, Sessions: d.Sessions}
	}
	return resp, nil
}
