package client

import "fmt"

// adopt makes next the current connection in old's place: from then on Sends go to next, and its
// reader delivers the downlinks. upSeq is old's last uplink seq.
func (c *Client) adopt(old, next *conn, resumed bool, upSeq uint64) {
	// Held until the pending uplinks are resent, so a new Send gets a seq after theirs on the wire.
	next.umu.Lock()
	c.mu.Lock()
	if c.closing.Load() {
		// Close ran between the handshake and here, and found old: it is up to us to leave.
		c.mu.Unlock()
		next.umu.Unlock()
		next.goodbye()
		c.finish(nil)
		return
	}
	c.cur = next
	c.mu.Unlock()
	close(old.superseded)

	kind := Resumed
	if resumed {
		// The server carries on with old's sequences (§11.1 of docs/protocol.md).
		next.upSeq, next.lastDown = upSeq, old.lastDown
	} else {
		// A new connection: the server will not answer for uplinks sent on the old one.
		kind = Connected
		reason := old.err
		c.failPending(func(u *uplink) error {
			return fmt.Errorf("waiting for uplink ack %d: %w: the connection was lost (%w) and could not be resumed", u.seq, ErrOutcomeUnknown, reason)
		})
	}
	next.log.Info("plato reconnected", "resumed", resumed, "prev_conn_id", old.id)
	// Reported before next's reader starts, so its Disconnected cannot come first.
	c.report(State{Kind: kind, Endpoint: next.endpoint, ConnID: next.id})
	c.start(next)
	if resumed {
		c.resend(next)
	}
	next.umu.Unlock()
}
