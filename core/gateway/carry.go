package gateway

import (
	"github.com/cloudwego/netpoll"

	"github.com/platoim/plato/sdk/protocol"
)

// A device read never waits for the rest of a frame. A read that waited held a goroutine (one of
// netpoll's tasks) for every device that stopped mid-frame, up to gateway.read_timeout each: a
// peer that opens many connections and sends half a header on each held that many goroutines.
// What starts a frame and does not complete it is moved out of netpoll's buffer into the
// connection's carry (connHandoff.carry), and the next reads add to it and frame from there
// (readCarried), as a connection adopted from an upgrade's old process does with the bytes that
// process had read. The frame at the head of the carry must complete within gateway.read_timeout,
// as netpoll's read timeout bounded the wait before: a device that stops mid-frame is closed then.

// readCarried reads a device connection: while carried bytes start its next frame (or, on
// WebSocket, its handshake), what arrives is added to them and framed from there; otherwise it is
// read as any other of its transport.
func (gw *Gateway) readCarried(c *conn, nc netpoll.Connection) error {
	c.mu.Lock()
	h := c.handoffLocked()
	// Also while the connection is being passed: what arrives goes behind the carried bytes, and
	// the close callback takes them all (detachedInput).
	pending := h != nil && h.carry != nil
	c.mu.Unlock()
	if !pending {
		if c.ws != nil {
			return gw.readWS(c, nc)
		}
		return gw.readFrames(c, nc)
	}
	defer gw.guard(c, "read")
	r := nc.Reader()
	if n := r.Len(); n > 0 {
		b, err := r.Next(n)
		if err != nil {
			return gw.readFailed(c, err)
		}
		c.mu.Lock()
		h.carry = append(h.carry, b...)
		c.mu.Unlock()
	}
	_ = r.Release()
	gw.drainInput(c)
	return nil
}

// carryRest moves what is left in r, the start of a frame not complete yet, into c's carry, and
// starts the frame's read timeout. c has nothing carried (readFrames runs only then).
func (gw *Gateway) carryRest(c *conn, r netpoll.Reader) error {
	b, err := r.Next(r.Len())
	if err != nil {
		return gw.readFailed(c, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.state == stateClosing {
		return nil
	}
	k := c.coldLocked()
	if k.handoff == nil {
		k.handoff = &connHandoff{}
	}
	h := k.handoff
	h.carry = append(h.carry, b...)
	if h.partial == nil {
		h.partial = gw.wheel.AfterFunc(gw.cfg.ReadTimeout, func() { gw.partialTimedOut(c) })
	}
	return nil
}

// partialTimedOut closes c when the frame at the head of its carry did not complete within
// gateway.read_timeout, as a read that waited for it failed before.
func (gw *Gateway) partialTimedOut(c *conn) {
	c.mu.Lock()
	h := c.handoffLocked()
	stalled := h != nil && h.carry != nil && h.partial != nil && !c.closed && !c.handingLocked()
	if stalled {
		h.partial = nil
	}
	c.mu.Unlock()
	if stalled {
		gw.log.Debug("closing a connection whose frame did not complete", "conn", c.id, "within", gw.cfg.ReadTimeout)
		c.abort(protocol.CodeConnectionLost)
	}
}

// carryConsumedLocked follows a frame taken off the head of h's carry: the next frame gets the
// whole read timeout, and once nothing is carried the timer stops and an ordinary connection
// forgets its handoff (a connection being passed keeps it). c.mu is held.
func (c *conn) carryConsumedLocked(h *connHandoff) {
	if h.carry != nil {
		if h.partial != nil {
			h.partial.Reset(c.gw.cfg.ReadTimeout)
		}
		return
	}
	if h.partial != nil {
		h.partial.Stop()
		h.partial = nil
	}
	if c.cold != nil && c.cold.handoff == h && !c.cold.handing && h.detached == nil {
		c.cold.handoff = nil
		c.trimColdLocked()
	}
}

// lockCarry returns c's handoff and the bytes it still carries with c.mu held; or nil, with c.mu
// released, when nothing is left to act on: nothing carried, or the connection closing (what it
// carried is then forgotten, as a read skips the input of a closing connection).
func (c *conn) lockCarry() (*connHandoff, []byte) {
	c.mu.Lock()
	h := c.handoffLocked()
	if h == nil || h.carry == nil {
		c.mu.Unlock()
		return nil, nil
	}
	if c.state == stateClosing || c.closed {
		h.carry = nil
		c.carryConsumedLocked(h)
		c.mu.Unlock()
		return nil, nil
	}
	return h, h.carry
}

// drainCarry acts on every complete frame at the start of c's carried bytes, and keeps the rest.
func (gw *Gateway) drainCarry(c *conn) {
	for {
		h, carry := c.lockCarry()
		if h == nil {
			return
		}
		if len(carry) < protocol.HeaderLen {
			c.mu.Unlock()
			return
		}
		hd, err := protocol.ParseHeader(carry[:protocol.HeaderLen], gw.cfg.MaxBody)
		if err != nil {
			h.carry = nil
			c.carryConsumedLocked(h)
			c.mu.Unlock()
			code, ok := protocol.CodeOf(err)
			if !ok {
				code = protocol.CodeMalformed
			}
			gw.metrics.protocolErrors.Add(int(code))
			c.closeWith(code, err.Error())
			return
		}
		n := protocol.HeaderLen + int(hd.Length)
		if len(carry) < n {
			c.mu.Unlock()
			return
		}
		h.carry = carry[n:]
		if len(h.carry) == 0 {
			h.carry = nil
		}
		c.carryConsumedLocked(h)
		c.mu.Unlock()
		gw.metrics.bytesIn.Add(int64(n))
		gw.metrics.framesIn.Add(uint8(hd.Signal))
		gw.onFrame(c, hd, carry[protocol.HeaderLen:n:n])
	}
}
