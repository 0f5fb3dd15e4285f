package client

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

// errStop ends the read loop after the connection was ended on purpose.
var errStop = errors.New("stop reading")

// readLoop reads every frame from the server until the connection ends.
func (c *Client) readLoop() {
	defer c.wg.Done()
	defer close(c.msgs)
	silence := deadIntervals * c.interval
	var buf []byte
	for {
		c.conn.SetReadDeadline(time.Now().Add(silence))
		f, nbuf, err := protocol.ReadFrame(c.br, c.cfg.MaxBody, buf)
		buf = nbuf
		if err != nil {
			c.readFailed(err, silence)
			return
		}
		if err := c.handle(f); err != nil {
			if !errors.Is(err, errStop) {
				c.abort(err)
			}
			return
		}
	}
}

func (c *Client) readFailed(err error, silence time.Duration) {
	var ne net.Error
	switch {
	case c.closing.Load():
		c.end(nil)
	case errors.As(err, new(*protocol.Error)):
		c.abort(err) // a header we cannot parse: tell the server why we hang up, as it would
	case errors.As(err, &ne) && ne.Timeout():
		c.end(fmt.Errorf("nothing heard from %s for %s: %w", c.endpoint, silence, err))
	default:
		c.end(fmt.Errorf("reading from %s: %w", c.endpoint, err))
	}
}

// abort sends Close with err's code (best effort) and ends the connection with err.
func (c *Client) abort(err error) {
	if code, ok := protocol.CodeOf(err); ok {
		body := (&protocol.Close{Code: code}).Append(nil)
		c.write(protocol.SigClose, 0, body)
	}
	c.end(err)
}

func (c *Client) handle(f protocol.Frame) error {
	switch f.Signal {
	case protocol.SigHeartbeatAck:
		return nil // reading it already reset the silence deadline
	case protocol.SigUplinkAck:
		var ack protocol.Ack
		if err := ack.Decode(f.Body); err != nil {
			return err
		}
		c.resolve(f.Seq, ack)
		return nil
	case protocol.SigDownlink:
		return c.downlink(f)
	case protocol.SigClose:
		var cl protocol.Close
		if err := cl.Decode(f.Body); err != nil {
			return err
		}
		c.end(&protocol.Error{Code: cl.Code, Msg: cl.Message})
		return errStop
	case protocol.SigRedirect:
		var r protocol.Redirect
		if err := r.Decode(f.Body); err != nil {
			return err
		}
		// Dialing the new endpoints is the application's call, like any reconnect.
		c.end(&protocol.Error{Code: r.Code, Msg: "redirected to " + strings.Join(r.Endpoints, ", ")})
		return errStop
	default:
		c.cfg.Logger.Debug("plato frame ignored", "frame", f.String())
		return nil
	}
}

// downlink delivers a downlink once and always acknowledges it, so the server stops retransmitting.
func (c *Client) downlink(f protocol.Frame) error {
	var d protocol.Downlink
	if err := d.Decode(f.Body); err != nil {
		return err
	}
	retransmit := f.Flags&protocol.FlagRetransmit != 0
	broadcast := f.Flags&protocol.FlagBroadcast != 0
	if !(retransmit || broadcast) || !c.seen.has(d.MsgID) {
		c.seen.add(d.MsgID)
		m := Message{Seq: f.Seq, MsgID: d.MsgID, Payload: append([]byte(nil), d.Payload...), Retransmit: retransmit, Broadcast: broadcast}
		if c.cfg.OnDownlink != nil {
			c.cfg.OnDownlink(m)
		} else {
			select {
			case c.msgs <- m:
			case <-c.done:
				return errStop // not acknowledged: the server delivers it again after a reconnect
			}
		}
	}
	// A broadcast's ACK carries the broadcast flag: its seq is a msg_id, not the connection's.
	c.wmu.Lock()
	err := c.writeFlagsLocked(protocol.SigDownlinkAck, f.Flags&protocol.FlagBroadcast, f.Seq, nil)
	c.wmu.Unlock()
	if err != nil {
		return errStop // the failed write already ended the connection
	}
	return nil
}
