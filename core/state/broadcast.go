package state

import (
	"github.com/platoim/plato/internal/fanout"
	"github.com/platoim/plato/internal/overload"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// canBroadcast reports whether a session push with qos may go as one NATS broadcast. At least
// once needs every member's ACK tracked and resent per connection, which is what the direct
// path and the retransmit stage do, so such pushes go direct whatever the size (ADR 0007).
func (s *Server) canBroadcast(qos stage.QoS) bool {
	return s.cfg.NATS != nil && qos == stage.AtMostOnce
}

// broadcast publishes one message that every gateway receives and fans out to its own members of
// the session, each frame marked broadcast with seq = msgID (docs/protocol.md).
func (s *Server) broadcast(app, session string, msgID uint64, qos stage.QoS, payload []byte) error {
	m := fanout.Message{AppID: app, Session: session, MsgID: msgID, QoS: qos, Payload: payload}
	if err := m.Validate(); err != nil {
		return platoError(protocol.CodeInvalidArgument, "session broadcast: %v", err)
	}
	if s.overload.Active(overload.ShedBroadcasts) {
		// The last action of a pressed state server: the business hears 1303 and may retry.
		s.metrics.overloadRefused[overload.ShedBroadcasts].Add(1)
		return platoError(protocol.CodeOverloaded, "session broadcast shed: the state server is overloaded; retry later")
	}
	if err := s.cfg.NATS.Publish(fanout.Subject, m.Append(nil)); err != nil {
		s.metrics.broadcastFailed.Add(1)
		return platoError(protocol.CodeOverloaded, "publishing the session broadcast: %v", err)
	}
	return nil
}
