package gateway

import (
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/protocol"
)

// Answers to the frames of one read event leave in one write (docs/performance.md, "Overload").
// Under load a device's frames arrive several per read; each answered at once (an UplinkAck 1303,
// a rate-limit refusal) started its own flush, and so cost its own sendmsg, as dear as the read:
// refusing cost nearly what serving does. While a read runs, c.holding keeps frames queued for c
// from starting a flush; the read starts one when it ends, or before it may wait for the rest of
// a partial frame, so that no answer waits on the device.

// holdLocked makes what is queued for c wait for the end of the read. c.mu is held.
func (c *conn) holdLocked() { c.holding = true }

// releaseFlushes ends the hold: one flush for everything queued meanwhile.
func (c *conn) releaseFlushes() {
	c.mu.Lock()
	if !c.holding {
		c.mu.Unlock()
		return
	}
	c.holding = false
	start := len(c.queue) > 0 && !c.flushing && !c.handingLocked() && !c.closed
	if start {
		c.flushing = true
	}
	c.mu.Unlock()
	if start {
		c.flushHere()
	}
}

// overloadedAck is the body of every UplinkAck 1303 the gateway sends itself: encoded once and
// shared, read-only (the flush copies it into the socket buffer).
var overloadedAck = (&protocol.Ack{Code: protocol.CodeOverloaded, Message: "overloaded: retry later"}).Append(nil)

// refusalFrame is the UplinkAck answering uplink seq of c with body.
func refusalFrame(c *conn, seq uint64, body []byte) *fleet.DownFrame {
	return &fleet.DownFrame{ConnId: int64(c.id), Signal: int8(protocol.SigUplinkAck), Seq: int64(seq), Body: body}
}
