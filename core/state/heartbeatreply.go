package state

import (
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// HeartbeatAcks in the Deliver reply (docs/adr/0012-uplink-acks-in-the-deliver-reply.md,
// "Heartbeats"). Heartbeats are most of an idle fleet's traffic, and each answer by Push cost a
// call of its own. A HeartbeatAck decided while the call that carried its heartbeat is still open
// rides that call's reply: at once when no stage of the app acts on heartbeats (the pipeline is
// skipped), otherwise when the stages are done before the call is (a call held for uplinks).
// Heartbeats never hold a call themselves: a held lane costs every connection on it.
//
// No order is promised between a HeartbeatAck and a connection's other frames (protocol.md §9:
// it proves the server alive, nothing more), so the UplinkAck rules of replyacks.go do not apply
// and are not touched: a HeartbeatAck neither waits for them nor makes them wait.

// heartbeatAck is a HeartbeatAck staged for a reply: the route it was decided on.
type heartbeatAck struct {
	cs  *connState
	r   *route
	seq uint64
}

// heartbeat answers a Heartbeat of cs that came in a call of key's gateway, col's when the caller
// reads answers in the reply.
func (s *Server) heartbeat(cs *connState, key connKey, seq uint64, traceparent string, col *ackCollector) {
	sp := s.startFrame(stage.SignalHeartbeat, cs.appID, traceparent)
	if s.skips(cs.appID, stage.SignalHeartbeat) {
		// Nobody listens: the answer is decided now. A reload that adds a heartbeat stage applies
		// from the next heartbeat on, as for any signal nobody listened to.
		s.ackHeartbeat(cs, key, seq, col)
		sp.end(protocol.CodeOK)
		return
	}
	s.through(stage.Event{Signal: stage.SignalHeartbeat, Conn: cs.stageConn(), Seq: seq, TraceParent: sp.traceParent()}, skippable, func(pipeline.Outcome) {
		s.ackHeartbeat(cs, key, seq, col)
		sp.end(protocol.CodeOK)
	})
}

// ackHeartbeat stages the HeartbeatAck for col's reply while col is open and cs is still where
// the heartbeat came from, and otherwise sends it by Push (nothing when cs is parked, as before).
func (s *Server) ackHeartbeat(cs *connState, key connKey, seq uint64, col *ackCollector) {
	if col != nil {
		if r := cs.route.Load(); r != nil && r.key == key && col.stageHeartbeat(heartbeatAck{cs: cs, r: r, seq: seq}) {
			return
		}
	}
	s.pushHeartbeatAck(cs, seq)
}

func (s *Server) pushHeartbeatAck(cs *connState, seq uint64) {
	if s.send(cs, fleet.DownAction_SEND, protocol.SigHeartbeatAck, 0, seq, nil) {
		s.metrics.hbAckPaths[ackByPush].Add(1)
	}
}

// stageHeartbeat keeps h for the reply, or reports false when the call is done with its reply.
func (c *ackCollector) stageHeartbeat(h heartbeatAck) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.open {
		return false
	}
	if c.heartbeats == nil {
		c.heartbeats = make([]heartbeatAck, 0, max(c.hbs, 1))
	}
	c.heartbeats = append(c.heartbeats, h)
	return true
}

// heartbeatFrames adds to fs the HeartbeatAcks staged in col, which finish has closed. One whose
// connection moved or was parked since goes where it is now, by Push (or nowhere), as it would
// have at its decision.
func (s *Server) heartbeatFrames(col *ackCollector, fs *frameSet) {
	col.mu.Lock()
	hbs := col.heartbeats
	col.heartbeats = nil
	col.mu.Unlock()
	n := 0
	for _, h := range hbs {
		if h.cs.route.Load() != h.r {
			s.pushHeartbeatAck(h.cs, h.seq)
			continue
		}
		fs.add(fleet.DownFrame{ConnId: int64(h.r.key.id), Signal: int8(protocol.SigHeartbeatAck), Seq: int64(h.seq)})
		n++
	}
	s.metrics.hbAckPaths[ackByReply].Add(int64(n))
}
