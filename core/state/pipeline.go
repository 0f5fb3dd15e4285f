package state

import (
	"github.com/platoim/plato/internal/overload"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// Pipeline runs signals through the per-app stages before the state server's own handling.
// *pipeline.Pipelines implements it; done is called once per event, in Run order per connection.
// RunReserved is Run from the lane's reserve, never refused for room.
type Pipeline interface {
	Run(ev stage.Event, done func(pipeline.Outcome)) error
	RunReserved(ev stage.Event, done func(pipeline.Outcome)) error
}

// listener is a Pipeline that can tell whether an app's chain has a stage for a signal
// (*pipeline.Pipelines can); see skips.
type listener interface {
	Listens(appID string, sig stage.Signal) bool
}

// routeListener is a Pipeline that can tell whether a push's route event would reach a stage,
// whether the push names a session or not (*pipeline.Pipelines can); see routeSkips.
type routeListener interface {
	ListensRoute(appID string, session bool) bool
}

// UsePipeline makes every signal pass through p. Call it before Start.
func (s *Server) UsePipeline(p Pipeline) { s.pipe = p }

// skips reports whether sig, for appID, may be handled without the pipeline because no stage
// listens to it. Only for signals whose order with the connection's others does not matter: a
// downlink ACK (it only closes an entry) and a retransmit question. So ACKs are handled in the
// gateway's Deliver batch as they come, and a pipeline without a retransmit stage costs nothing.
func (s *Server) skips(appID string, sig stage.Signal) bool {
	l, ok := s.pipe.(listener)
	return s.pipe == nil || ok && !l.Listens(appID, sig)
}

// routeSkips reports whether the route event of an appID push naming a session (session) or
// none may be settled without the pipeline, because no stage would be called for it: with the
// shipped qosroute config, a push to dids and uids (qosroute acts on session pushes only,
// stage.RouteSelector). A route event is not ordered with any connection's signals.
func (s *Server) routeSkips(appID string, session bool) bool {
	if s.pipe == nil {
		return true
	}
	l, ok := s.pipe.(routeListener)
	return ok && !l.ListensRoute(appID, session)
}

// lanePolicy is what becomes of a signal that finds its pipeline lane full.
type lanePolicy uint8

const (
	// refusable signals are refused with 1303, retry later: uplinks, logins, pushes. They are also
	// what the overload manager refuses first.
	refusable lanePolicy = iota
	// skippable signals are handled without the pipeline: a heartbeat, an ACK of nothing in flight.
	// A device could send them without bound, so they get no reserve.
	skippable
	// reserved signals take the lane's reserve, so the stages never miss them: a disconnect, the
	// ACK of a downlink in flight, a resumed connection's replay. Each is bounded by construction.
	reserved
)

// through runs ev through the pipeline, or hands it straight to done when there is none. When the
// pipeline's lane is full, or the overload manager refuses its kind, a refusable signal is refused
// with 1303 (retry later) rather than queued without bound (docs/operations.md, "Overload").
func (s *Server) through(ev stage.Event, policy lanePolicy, done func(pipeline.Outcome)) {
	if policy == refusable {
		if a, ok := overloadAction(ev.Signal); ok && s.overload.Active(a) {
			s.metrics.overloadRefused[a].Add(1)
			done(pipeline.Outcome{Verdict: stage.Reject, Code: uint16(protocol.CodeOverloaded), Message: "overloaded; retry later"})
			return
		}
	}
	if s.pipe == nil {
		done(pipeline.Outcome{})
		return
	}
	run := s.pipe.Run
	if policy == reserved {
		run = s.pipe.RunReserved
	}
	if err := run(ev, done); err != nil {
		s.metrics.pipelineRefused.Add(1)
		if policy != refusable {
			done(pipeline.Outcome{})
			return
		}
		done(pipeline.Outcome{Verdict: stage.Reject, Code: uint16(protocol.CodeOverloaded), Message: "pipeline queue full; retry later"})
	}
}

// overloadAction is the overload manager's action that refuses sig, if any: logins go first,
// uplinks next; pushes are the business's, which hears 1303 from their own bounded queues.
func overloadAction(sig stage.Signal) (int, bool) {
	switch sig {
	case stage.SignalLogin:
		return overload.RefuseLogins, true
	case stage.SignalUplink:
		return overload.RefuseUplinks, true
	}
	return 0, false
}

// stageConn names the connection by its identity, which a Resume does not change, so a stage's
// per-connection records (and its pipeline lane) carry over.
func (cs *connState) stageConn() stage.Conn {
	return stage.Conn{AppID: cs.appID, DID: cs.did, UID: cs.uid, ConnID: cs.key.id, GatewayID: cs.key.gw, RemoteAddr: cs.remote()}
}
