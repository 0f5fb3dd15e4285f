package gateway

import (
	"context"
	"encoding/binary"
	"strconv"
	"time"

	"github.com/cloudwego/kitex/client/callopt"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/protocol"
)

// A state server can die (kill -9, a crashed host) or restart. The gateway holds the sockets, so
// the connections need not die with it: the gateway pings each state server every
// state_ping_interval, and one that misses state_pings_lost answers in a row, refuses the
// connection (nothing listens: the process is gone), or answers with another boot (it restarted and
// holds nothing), is lost. Each of its connections then moves to
// the state server its did hashes to among those left, with an ADOPTED event carrying what that
// one needs (app, did, uid, sessions, sequence numbers, unACKed at-least-once downlinks). Uplinks
// that were inside the lost server are answered 1210 here; their outcome is unknown.

// Bounds of what a connection keeps for a move: a device that floods uplinks or never ACKs costs
// at most this much.
const (
	maxPendingUplinks = 1024
	maxUnacked        = 1024
)

// trackLocked keeps an at-least-once downlink until the device ACKs it (a retransmit of one kept
// replaces it). c.mu is held.
func (c *conn) trackLocked(f *fleet.DownFrame) {
	k := c.coldLocked()
	for i := len(k.unacked) - 1; i >= 0; i-- {
		if k.unacked[i].Seq == f.Seq {
			k.unacked[i] = f
			return
		}
	}
	if len(k.unacked) >= maxUnacked {
		k.unacked = append(k.unacked[:0], k.unacked[1:]...)
	}
	k.unacked = append(k.unacked, f)
}

// acked forgets the downlink the device ACKed, and reports whether it was one the gateway kept:
// such an ACK may take the lane's reserve, since there is one per downlink sent.
func (c *conn) acked(seq int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.cold
	if k == nil {
		return false
	}
	found := false
	for i, f := range k.unacked {
		if f.Seq == seq {
			k.unacked = append(k.unacked[:i], k.unacked[i+1:]...)
			found = true
			break
		}
	}
	if len(k.unacked) == 0 {
		c.trimColdLocked() // the empty slice goes with the connCold, for the next one (pushpool.go)
	}
	return found
}

// heartbeatSent reports whether this heartbeat is the connection's only one in flight, which may
// take the lane's reserve: then a flood of uplinks can never starve a device's heartbeats into a
// heartbeat timeout.
func (c *conn) heartbeatSent() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hbInFlight {
		return false
	}
	c.hbInFlight = true
	return true
}

// heartbeatAnswered notes a HeartbeatAck (or a heartbeat that was never forwarded).
func (c *conn) heartbeatAnswered() {
	c.mu.Lock()
	c.hbInFlight = false
	c.mu.Unlock()
}

// forwarded notes an uplink handed to the state server, to answer it if the state server is lost;
// the gateway counts it in flight until it is answered.
func (c *conn) forwarded(seq, readAt int64) {
	c.mu.Lock()
	if k := c.coldLocked(); len(k.upPending) < maxPendingUplinks {
		k.upPending = append(k.upPending, pendingUplink{seq: seq, readAt: readAt})
		c.gw.upInFlight.Add(1)
	}
	c.mu.Unlock()
}

// unforwarded takes back forwarded(seq) for an uplink its lane refused.
func (c *conn) unforwarded(seq int64) {
	c.mu.Lock()
	c.dropPendingLocked(seq)
	c.mu.Unlock()
}

func (c *conn) dropPendingLocked(seq int64) (readAt int64) {
	k := c.cold
	if k == nil {
		return 0
	}
	for i, p := range k.upPending {
		if p.seq == seq {
			readAt = p.readAt
			k.upPending = append(k.upPending[:i], k.upPending[i+1:]...)
			c.gw.upInFlight.Add(-1)
			break
		}
	}
	if len(k.upPending) == 0 {
		k.upPending = k.upPending[:0] // kept for the next uplink: a device that sends keeps its connCold
		c.trimColdLocked()
	}
	return readAt
}

// answeredLocked notes the state server's UplinkAck, and returns when its uplink was read (0 if
// not known). c.mu is held.
func (c *conn) answeredLocked(f *fleet.DownFrame) (readAt int64) {
	readAt = c.dropPendingLocked(f.Seq)
	// The state server decided on this seq (delivered, a duplicate, or refused): a resend with it
	// must not be delivered again by the next one.
	if len(f.Body) >= 2 {
		if code := protocol.Code(binary.BigEndian.Uint16(f.Body)); code == protocol.CodeOK || code == protocol.CodeDuplicate {
			c.upAnswered = max(c.upAnswered, f.Seq)
		}
	}
	return readAt
}

// watchState pings one state server until its link is dropped.
func (gw *Gateway) watchState(l *stateLink) {
	interval := gw.cfg.StatePingInterval
	t := time.NewTicker(interval)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-l.gone:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*interval)
		resp, err := l.cli.Ping(ctx, &fleet.PingRequest{GatewayId: gw.cfg.ID, Proof: gw.proof}, callopt.WithRPCTimeout(2*interval))
		cancel()
		if err != nil {
			missed++
			switch {
			case rpc.Refused(err):
				// Nothing listens there: no need to wait for more misses.
				missed = max(missed, gw.cfg.StatePingsLost)
				gw.stateLost(l, "nothing listens at its address any more")
			case missed == gw.cfg.StatePingsLost:
				gw.stateLost(l, "no answer to "+strconv.Itoa(missed)+" pings: "+err.Error())
			}
			continue
		}
		missed = 0
		prev := l.bootOf()
		l.boot.Store(&resp.Boot)
		switch {
		case prev != "" && resp.Boot != prev:
			// Restarted: it is live, and holds nothing. Its connections move to it again (or, as
			// the dids hash, to the others).
			l.lost.Store(false)
			gw.noteServable()
			gw.metrics.statesLost.Add(1)
			gw.log.Warn("state server restarted: moving its connections back", "state", l.id)
			gw.moveConns(l)
		case l.lost.Load():
			// It answers again: it was slow, not dead. New logins may go to it; the connections
			// moved away stay where they are (it forgets them when it next writes to them).
			l.lost.Store(false)
			gw.noteServable()
			gw.log.Warn("state server answers again", "state", l.id)
		}
	}
}

// stateLost stops sending new devices to l and moves its connections to the others.
func (gw *Gateway) stateLost(l *stateLink, why string) {
	if l.lost.Swap(true) {
		return
	}
	gw.noteServable()
	gw.metrics.statesLost.Add(1)
	gw.log.Warn("state server lost: moving its connections", "state", l.id, "why", why)
	gw.moveConns(l)
}

// moveConns moves every connection l holds to the state server its did hashes to now (l itself
// when it restarted). A connection whose Login or Resume was pending there is closed with 1210:
// the device logs in again. With no state server left, every one is closed with 1210.
func (gw *Gateway) moveConns(l *stateLink) {
	moved, closed := 0, 0
	gw.conns.each(func(c *conn) {
		c.mu.Lock()
		if c.link != l || c.closed || c.state == stateClosing {
			c.mu.Unlock()
			return
		}
		to := pick(gw.links.List(), c.did())
		if c.state != stateLoggedIn || to == nil {
			c.mu.Unlock()
			closed++
			c.closeWith(protocol.CodeStateLost, "the state server holding the connection was lost; log in again")
			return
		}
		c.link = to
		ev := &fleet.UpEvent{
			ConnId: int64(c.id), Kind: fleet.UpKind_ADOPTED, AppId: c.appID(), Did: c.did(), Uid: c.uid,
			RemoteAddr: remoteAddr(c.nc), Sessions: append([]string(nil), c.sessionsLocked()...),
			Seq: c.upAnswered, DownSeq: c.downSeq, Unacked: c.unackedLocked(),
		}
		pending := c.upPendingLocked()
		if c.cold != nil {
			c.cold.unacked, c.cold.upPending = nil, nil
			c.trimColdLocked()
		}
		c.hbInFlight = false
		gw.upInFlight.Add(-int64(len(pending)))
		// Queued under c.mu: the connection's next frames read the new link after this and queue
		// behind the event on the same lane.
		err := to.batch.AddReserved(c.id, ev)
		c.mu.Unlock()
		if err != nil {
			closed++
			c.closeWith(protocol.CodeStateLost, "the state server holding the connection was lost; log in again")
			return
		}
		moved++
		for _, p := range pending {
			ack := (&protocol.Ack{Code: protocol.CodeStateLost, Message: "the state server was lost with this uplink: it may or may not have been delivered"}).Append(nil)
			c.enqueue(&fleet.DownFrame{ConnId: int64(c.id), Signal: int8(protocol.SigUplinkAck), Seq: p.seq, Body: ack})
		}
	})
	gw.metrics.connsMoved.Add(int64(moved))
	gw.log.Info("connections of a lost state server moved", "state", l.id, "moved", moved, "closed", closed)
}

// rerouteClosed sends the CLOSED events a lost state server did not take to the state servers
// their dids hash to now, marked orphan with the connection's identity, so that the business
// hears DISCONNECTED for them.
func (gw *Gateway) rerouteClosed(events []*fleet.UpEvent) {
	for _, ev := range events {
		if ev.Kind != fleet.UpKind_CLOSED || ev.AppId == "" {
			continue
		}
		to := pick(gw.links.List(), ev.Did)
		if to == nil {
			continue
		}
		ev.Orphan = true
		if err := to.batch.AddReserved(uint64(ev.ConnId), ev); err != nil {
			gw.log.Warn("could not report a closed connection of a lost state server", "did", ev.Did, "err", err)
		}
	}
}
