package gateway

import (
	"runtime/debug"

	"github.com/platoim/plato/sdk/protocol"
)

// guard is deferred first in every callback that outside input reaches: netpoll's connect, read
// and close callbacks and the NATS broadcast callback. A panic there is a bug a device (or a
// publisher) can trigger at will, so it must cost that one connection, never the gateway: it is
// logged with its stack, counted, and the connection (when there is one) is closed with 1307.
func (gw *Gateway) guard(c *conn, where string) {
	r := recover()
	if r == nil {
		return
	}
	gw.metrics.panics.Add(1)
	var id uint64
	if c != nil {
		id = c.id
	}
	gw.log.Error("recovered from a panic; closing the connection", "in", where, "conn", id, "panic", r, "stack", string(debug.Stack()))
	if c != nil {
		c.mu.Lock()
		if c.reason == 0 {
			c.reason = protocol.CodeInternal
		}
		c.mu.Unlock()
		c.closeWith(protocol.CodeInternal, "internal error")
	}
}
