package gateway

import (
	"context"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/protocol"
)

// UplinkAcks in the Deliver reply (docs/adr/0012-uplink-acks-in-the-deliver-reply.md): a state
// server that holds a Deliver call for the answers of its uplinks returns them in the reply (and
// the HeartbeatAcks it decided meanwhile, which clear the connection's heartbeat in flight), and
// they are written as the frames of a Push of that state server would be: the pending-uplink
// bookkeeping, the latency histogram, a connection moved to another state server or handed to a
// new process, all as in push.go. A state server of an earlier version ignores acks_in_reply and
// answers by Push.

// writeReplyAcks queues the answers a Deliver reply of l carried, each connection's in one flush.
// Connections gone or moved meanwhile are reported to l in a call of their own, as a PushResponse
// would have (it is rare: the connection closed or moved while its uplink was in the call).
func (gw *Gateway) writeReplyAcks(ctx context.Context, l *stateLink, acks []*fleet.DownFrame) {
	held := gw.holdConns(acks)
	var resp fleet.PushResponse
	gw.ho.pushMu.RLock()
	gw.pushFrames(l.id, gw.forwardHanded(l.id, acks), &resp)
	gw.ho.pushMu.RUnlock()
	for _, c := range held {
		c.releaseFlushes()
	}
	var uplinkAcks, heartbeatAcks int64
	for _, f := range acks {
		if protocol.Signal(f.Signal) == protocol.SigHeartbeatAck {
			heartbeatAcks++
		} else {
			uplinkAcks++
		}
	}
	gw.metrics.replyAcks.Add(uplinkAcks)
	gw.metrics.replyHeartbeatAcks.Add(heartbeatAcks)
	if len(resp.Gone) == 0 && len(resp.Moved) == 0 {
		return
	}
	req := &fleet.DeliverRequest{GatewayId: gw.cfg.ID, Proof: gw.proof, Boot: l.bootOf(), Gone: resp.Gone, Moved: resp.Moved}
	if _, err := l.cli.Deliver(ctx, req); err != nil {
		gw.log.Warn("could not tell a state server of connections gone or moved", "state", l.id, "gone", len(resp.Gone), "moved", len(resp.Moved), "err", err)
	}
}

// holdConns makes what is queued for the connections of frames wait for releaseFlushes, so that a
// connection answered more than once (or written to meanwhile) gets one flush.
func (gw *Gateway) holdConns(frames []*fleet.DownFrame) []*conn {
	held := make([]*conn, 0, len(frames))
	for _, f := range frames {
		c := gw.conns.get(uint64(f.ConnId))
		if c == nil {
			continue
		}
		c.mu.Lock()
		if c.holding {
			c.mu.Unlock()
			continue // a read holds it (or an earlier frame of these did): that one releases it
		}
		c.holdLocked()
		c.mu.Unlock()
		held = append(held, c)
	}
	return held
}
