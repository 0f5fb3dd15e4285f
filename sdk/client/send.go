package client

import (
	"context"
	"fmt"
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

// Send sends payload as the next uplink and waits until the business server accepted it (nil) or
// refused it (a *protocol.Error with the code: 1301, 1302, 1304 or a business code 2000-2999).
// It also fails when the connection ends (with Err's error, or ErrClosed), after Config.AckTimeout
// (ErrAckTimeout), or when ctx is done. Several Sends may be in flight at once.
func (c *Client) Send(ctx context.Context, payload []byte) error {
	if len(payload) > c.cfg.MaxBody {
		return &protocol.Error{Code: protocol.CodeFrameTooLarge, Msg: fmt.Sprintf("payload of %d bytes exceeds the maximum of %d", len(payload), c.cfg.MaxBody)}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sending uplink: %w", err)
	}
	ch := make(chan protocol.Ack, 1)
	c.wmu.Lock()
	c.upSeq++
	seq := c.upSeq
	// Registered before the write, so an ack racing back is never missed.
	c.pmu.Lock()
	c.pending[seq] = ch
	c.pmu.Unlock()
	err := c.writeLocked(protocol.SigUplink, seq, payload)
	c.wmu.Unlock()
	if err != nil {
		c.forget(seq)
		return fmt.Errorf("sending uplink %d: %w", seq, err)
	}

	timer := time.NewTimer(c.cfg.AckTimeout)
	defer timer.Stop()
	select {
	case ack := <-ch:
		return ackErr(ack)
	case <-c.done:
		c.forget(seq)
		select {
		case ack := <-ch: // the ack and the end raced; the ack is the better answer
			return ackErr(ack)
		default:
		}
		return fmt.Errorf("waiting for uplink ack %d: %w", seq, c.endedErr())
	case <-timer.C:
		c.forget(seq)
		return fmt.Errorf("waiting for uplink ack %d: %w", seq, ErrAckTimeout)
	case <-ctx.Done():
		c.forget(seq)
		return fmt.Errorf("waiting for uplink ack %d: %w", seq, ctx.Err())
	}
}

func ackErr(ack protocol.Ack) error {
	if ack.Code != protocol.CodeOK {
		return &protocol.Error{Code: ack.Code, Msg: ack.Message}
	}
	return nil
}

func (c *Client) forget(seq uint64) {
	c.pmu.Lock()
	delete(c.pending, seq)
	c.pmu.Unlock()
}

// resolve hands an UplinkAck to the Send waiting for it; acks for abandoned Sends are dropped.
func (c *Client) resolve(seq uint64, ack protocol.Ack) {
	c.pmu.Lock()
	ch := c.pending[seq]
	delete(c.pending, seq)
	c.pmu.Unlock()
	if ch != nil {
		ch <- ack
	}
}
