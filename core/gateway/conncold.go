package gateway

import (
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/internal/timewheel"
)

// connCold is what a connection holds only at times: before its Login (the login timer), while in
// sessions, with uplinks or at-least-once downlinks unanswered, once it sent an uplink (its limits)
// and while it is passed to a new process. An idle, logged-in device that heartbeats needs none of
// it, and a million of them each save the 96 bytes it takes out of conn (with the identity in one
// key, ident.go, conn's size class drops from 288 to 176 bytes: TestConnStaysSmall). It is made on first use and dropped once empty, all
// under the conn's mu; code that keeps a pointer of it past c.mu reads only fields that keep it
// alive (handoff while handing, the carried bytes).
type connCold struct {
	loginTimer *timewheel.Timer
	// sessions are the sessions this connection is in (index.go).
	sessions []string
	// What the next state server needs if this one is lost (failover.go): the uplinks forwarded
	// and not answered yet, and the at-least-once downlinks not ACKed yet.
	upPending []pendingUplink
	unacked   []*fleet.DownFrame
	// handoff is the connection's part in a handover (handover.go).
	handoff *connHandoff
	// limits are the device's token buckets, used from its first uplink (limits.go): inline, as
	// a device that sends uplinks keeps its connCold anyway.
	limits deviceLimits
	// handing is set while the connection is passed to a new process (handover.go): no write
	// starts.
	handing bool
}

// coldLocked returns c's connCold, made if c has none. c.mu is held.
func (c *conn) coldLocked() *connCold {
	if c.cold == nil {
		c.cold = c.gw.newColdLocked()
	}
	return c.cold
}

// trimColdLocked drops c's connCold once nothing is left in it: a device's limits count as used
// once they admitted an uplink (a fresh bucket is a full one, so forgetting unused ones changes
// nothing). c.mu is held.
func (c *conn) trimColdLocked() {
	k := c.cold
	if k == nil || k.loginTimer != nil || k.sessions != nil || len(k.upPending) > 0 || len(k.unacked) > 0 ||
		k.handoff != nil || k.handing || k.limits != (deviceLimits{}) {
		return
	}
	c.cold = nil
	// Nothing else holds k: a handover keeps its pointer only while handing, and the rest read
	// it under c.mu.
	c.gw.freeCold(k)
}

// The readers below take c.mu held and a conn without connCold as an empty one.

func (c *conn) sessionsLocked() []string {
	if c.cold == nil {
		return nil
	}
	return c.cold.sessions
}

func (c *conn) upPendingLocked() []pendingUplink {
	if c.cold == nil {
		return nil
	}
	return c.cold.upPending
}

func (c *conn) unackedLocked() []*fleet.DownFrame {
	if c.cold == nil || len(c.cold.unacked) == 0 {
		return nil
	}
	return c.cold.unacked
}

func (c *conn) handoffLocked() *connHandoff {
	if c.cold == nil {
		return nil
	}
	return c.cold.handoff
}

func (c *conn) handingLocked() bool { return c.cold != nil && c.cold.handing }

// takeLoginTimerLocked removes c's login timer and returns it, to be stopped once c.mu is released.
func (c *conn) takeLoginTimerLocked() *timewheel.Timer {
	if c.cold == nil {
		return nil
	}
	lt := c.cold.loginTimer
	c.cold.loginTimer = nil
	c.trimColdLocked()
	return lt
}
