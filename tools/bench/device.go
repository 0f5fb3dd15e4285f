package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

// device is one simulated device: a plain TCP socket speaking docs/protocol.md, one reader goroutine,
// and writes under a mutex. It is deliberately leaner than sdk/client (no channels, no per-message
// allocation, no timer of its own) so one process drives thousands; the summary's
// client_bytes_per_conn and client_cpu_cores say what it costs.
type device struct {
	f      *fleet
	idx    int // global device index
	did    string
	nc     net.Conn
	br     *bufio.Reader
	connID uint64
	hb     time.Duration // heartbeat interval

	mu    sync.Mutex // guards the fields below and every write to nc
	wbuf  []byte
	pbuf  []byte
	ring  sendRing
	hbSeq uint64

	lastSend atomic.Int64 // fleet clock, ns: heartbeats go out when this is old
	up       atomic.Bool  // logged in and not closed
	// dlNext numbers the downlinks pushed to this device (pusher side); seen is what arrived
	// (reader side); dlWake tells a closed-loop pusher that one arrived.
	dlNext atomic.Uint64
	seen   seenSet
	rounds seenSet
	dlWake chan struct{}
}

// readBuf is small on purpose: answers are 22-40 bytes, and it is paid once per connection.
const readBuf = 1024

// loginTimeout bounds dial plus login of one device.
const loginTimeout = 10 * time.Second

// login dials endpoint from the fleet's source address and logs in. The returned error names the
// failure class ("dial", "login code 1303") for the connect report.
func (d *device) login(ctx context.Context, endpoint, tok string) error {
	login := &protocol.Login{AppID: d.f.spec.AppID, DID: d.did, UID: d.did, Token: tok, Platform: "plato-bench/1"}
	nc, br, ack, err := dialLogin(ctx, d.f.local, endpoint, login)
	if err != nil {
		return err
	}
	d.nc, d.br, d.connID = nc, br, ack.ConnID
	d.hb = time.Duration(ack.HeartbeatMs) * time.Millisecond
	if d.hb <= 0 {
		d.hb = 30 * time.Second // protocol.md §9: a device that gets 0 uses 30 s
	}
	if d.f.spec.Heartbeat > 0 {
		d.hb = d.f.spec.Heartbeat
	}
	d.lastSend.Store(d.f.now())
	d.up.Store(true)
	return nil
}

// dialLogin dials endpoint from local (nil: any address) and sends login, within loginTimeout. It
// returns the logged-in connection and its reader, or an error that names the failure class
// ("dial: ...", "login code 1303").
func dialLogin(ctx context.Context, local *net.TCPAddr, endpoint string, login *protocol.Login) (net.Conn, *bufio.Reader, protocol.LoginAck, error) {
	dialer := net.Dialer{LocalAddr: local}
	if local != nil {
		dialer.Control = dialControl
	}
	return dialLoginWith(ctx, dialer, endpoint, login)
}

// dialLoginWith is dialLogin with a dialer of the caller's (socket options set before connect).
func dialLoginWith(ctx context.Context, dialer net.Dialer, endpoint string, login *protocol.Login) (net.Conn, *bufio.Reader, protocol.LoginAck, error) {
	ctx, cancel := context.WithTimeout(ctx, loginTimeout)
	defer cancel()
	var nc net.Conn
	var err error
	if isWSEndpoint(endpoint) {
		nc, err = dialWS(ctx, dialer, endpoint)
	} else {
		nc, err = dialer.DialContext(ctx, "tcp", endpoint)
	}
	if err != nil {
		return nil, nil, protocol.LoginAck{}, fmt.Errorf("dial: %s", errClass(err))
	}
	dl, _ := ctx.Deadline()
	_ = nc.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(err error) (net.Conn, *bufio.Reader, protocol.LoginAck, error) {
		nc.Close()
		return nil, nil, protocol.LoginAck{}, err
	}
	if _, err := nc.Write(protocol.AppendFrame(nil, protocol.SigLogin, 0, 1, login.Append(nil))); err != nil {
		return fail(fmt.Errorf("write login: %s", errClass(err)))
	}
	br := bufio.NewReaderSize(nc, readBuf)
	for {
		f, _, err := protocol.ReadFrame(br, protocol.DefaultMaxBody, nil)
		if err != nil {
			return fail(fmt.Errorf("read login ack: %s", errClass(err)))
		}
		switch f.Signal {
		case protocol.SigLoginAck:
			var ack protocol.LoginAck
			if err := ack.Decode(f.Body); err != nil {
				return fail(fmt.Errorf("login ack: %w", err))
			}
			if ack.Code != protocol.CodeOK {
				return fail(fmt.Errorf("login code %d", ack.Code))
			}
			_ = nc.SetDeadline(time.Time{})
			return nc, br, ack, nil
		case protocol.SigClose:
			var c protocol.Close
			_ = c.Decode(f.Body)
			return fail(fmt.Errorf("login refused with close code %d", c.Code))
		}
	}
}

// writeLocked sends one frame; d.mu is held. A failed write ends the connection.
func (d *device) writeLocked(sig protocol.Signal, seq uint64, body []byte) bool {
	return d.writeFlagsLocked(sig, 0, seq, body)
}

func (d *device) writeFlagsLocked(sig protocol.Signal, flags uint16, seq uint64, body []byte) bool {
	if !d.up.Load() {
		return false
	}
	d.wbuf = protocol.AppendFrame(d.wbuf[:0], sig, flags, seq, body)
	if _, err := d.nc.Write(d.wbuf); err != nil {
		d.end("write: " + errClass(err))
		return false
	}
	d.lastSend.Store(d.f.now())
	return true
}

// sendUplinkLocked sends the next uplink, addressed to the sink as the demo business expects:
// {"to":"<sink>","text":"<seq>"}. It returns false when nothing was sent (connection down, or
// maxOutstanding unanswered).
func (d *device) sendUplinkLocked(maxOutstanding int) bool {
	if !d.up.Load() {
		return false
	}
	now := d.f.now()
	seq, ok := d.ring.add(now, maxOutstanding)
	if !ok {
		d.f.skipped.Add(1)
		return false
	}
	p := append(d.pbuf[:0], `{"to":"`...)
	p = append(p, d.f.spec.Sink...)
	p = append(p, `","text":"`...)
	p = strconv.AppendUint(p, seq, 10)
	d.pbuf = append(p, `"}`...)
	if !d.writeLocked(protocol.SigUplink, seq, d.pbuf) {
		return false
	}
	d.f.sent.Add(1)
	d.f.inFlight.Add(1)
	d.f.countSent(now)
	return true
}

// heartbeatIfIdle sends a Heartbeat when nothing was sent for the heartbeat interval.
func (d *device) heartbeatIfIdle(now int64) {
	if !d.up.Load() || now-d.lastSend.Load() < int64(d.hb) {
		return
	}
	d.mu.Lock()
	d.hbSeq++
	if d.writeLocked(protocol.SigHeartbeat, d.hbSeq, nil) {
		d.f.hbSent.Add(1)
	}
	d.mu.Unlock()
}

// readLoop handles every frame until the connection ends.
func (d *device) readLoop() {
	defer d.f.readers.Done()
	var buf []byte
	for {
		f, nbuf, err := protocol.ReadFrame(d.br, protocol.DefaultMaxBody, buf)
		buf = nbuf
		if err != nil {
			d.end("read: " + errClass(err))
			return
		}
		if !d.handle(f) {
			return
		}
	}
}

// handle acts on one frame; false ends the loop.
func (d *device) handle(f protocol.Frame) bool {
	fl := d.f
	switch f.Signal {
	case protocol.SigUplinkAck:
		now := fl.now()
		var ack protocol.Ack
		if err := ack.Decode(f.Body); err != nil {
			d.end("bad uplink ack")
			return false
		}
		d.mu.Lock()
		at, a := d.ring.answer(f.Seq)
		if a == answerFirst && fl.closedLoop() {
			d.sendUplinkLocked(fl.spec.Window)
		}
		d.mu.Unlock()
		fl.uplinkAnswer(now, at, a, ack.Code)
	case protocol.SigHeartbeatAck:
		fl.hbAck.Add(1)
	case protocol.SigDownlink:
		var dl protocol.Downlink
		if err := dl.Decode(f.Body); err != nil {
			d.end("bad downlink")
			return false
		}
		// Acknowledge first, as a device must (protocol.md §8.2; a broadcast's ACK carries its
		// flag, §8.3), then account.
		d.mu.Lock()
		d.writeFlagsLocked(protocol.SigDownlinkAck, f.Flags&protocol.FlagBroadcast, f.Seq, nil)
		d.mu.Unlock()
		if f.Flags&protocol.FlagRetransmit != 0 {
			fl.retransmits.Add(1)
		}
		fl.downlink(d, dl.Payload)
	case protocol.SigClose:
		var c protocol.Close
		_ = c.Decode(f.Body)
		d.end("close code " + strconv.Itoa(int(c.Code)))
		return false
	}
	return true
}

// end closes the connection once; reason is counted as a drop unless the fleet is closing.
func (d *device) end(reason string) {
	if !d.up.Swap(false) {
		return
	}
	if !d.f.closing.Load() {
		d.f.countDrop(reason)
	}
	d.nc.Close()
}

// goodbye sends Close 1209 (best effort) and closes.
func (d *device) goodbye() {
	d.mu.Lock()
	d.writeLocked(protocol.SigClose, 0, (&protocol.Close{Code: protocol.CodeClientClose}).Append(nil))
	d.mu.Unlock()
	d.end("")
}

// errClass shortens an I/O error to its kind, so failures aggregate into a few counters.
func errClass(err error) string {
	var ne net.Error
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		return "protocol error " + strconv.Itoa(int(pe.Code))
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}
