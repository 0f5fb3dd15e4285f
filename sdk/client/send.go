package client

import (
	"context"
	"fmt"
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

// Send sends payload as the next uplink and waits until the business server accepted it (nil) or
// refused it (a *protocol.Error with the code: 1301, 1302, 1304 or a business code 2000-2999).
// It also fails after Config.AckTimeout (ErrAckTimeout), when ctx is done, or when the client ends
// (with Err's error, or ErrClosed). Several Sends may be in flight at once.
//
// With Config.Reconnect, a Send while the client reconnects waits for the new connection (as long as
// ctx allows), and one whose connection dropped before its ack waits for the next: after a Resume it
// is sent again with the same seq and succeeds or fails on the answer; after a Login it fails with
// ErrOutcomeUnknown. The ack timeout runs only while the uplink is on a live connection.
func (c *Client) Send(ctx context.Context, payload []byte) error {
	if len(payload) > c.cfg.MaxBody {
		return &protocol.Error{Code: protocol.CodeFrameTooLarge, Msg: fmt.Sprintf("payload of %d bytes exceeds the maximum of %d", len(payload), c.cfg.MaxBody)}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sending uplink: %w", err)
	}
	u := newUplink(payload, c.cfg.Reconnect)
	cn, err := c.sendOn(ctx, u)
	if err != nil {
		return err
	}
	return c.awaitAck(ctx, u, cn)
}

// sendOn writes u on the current connection, waiting for a new one while the client reconnects.
func (c *Client) sendOn(ctx context.Context, u *uplink) (*conn, error) {
	for {
		cn := c.current()
		wrote, err := cn.sendUplink(u)
		switch {
		case wrote && (err == nil || c.cfg.Reconnect):
			// With Reconnect a failed write leaves u pending: it may be on the wire, and the next
			// connection resends or fails it.
			return cn, nil
		case wrote:
			c.forget(u)
			return nil, fmt.Errorf("sending uplink %d: %w", u.seq, err)
		}
		select {
		case <-cn.superseded:
		case <-c.done:
			return nil, fmt.Errorf("sending uplink: %w", c.endedErr())
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a connection to send the uplink on: %w", ctx.Err())
		}
	}
}

// sendUplink gives u the connection's next seq and writes it, unless the connection already ended
// (wrote is false then).
func (cn *conn) sendUplink(u *uplink) (wrote bool, err error) {
	cn.umu.Lock()
	defer cn.umu.Unlock()
	if cn.ended() {
		return false, nil
	}
	cn.upSeq++
	u.seq = cn.upSeq
	// Registered before the write, so an ack racing back is never missed.
	cn.c.addPending(u)
	return true, cn.write(protocol.SigUplink, u.seq, u.payload)
}

// awaitAck waits for u's outcome. The ack timer runs while u is on a live connection: parked
// between connections, u waits for the one that resends or fails it.
func (c *Client) awaitAck(ctx context.Context, u *uplink, cn *conn) error {
	timer := time.NewTimer(c.cfg.AckTimeout)
	defer timer.Stop()
	for {
		var lost <-chan struct{}
		var expired <-chan time.Time
		if cn != nil {
			lost, expired = cn.done, timer.C
		}
		select {
		case err := <-u.result:
			return err
		case cn = <-u.moved:
			timer.Reset(c.cfg.AckTimeout)
		case <-lost:
			cn = nil
		case <-expired:
			c.forget(u)
			return fmt.Errorf("waiting for uplink ack %d: %w", u.seq, ErrAckTimeout)
		case <-ctx.Done():
			c.forget(u)
			return fmt.Errorf("waiting for uplink ack %d: %w", u.seq, ctx.Err())
		}
	}
}
