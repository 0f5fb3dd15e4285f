package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
)

// The handover wire format: what an old gateway process tells the new one over the unix socket
// pair they share during an upgrade (handover.go). Each message is
//
//	type u8 | fds u16 | length u32 | payload (length bytes)
//
// and carries its fds descriptors as SCM_RIGHTS on its first byte. Integers are big-endian;
// strings and byte slices are a u32 length then the bytes; lists a u32 count then the items. The
// new process is a trusted peer (the same binary, started by the old one), but it still parses
// defensively: a bad message fails the handover, never the process.

// Message types.
const (
	msgHello     uint8 = 1  // old -> new: the next connection ID and the state servers it uses
	msgReady     uint8 = 2  // new -> old: up, connected to NATS and the state servers
	msgFail      uint8 = 3  // new -> old: the reason it cannot take over
	msgListeners uint8 = 4  // old -> new: the device and RPC listeners, then the WebSocket one if any (2 or 3 fds)
	msgConns     uint8 = 5  // old -> new: connections with their state (one fd each)
	msgForward   uint8 = 6  // old -> new: frames a state server pushed to the old process
	msgSessions  uint8 = 7  // old -> new: session changes a state server sent the old process
	msgRPCDone   uint8 = 8  // old -> new: the old RPC server stopped: serve the RPC listener
	msgEnd       uint8 = 9  // old -> new: everything was passed
	msgDone      uint8 = 10 // new -> old: everything was adopted
)

// Bounds a message must respect; anything beyond is a broken peer.
const (
	maxHandoverMsg = 256 << 20
	// maxFDsPerMsg stays under the kernel's SCM_MAX_FD (253).
	maxFDsPerMsg = 200
	handoverHdr  = 7
)

var errHandoverMsg = errors.New("malformed handover message")

// handoverMsg is one message as read.
type handoverMsg struct {
	typ     uint8
	payload []byte
	fds     []int
}

// writeHandoverMsg sends one message with its descriptors (the kernel duplicates them into the
// receiver: the sender still owns its own).
func writeHandoverMsg(c *net.UnixConn, typ uint8, payload []byte, fds []int) error {
	if len(fds) > maxFDsPerMsg || len(payload) > maxHandoverMsg {
		return fmt.Errorf("handover message too large: %d bytes, %d fds", len(payload), len(fds))
	}
	buf := make([]byte, handoverHdr, handoverHdr+len(payload))
	buf[0] = typ
	binary.BigEndian.PutUint16(buf[1:], uint16(len(fds)))
	binary.BigEndian.PutUint32(buf[3:], uint32(len(payload)))
	buf = append(buf, payload...)
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	n, _, err := c.WriteMsgUnix(buf, oob, nil)
	if err != nil {
		return fmt.Errorf("sending handover message %d: %w", typ, err)
	}
	// A stream socket may take a large message in parts; the descriptors went with the first.
	if n < len(buf) {
		if _, err := c.Write(buf[n:]); err != nil {
			return fmt.Errorf("sending handover message %d: %w", typ, err)
		}
	}
	return nil
}

// handoverReader reads messages, queueing the descriptors that arrive until the message they
// belong to is complete.
type handoverReader struct {
	c   *net.UnixConn
	buf []byte
	fds []int
	tmp []byte
	oob []byte
}

func newHandoverReader(c *net.UnixConn) *handoverReader {
	return &handoverReader{c: c, tmp: make([]byte, 256<<10), oob: make([]byte, syscall.CmsgSpace(4*254))}
}

// read returns the next message. On error, the descriptors received and not handed out are
// closed.
func (r *handoverReader) read() (handoverMsg, error) {
	for {
		if m, ok, err := r.take(); err != nil || ok {
			if err != nil {
				r.closeFDs()
			}
			return m, err
		}
		n, oobn, flags, _, err := r.c.ReadMsgUnix(r.tmp, r.oob)
		if oobn > 0 {
			fds, perr := parseRights(r.oob[:oobn])
			r.fds = append(r.fds, fds...)
			if perr != nil && err == nil {
				err = perr
			}
		}
		if err == nil && flags&syscall.MSG_CTRUNC != 0 {
			err = errors.New("handover descriptors truncated")
		}
		r.buf = append(r.buf, r.tmp[:n]...)
		if err != nil {
			r.closeFDs()
			return handoverMsg{}, err
		}
		if n == 0 && oobn == 0 {
			r.closeFDs()
			return handoverMsg{}, io.ErrUnexpectedEOF
		}
	}
}

// take cuts a complete message off the buffer.
func (r *handoverReader) take() (handoverMsg, bool, error) {
	if len(r.buf) < handoverHdr {
		return handoverMsg{}, false, nil
	}
	nfds := int(binary.BigEndian.Uint16(r.buf[1:]))
	size := int(binary.BigEndian.Uint32(r.buf[3:]))
	if nfds > maxFDsPerMsg || size > maxHandoverMsg {
		return handoverMsg{}, false, fmt.Errorf("%w: %d bytes, %d fds", errHandoverMsg, size, nfds)
	}
	if len(r.buf) < handoverHdr+size {
		return handoverMsg{}, false, nil
	}
	if len(r.fds) < nfds {
		return handoverMsg{}, false, fmt.Errorf("%w: %d fds announced, %d received", errHandoverMsg, nfds, len(r.fds))
	}
	m := handoverMsg{typ: r.buf[0], payload: append([]byte(nil), r.buf[handoverHdr:handoverHdr+size]...)}
	m.fds = append([]int(nil), r.fds[:nfds]...)
	r.fds = r.fds[nfds:]
	r.buf = r.buf[handoverHdr+size:]
	return m, true, nil
}

func (r *handoverReader) closeFDs() {
	for _, fd := range r.fds {
		_ = syscall.Close(fd)
	}
	r.fds = nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parsing handover descriptors: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		got, err := syscall.ParseUnixRights(&m)
		if err != nil {
			return fds, fmt.Errorf("parsing handover descriptors: %w", err)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

// handedConn is what the new process needs of one connection besides its socket.
type handedConn struct {
	id         uint64
	state      uint8
	reason     uint16
	hbInFlight bool
	appID      string
	did        string
	uid        string
	link       string // the state server's ID; "" before a Login
	sessions   []string
	downSeq    int64
	upAnswered int64
	upPending  []int64
	unacked    []*fleet.DownFrame
	// input is what was read from the socket and not framed yet: the start of a frame.
	input []byte
	// queue is what was queued for the device and not written yet, in order.
	queue []outFrame
	// ws is the connection's WebSocket state; nil for a TCP connection. With it, input is
	// WebSocket bytes: the start of a frame, or of the handshake while not Upgraded.
	ws *wsConn
}

// hello is the first message: where the new process continues.
type hello struct {
	nextID uint64
	states []string
}

// enc appends the wire encoding.
type enc struct{ b []byte }

func (e *enc) u8(v uint8)   { e.b = append(e.b, v) }
func (e *enc) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *enc) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *enc) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *enc) bytes(v []byte) {
	e.u32(uint32(len(v)))
	e.b = append(e.b, v...)
}
func (e *enc) str(v string) {
	e.u32(uint32(len(v)))
	e.b = append(e.b, v...)
}
func (e *enc) strs(v []string) {
	e.u32(uint32(len(v)))
	for _, s := range v {
		e.str(s)
	}
}
func (e *enc) frame(f *fleet.DownFrame) {
	e.u64(uint64(f.ConnId))
	e.u32(uint32(f.Action))
	e.u8(uint8(f.Signal))
	e.u16(uint16(f.Flags))
	e.u64(uint64(f.Seq))
	e.bytes(f.Body)
	e.str(f.Did)
	if f.Track {
		e.u8(1)
	} else {
		e.u8(0)
	}
}
func (e *enc) frames(fs []*fleet.DownFrame) {
	e.u32(uint32(len(fs)))
	for _, f := range fs {
		e.frame(f)
	}
}

// dec reads the wire encoding; the first error sticks and every later read returns zero values.
type dec struct {
	b   []byte
	err error
}

func (d *dec) need(n int) bool {
	if d.err != nil {
		return false
	}
	if n < 0 || len(d.b) < n {
		d.err = errHandoverMsg
		return false
	}
	return true
}
func (d *dec) u8() uint8 {
	if !d.need(1) {
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// flag reads a boolean: 0 or 1, anything else is malformed.
func (d *dec) flag() bool {
	v := d.u8()
	if v > 1 && d.err == nil {
		d.err = fmt.Errorf("%w: flag %d", errHandoverMsg, v)
	}
	return v == 1
}
func (d *dec) u16() uint16 {
	if !d.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}
func (d *dec) u32() uint32 {
	if !d.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}
func (d *dec) u64() uint64 {
	if !d.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}
func (d *dec) bytes() []byte {
	n := int(d.u32())
	if !d.need(n) {
		return nil
	}
	v := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return v
}
func (d *dec) str() string {
	n := int(d.u32())
	if !d.need(n) {
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

// count reads a list length, checked against the bytes left (each item takes at least min).
func (d *dec) count(min int) int {
	n := int(d.u32())
	if d.err == nil && n*min > len(d.b) {
		d.err = errHandoverMsg
	}
	if d.err != nil {
		return 0
	}
	return n
}
func (d *dec) strs() []string {
	n := d.count(4)
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		out = append(out, d.str())
	}
	return out
}

const minFrameLen = 8 + 4 + 1 + 2 + 8 + 4 + 4 + 1

func (d *dec) frame() *fleet.DownFrame {
	f := &fleet.DownFrame{}
	f.ConnId = int64(d.u64())
	f.Action = fleet.DownAction(int32(d.u32()))
	f.Signal = int8(d.u8())
	f.Flags = int16(d.u16())
	f.Seq = int64(d.u64())
	f.Body = d.bytes()
	f.Did = d.str()
	f.Track = d.flag()
	return f
}
func (d *dec) frames() []*fleet.DownFrame {
	n := d.count(minFrameLen)
	if n == 0 {
		return nil
	}
	out := make([]*fleet.DownFrame, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		out = append(out, d.frame())
	}
	return out
}
func (d *dec) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d bytes left over", errHandoverMsg, len(d.b))
	}
	return d.err
}

// handoverVersion is the layout of the handover messages. The old process states it first in its
// hello; a new process that speaks another refuses the handover (msgFail), so the upgrade is refused
// and the old process keeps serving: such binaries are changed by a restart (or a drain), not an
// in-place upgrade. Raise it with any change to a message's layout.
const handoverVersion = 1

func encodeHello(h hello) []byte {
	var e enc
	e.u16(handoverVersion)
	e.u64(h.nextID)
	e.strs(h.states)
	return e.b
}

func decodeHello(b []byte) (hello, error) {
	d := dec{b: b}
	if v := d.u16(); d.err == nil && v != handoverVersion {
		return hello{}, fmt.Errorf("the old process speaks handover version %d and this binary version %d: change binaries this far apart by a restart or a drain, not an in-place upgrade", v, handoverVersion)
	}
	h := hello{nextID: d.u64(), states: d.strs()}
	return h, d.end()
}

// Kinds of a queued frame on the wire.
const (
	queuedDown      = 0
	queuedBroadcast = 1
)

func encodeConns(cs []*handedConn) []byte {
	var e enc
	e.u32(uint32(len(cs)))
	for _, c := range cs {
		e.u64(c.id)
		e.u8(c.state)
		e.u16(c.reason)
		if c.hbInFlight {
			e.u8(1)
		} else {
			e.u8(0)
		}
		e.str(c.appID)
		e.str(c.did)
		e.str(c.uid)
		e.str(c.link)
		e.strs(c.sessions)
		e.u64(uint64(c.downSeq))
		e.u64(uint64(c.upAnswered))
		e.u32(uint32(len(c.upPending)))
		for _, s := range c.upPending {
			e.u64(uint64(s))
		}
		e.frames(c.unacked)
		e.bytes(c.input)
		e.u32(uint32(len(c.queue)))
		for _, o := range c.queue {
			if o.broadcast != nil {
				e.u8(queuedBroadcast)
				e.bytes(o.broadcast)
			} else {
				e.u8(queuedDown)
				e.frame(o.down)
			}
		}
		switch {
		case c.ws == nil:
			e.u8(transportTCP)
		case c.ws.Upgraded:
			e.u8(transportWSUpgraded)
			e.str(c.ws.Origin)
		default:
			e.u8(transportWSHandshake)
		}
	}
	return e.b
}

// A connection's transport on the wire: TCP, a WebSocket still in its handshake (no Origin yet),
// or an upgraded WebSocket followed by its Origin.
const (
	transportTCP         = 0
	transportWSHandshake = 1
	transportWSUpgraded  = 2
)

const minConnLen = 8 + 1 + 2 + 1 + 4*5 + 8 + 8 + 4 + 4 + 4 + 4 + 1

func decodeConns(b []byte) ([]*handedConn, error) {
	d := dec{b: b}
	n := d.count(minConnLen)
	out := make([]*handedConn, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		c := &handedConn{id: d.u64(), state: d.u8(), reason: d.u16(), hbInFlight: d.flag()}
		c.appID, c.did, c.uid, c.link = d.str(), d.str(), d.str(), d.str()
		c.sessions = d.strs()
		c.downSeq, c.upAnswered = int64(d.u64()), int64(d.u64())
		if k := d.count(8); k > 0 {
			c.upPending = make([]int64, k)
			for j := range c.upPending {
				c.upPending[j] = int64(d.u64())
			}
		}
		c.unacked = d.frames()
		c.input = d.bytes()
		if len(c.input) == 0 {
			c.input = nil
		}
		if k := d.count(1 + 4); k > 0 {
			c.queue = make([]outFrame, 0, k)
			for j := 0; j < k && d.err == nil; j++ {
				switch d.u8() {
				case queuedBroadcast:
					c.queue = append(c.queue, outFrame{broadcast: d.bytes()})
				case queuedDown:
					c.queue = append(c.queue, outFrame{down: d.frame()})
				default:
					if d.err == nil {
						d.err = fmt.Errorf("%w: unknown queued frame kind", errHandoverMsg)
					}
				}
			}
		}
		switch t := d.u8(); t {
		case transportTCP:
		case transportWSHandshake:
			c.ws = &wsConn{}
		case transportWSUpgraded:
			c.ws = &wsConn{Upgraded: true, Origin: d.str()}
			if d.err == nil && len(c.ws.Origin) > wsMaxOrigin {
				d.err = fmt.Errorf("%w: an Origin of %d bytes", errHandoverMsg, len(c.ws.Origin))
			}
		default:
			if d.err == nil {
				d.err = fmt.Errorf("%w: unknown transport %d", errHandoverMsg, t)
			}
		}
		if d.err == nil && c.state > stateClosing {
			d.err = fmt.Errorf("%w: connection state %d", errHandoverMsg, c.state)
		}
		out = append(out, c)
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return out, nil
}

// encodePush is a Push a state server made to the old process: the new one applies it.
func encodePush(stateID string, frames []*fleet.DownFrame) []byte {
	var e enc
	e.str(stateID)
	e.frames(frames)
	return e.b
}

func decodePush(b []byte) (string, []*fleet.DownFrame, error) {
	d := dec{b: b}
	id := d.str()
	fs := d.frames()
	return id, fs, d.end()
}

func encodeSessions(stateID string, changes []*fleet.SessionChange) []byte {
	var e enc
	e.str(stateID)
	e.u32(uint32(len(changes)))
	for _, ch := range changes {
		e.u64(uint64(ch.ConnId))
		e.str(ch.Session)
		if ch.Join {
			e.u8(1)
		} else {
			e.u8(0)
		}
	}
	return e.b
}

func decodeSessions(b []byte) (string, []*fleet.SessionChange, error) {
	d := dec{b: b}
	id := d.str()
	n := d.count(8 + 4 + 1)
	var out []*fleet.SessionChange
	for i := 0; i < n && d.err == nil; i++ {
		out = append(out, &fleet.SessionChange{ConnId: int64(d.u64()), Session: d.str(), Join: d.flag()})
	}
	return id, out, d.end()
}

func encodeText(s string) []byte {
	var e enc
	e.str(s)
	return e.b
}

func decodeText(b []byte) (string, error) {
	d := dec{b: b}
	s := d.str()
	return s, d.end()
}

func encodeCount(n int) []byte {
	var e enc
	e.u32(uint32(n))
	return e.b
}

func decodeCount(b []byte) (int, error) {
	d := dec{b: b}
	n := d.u32()
	return int(n), d.end()
}
