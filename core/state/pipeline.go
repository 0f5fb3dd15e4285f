package state

import (
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// Pipeline runs signals through the per-app stages before the state server's own handling.
// *pipeline.Pipelines implements it; done is called once per event, in Run order per connection.
type Pipeline interface {
	Run(ev stage.Event, done func(pipeline.Outcome)) error
}

// UsePipeline makes every signal pass through p. Call it before Start.
func (s *Server) UsePipeline(p Pipeline) { s.pipe = p }

// through runs ev through the pipeline, or hands it straight to done when there is none. When the
// pipeline's lane is full the signal is refused with 1303 (retry later) rather than queued without
// bound; notifications that must not be lost (ACKs, disconnects) skip the pipeline instead.
func (s *Server) through(ev stage.Event, mustHandle bool, done func(pipeline.Outcome)) {
	if s.pipe == nil {
		done(pipeline.Outcome{})
		return
	}
	if err := s.pipe.Run(ev, done); err != nil {
		s.metrics.pipelineRefused.Add(1)
		if mustHandle {
			done(pipeline.Outcome{})
			return
		}
		done(pipeline.Outcome{Verdict: stage.Reject, Code: uint16(protocol.CodeOverloaded), Message: "pipeline queue full; retry later"})
	}
}

// stageConn names the connection by its identity, which a Resume does not change, so a stage's
// per-connection records (and its pipeline lane) carry over.
func (cs *connState) stageConn() stage.Conn {
	return stage.Conn{AppID: cs.appID, DID: cs.did, UID: cs.uid, ConnID: cs.key.id, GatewayID: cs.key.gw, RemoteAddr: cs.remote()}
}
