package gateway

import (
	"sync/atomic"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/internal/telemetry"
	"github.com/platoim/plato/sdk/protocol"
)

// metrics are the gateway's counters: plain atomics on the hot path, read by Stats, the load
// report and the observable instruments of telemetry.go.
type metrics struct {
	accepted atomic.Int64
	// closed counts closed connections by reason code.
	closed telemetry.Codes
	// logins counts login answers by code: 0 is a login the state server accepted, any other code
	// a refusal (here, for a bad token, or by the state server's pipeline).
	logins telemetry.Codes
	// statesLost counts state servers found lost or restarted; connsMoved the connections moved
	// to another state server because of it (failover.go).
	statesLost, connsMoved atomic.Int64
	// resumes counts Resume answers by code: 0 resumed, 1208 nothing to resume, others refusals.
	resumes             telemetry.Codes
	framesIn, framesOut telemetry.Signals
	bytesIn, bytesOut   atomic.Int64
	protocolErrors      telemetry.Codes
	// slowConsumers counts devices closed with 1205, by reason (slow.go).
	slowConsumers [numSlowReasons]atomic.Int64
	// sendBuffer is the SO_SNDBUF the kernel reported for the last socket it was set on.
	sendBuffer atomic.Int64
	// panics counts callbacks that panicked and were recovered (guard.go).
	panics         atomic.Int64
	forwardRefused atomic.Int64
	// uplinksRefused and loginsRefused count frames refused for overload, by reason
	// (overload.go); broadcastsShed the broadcasts dropped while the manager sheds them.
	uplinksRefused, loginsRefused [numRefusedReasons]atomic.Int64
	broadcastsShed                atomic.Int64
	// rpcRefused counts Push and Sessions calls without a state server's proof.
	rpcRefused atomic.Int64
	// stateErrors counts failed State.Deliver calls by kind (each retry counts); deliverErrors
	// counts the batches dropped after the last retry.
	stateErrors   [rpc.NumErrKinds]atomic.Int64
	deliverErrors atomic.Int64
	// replyAcks counts the UplinkAcks that came back in Deliver replies (replyacks.go).
	replyAcks atomic.Int64
	// replyHeartbeatAcks counts the HeartbeatAcks that came back in Deliver replies.
	replyHeartbeatAcks atomic.Int64
	// Session broadcasts: messages received from NATS, those dropped by reason, frames written to
	// members, and device ACKs of broadcasts not forwarded to the state server.
	broadcastsIn         atomic.Int64
	broadcastsMalformed  [numMalformed]atomic.Int64
	broadcastFramesOut   atomic.Int64
	broadcastAcksDropped atomic.Int64
	// wsHandshakes counts WebSocket handshakes answered 101 and refused (ws.go).
	wsHandshakes [numWSHandshakeResults]atomic.Int64
	// broadcastsLost is the last count of the subscription's dropped messages (broadcastsLost()).
	broadcastsLost atomic.Int64
}

// Stats is a snapshot of the gateway's counters since it started.
type Stats struct {
	Conns          int
	Accepted       int64
	Closed         int64
	Logins         int64
	LoginsRefused  int64
	FramesIn       int64
	FramesOut      int64
	BytesIn        int64
	BytesOut       int64
	ProtocolErrors int64
	// SlowConsumers counts devices closed with 1205 (the sum of the three below): their queue
	// overflowed (SlowQueueFull), their unsent bytes stayed above the threshold (SlowStalled), or a
	// write to them timed out (SlowWriteTimeout).
	SlowConsumers, SlowQueueFull, SlowStalled, SlowWriteTimeout int64
	// SocketSendBuffer is the send buffer the kernel gave the last device socket (getsockopt
	// SO_SNDBUF after setting gateway.socket_send_buffer; Linux reports twice the value set), 0 if
	// none was set. SlowWatched is how many connections the slow-consumer check watches now, and
	// Unsent their unsent bytes at its last look.
	SocketSendBuffer, SlowWatched, Unsent int64
	ForwardRefused                        int64
	DeliverErrors                         int64
	// Panics counts callbacks that panicked and were recovered, each closing its connection with
	// 1307: a bug, logged with its stack.
	Panics int64
	// Broadcasts counts session broadcasts received from NATS, BroadcastsMalformed those dropped
	// (undecodable or too large), BroadcastFramesOut their frames written to member devices, and
	// BroadcastAcksDropped device ACKs of broadcasts that no state server waits for.
	Broadcasts           int64
	BroadcastsMalformed  int64
	BroadcastFramesOut   int64
	BroadcastAcksDropped int64
	// BroadcastsLost counts broadcasts NATS dropped because this gateway's fan-out fell behind.
	BroadcastsLost int64
	// SessionMemberships is how many connection-session pairs the local session index holds, and
	// Sessions how many sessions have at least one connection in it.
	SessionMemberships int64
	Sessions           int64
}

// Stats returns the current counters.
func (gw *Gateway) Stats() Stats {
	m := &gw.metrics
	ok := m.logins.Load(int(protocol.CodeOK))
	var malformed int64
	for i := range m.broadcastsMalformed {
		malformed += m.broadcastsMalformed[i].Load()
	}
	return Stats{
		Conns: gw.conns.len(), Accepted: m.accepted.Load(), Closed: m.closed.Total(), Logins: ok,
		LoginsRefused: m.logins.Total() - ok, FramesIn: m.framesIn.Total(), FramesOut: m.framesOut.Total(),
		BytesIn: m.bytesIn.Load(), BytesOut: m.bytesOut.Load(), ProtocolErrors: m.protocolErrors.Total(),
		SlowConsumers: m.slowTotal(), SlowQueueFull: m.slowConsumers[slowQueueFull].Load(),
		SlowStalled: m.slowConsumers[slowStalled].Load(), SlowWriteTimeout: m.slowConsumers[slowWriteTimeout].Load(),
		SocketSendBuffer: m.sendBuffer.Load(), SlowWatched: gw.slow.watched.Load(), Unsent: gw.slow.unsent.Load(),
		ForwardRefused: m.forwardRefused.Load(), DeliverErrors: m.deliverErrors.Load(),
		Panics: m.panics.Load(), Broadcasts: m.broadcastsIn.Load(), BroadcastsMalformed: malformed,
		BroadcastFramesOut: m.broadcastFramesOut.Load(), BroadcastAcksDropped: m.broadcastAcksDropped.Load(),
		BroadcastsLost: gw.broadcastsLost(), SessionMemberships: gw.sessions.memberships.Load(),
		Sessions: gw.sessions.sessions.Load(),
	}
}

func (m *metrics) slowTotal() int64 {
	var n int64
	for i := range m.slowConsumers {
		n += m.slowConsumers[i].Load()
	}
	return n
}

// closeCode reads the reason out of a Close or LoginAck frame the state server sends before closing.
func closeCode(f *fleet.DownFrame) protocol.Code {
	switch protocol.Signal(f.Signal) {
	case protocol.SigClose:
		var m protocol.Close
		if m.Decode(f.Body) == nil {
			return m.Code
		}
	case protocol.SigLoginAck:
		var m protocol.LoginAck
		if m.Decode(f.Body) == nil {
			return m.Code
		}
	}
	return protocol.CodeClientClose
}
