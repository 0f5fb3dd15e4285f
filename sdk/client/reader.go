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

// readLoop reads every frame from the server until the connection ends; end has been called when
// it returns.
func (cn *conn) readLoop() {
	silence := deadIntervals * cn.interval
	var buf []byte
	for {
		cn.nc.SetReadDeadline(time.Now().Add(silence))
		f, nbuf, err := protocol.ReadFrame(cn.br, cn.c.cfg.MaxBody, buf)
		buf = nbuf
		if err != nil {
			cn.readFailed(err, silence)
			return
		}
		if err := cn.handle(f); err != nil {
			if !errors.Is(err, errStop) {
				cn.abort(err)
			}
			return
		}
	}
}

func (cn *conn) readFailed(err error, silence time.Duration) {
	var ne net.Error
	switch {
	case cn.c.closing.Load():
		cn.end(nil)
	case errors.As(err, new(*protocol.Error)):
		cn.abort(err) // a header we cannot parse: tell the server why we hang up, as it would
	case errors.As(err, &ne) && ne.Timeout():
		cn.end(fmt.Errorf("nothing heard from %s for %s: %w", cn.endpoint, silence, err))
	default:
		cn.end(fmt.Errorf("reading from %s: %w", cn.endpoint, err))
	}
}

// abort sends Close with err's code (best effort) and ends the connection with err.
func (cn *conn) abort(err error) {
	if code, ok := protocol.CodeOf(err); ok {
		body := (&protocol.Close{Code: code}).Append(nil)
		cn.write(protocol.SigClose, 0, body)
	}
	cn.end(err)
}

func (cn *conn) handle(f protocol.Frame) error {
	switch f.Signal {
	case protocol.SigHeartbeatAck:
		return nil // reading it already reset the silence deadline
	case protocol.SigUplinkAck:
		var ack protocol.Ack
		if err := ack.Decode(f.Body); err != nil {
			return err
		}
		cn.c.resolve(f.Seq, ack)
		return nil
	case protocol.SigDownlink:
		return cn.downlink(f)
	case protocol.SigClose:
		var cl protocol.Close
		if err := cl.Decode(f.Body); err != nil {
			return err
		}
		cn.end(&protocol.Error{Code: cl.Code, Msg: cl.Message})
		return errStop
	case protocol.SigRedirect:
		var r protocol.Redirect
		if err := r.Decode(f.Body); err != nil {
			return err
		}
		err := &protocol.Error{Code: r.Code, Msg: "redirected to " + strings.Join(r.Endpoints, ", ")}
		if !cn.c.cfg.Reconnect || len(r.Endpoints) == 0 {
			// Without Reconnect, dialing the new endpoints is the application's call, like any reconnect.
			cn.end(err)
			return errStop
		}
		// Nothing more is read here: what the server sends from now on, it resends after the Resume.
		cn.redirect = &r
		cn.endWith(err, false)
		return errStop
	default:
		cn.log.Debug("plato frame ignored", "frame", f.String())
		return nil
	}
}

// downlink delivers a downlink once and always acknowledges it, so the server stops retransmitting.
func (cn *conn) downlink(f protocol.Frame) error {
	var d protocol.Downlink
	if err := d.Decode(f.Body); err != nil {
		return err
	}
	c := cn.c
	retransmit := f.Flags&protocol.FlagRetransmit != 0
	broadcast := f.Flags&protocol.FlagBroadcast != 0
	if !(retransmit || broadcast) || !c.seen.has(d.MsgID) {
		m := Message{Seq: f.Seq, MsgID: d.MsgID, Payload: append([]byte(nil), d.Payload...), Retransmit: retransmit, Broadcast: broadcast}
		if c.cfg.OnDownlink != nil {
			c.cfg.OnDownlink(m)
		} else {
			select {
			case c.msgs <- m:
			case <-cn.done:
				// Not acknowledged nor counted in lastDown: the server delivers it again after a
				// Resume or a reconnect, and it must not then be taken for a duplicate.
				return errStop
			}
		}
		c.seen.add(d.MsgID)
	}
	// A broadcast's seq is a msg_id, outside the connection's sequence that Resume counts in.
	if !broadcast && f.Seq > cn.lastDown {
		cn.lastDown = f.Seq
	}
	// A broadcast's ACK carries the broadcast flag: its seq is a msg_id, not the connection's.
	cn.wmu.Lock()
	err := cn.writeFlagsLocked(protocol.SigDownlinkAck, f.Flags&protocol.FlagBroadcast, f.Seq, nil)
	cn.wmu.Unlock()
	if err != nil {
		return errStop // the failed write already ended the connection
	}
	return nil
}
