package gateway

import (
	"errors"
	"sync"

	"github.com/cloudwego/netpoll"

	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/protocol"
)

// Connection lifecycle.
const (
	stateNew      uint8 = iota // connected, no Login yet
	statePending               // Login forwarded to the state server, waiting for its answer
	stateLoggedIn              // the state server accepted the login
	stateClosing               // a Close is queued or the socket is closing
)

// conn is one device connection. Fields above mu are set once before the conn is published.
type conn struct {
	id uint64
	nc netpoll.Connection
	gw *Gateway
	// ws is the WebSocket state of a connection of the WebSocket listener; nil for TCP (ws.go).
	ws *wsConn

	mu       sync.Mutex
	state    uint8
	flushing bool
	closed   bool
	// watched is true while the slow-consumer check measures this connection (slow.go).
	watched bool
	// holding is set while a read runs: what is queued meanwhile leaves in one flush at its end
	// (coalesce.go).
	holding bool
	// hbInFlight is set while a heartbeat that took the lane's reserve awaits its answer.
	hbInFlight bool
	// reason is the close code reported to the state server when the socket goes away.
	reason protocol.Code
	// fd is the socket's descriptor, read for its send queue (slow.go); -1 when unknown. Set once
	// before the conn is published.
	fd int32
	// What the device has not read yet, as far as the gateway knows (slow.go): queued is the bytes
	// in queue, writing those of the batch being written to the socket, and sent bounds what the
	// kernel may still hold: its send queue when last measured plus everything written since
	// (saturated at maxSent). int32 keeps them in the padding of the fields above: a million
	// connections carry them.
	queued, writing, sent int32
	queue                 []outFrame
	// key is the connection's app ID and did as the did index names them (didKey), set at login:
	// one string for both, which appID and did slice (ident.go).
	key string
	// app and usage are the connection's app and what it uses here, set at login.
	app   *apps.App
	usage *appUsage
	link  *stateLink
	// cold is what the connection holds only at times (conncold.go): nil for an idle, logged-in
	// connection.
	cold *connCold
	// What the next state server needs if this one is lost (failover.go): the token's uid, the
	// last downlink seq written, the highest uplink seq answered (the rest is in cold).
	uid        string
	downSeq    int64
	upAnswered int64
}

// outFrame is one frame waiting for the socket: a frame of the state server, encoded when it is
// written, or a broadcast Downlink encoded once and shared by every member connection.
type outFrame struct {
	down *fleet.DownFrame
	// broadcast is a whole frame, header included. It is shared and read-only: the writer may link
	// it into the socket buffer without copying.
	broadcast []byte
	// readAt is, for an UplinkAck of the state server, when the gateway read the uplink
	// (monoNow); 0 for every other frame. The flush observes the uplink's latency from it.
	readAt int64
}

// maxSent saturates the byte counts of a conn: far above any threshold they are compared with.
const maxSent = 1 << 30

// satAdd adds n to v, saturating at maxSent.
func satAdd(v int32, n int) int32 { return int32(min(int(v)+n, maxSent)) }

// size is the frame's length on the wire, header included.
func (o outFrame) size() int {
	if o.broadcast != nil {
		return len(o.broadcast)
	}
	return protocol.HeaderLen + len(o.down.Body)
}

// enqueue queues f for the device and makes sure a flusher runs. It reports false when the
// connection is closed or its queue overflowed (and the connection is being closed).
func (c *conn) enqueue(f *fleet.DownFrame) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	start, full := c.appendLocked(outFrame{down: f}, f.Action == fleet.DownAction_SEND_AND_CLOSE)
	c.mu.Unlock()
	return c.started(start, full)
}

// enqueueFromState queues a frame of state server stateID, and notes what a move to another state
// server needs. ok is false when the connection is gone; moved is true when the connection is
// another state server's now: the frame is dropped. A SEND_AND_CLOSE frame marks the connection
// closing; refusedLogin reports one that answers a pending Login.
func (c *conn) enqueueFromState(stateID string, f *fleet.DownFrame) (ok, moved, refusedLogin bool) {
	var code protocol.Code
	if f.Action == fleet.DownAction_SEND_AND_CLOSE {
		code = closeCode(f)
	}
	var readAt int64
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false, false, false
	}
	if c.link != nil && c.link.id != stateID {
		c.mu.Unlock()
		return true, true, false
	}
	if code != 0 {
		refusedLogin = c.state == statePending && protocol.Signal(f.Signal) == protocol.SigLoginAck
		if c.state != stateClosing {
			c.state = stateClosing
			c.reason = code
		}
	}
	switch protocol.Signal(f.Signal) {
	case protocol.SigDownlink:
		c.downSeq = max(c.downSeq, f.Seq)
		if f.Track {
			c.trackLocked(f)
		}
	case protocol.SigUplinkAck:
		readAt = c.answeredLocked(f)
	case protocol.SigHeartbeatAck:
		c.hbInFlight = false
	}
	start, full := c.appendLocked(outFrame{down: f, readAt: readAt}, f.Action == fleet.DownAction_SEND_AND_CLOSE)
	c.mu.Unlock()
	// A frame a full queue refuses is lost with the connection, which is being closed for it: its
	// close event tells the state server, with 1205. Reporting it gone would end the connection
	// there at once as lost (1211), and the business would hear that instead.
	return c.startedHere(start, full) || full, false, refusedLogin
}

// enqueueLogin queues the state server's LOGIN_OK answer and marks the login accepted in one step,
// so that no broadcast frame can reach the device before its LoginAck. accepted is false when the
// login was no longer pending; ok is enqueue's result.
func (c *conn) enqueueLogin(f *fleet.DownFrame) (accepted, ok bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false, false
	}
	accepted = c.state == statePending
	if accepted {
		c.state = stateLoggedIn
	}
	start, full := c.appendLocked(outFrame{down: f}, false)
	c.mu.Unlock()
	return accepted, c.startedHere(start, full)
}

// enqueueBroadcast queues a shared broadcast frame, only on a logged-in connection: a device hears
// a session's messages from its LoginAck on, and not once it is being closed.
func (c *conn) enqueueBroadcast(frame []byte) bool {
	c.mu.Lock()
	if c.closed || c.state != stateLoggedIn {
		c.mu.Unlock()
		return false
	}
	start, full := c.appendLocked(outFrame{broadcast: frame}, false)
	c.mu.Unlock()
	return c.started(start, full)
}

// appendLocked queues o unless the queue is full (force skips the bound: a Close must get out).
// Full is over gateway.write_queue frames, or over gateway.write_queue_bytes counting the batch
// being written; a frame always fits in an empty queue, however large. start says a flusher must
// be started. c.mu is held.
func (c *conn) appendLocked(o outFrame, force bool) (start, full bool) {
	size := o.size()
	if !force {
		if len(c.queue) >= c.gw.cfg.WriteQueue {
			return false, true
		}
		if held := int(c.queued) + int(c.writing); held > 0 && held+size > c.gw.cfg.WriteQueueBytes {
			return false, true
		}
	}
	if c.queue == nil {
		c.queue = c.gw.queues.get()
	}
	c.queue = append(c.queue, o)
	c.queued = satAdd(c.queued, size)
	if !c.watched && int(c.sent)+int(c.writing)+int(c.queued) > c.gw.slow.limit {
		c.gw.slow.watchLocked(c)
	}
	if c.handingLocked() {
		return false, false // the queue goes to the new process with the connection
	}
	if c.holding {
		return false, false // the read starts the flush when it ends (coalesce.go)
	}
	start = !c.flushing
	c.flushing = true
	return start, false
}

// started acts on appendLocked's answer once c.mu is released.
func (c *conn) started(start, full bool) bool {
	if full {
		// Counted once per connection: one already closing for another reason is not again.
		if c.closeWith(protocol.CodeSlowConsumer, "write queue full") {
			c.gw.metrics.slowConsumers[slowQueueFull].Add(1)
		}
		return false
	}
	if start {
		c.startFlush()
	}
	return true
}

// startedHere is started for a state server's frames (a Push, a Deliver reply): the flush runs on
// the caller's goroutine while the socket takes it (flushHere).
func (c *conn) startedHere(start, full bool) bool {
	if start && !full {
		c.flushHere()
		return true
	}
	return c.started(start, full)
}

// flush drains the queue onto the socket. Only one flush runs per conn (the flushing flag), so the
// netpoll writer is never used concurrently.
func (c *conn) flush() {
	w := c.nc.Writer()
	for {
		c.mu.Lock()
		// The batch written last is the kernel's now.
		c.sent = satAdd(c.sent, int(c.writing))
		c.writing = 0
		q := c.queue
		if c.handingLocked() {
			c.flushing = false // the queue goes to the new process with the connection
			c.mu.Unlock()
			return
		}
		c.queue = nil
		usage := c.usage
		if len(q) == 0 || c.closed {
			c.flushing = false
			c.mu.Unlock()
			return
		}
		c.writing, c.queued = c.queued, 0
		// The batch goes into netpoll's buffer under c.mu: netpoll frees a closed connection's
		// buffer after its close callbacks, and ours takes c.mu first, so a close cannot free
		// the memory being written (netpoll's own lock covers only Flush, which checks for a
		// close before it touches the buffer).
		b, err := encodeOut(w, q, c.ws != nil)
		c.mu.Unlock()
		if err != nil {
			c.abort(protocol.CodeConnectionLost)
			return
		}
		err = w.Flush()
		c.gw.countOut(b.n, &b.sent, b.broadcasts)
		if err != nil {
			c.writeFailed(err)
			return
		}
		if b.answered && usage != nil {
			observeUplinks(usage, q[:b.reached])
		}
		c.gw.queues.put(q) // written: the next queue of any connection may reuse it
		if b.closeAfter {
			c.abort(0)
			return
		}
	}
}

// outBatch is what encodeOut put into netpoll's buffer: n bytes, the frames per signal (added to
// the shared counters once per flush rather than per frame), of which broadcasts were broadcast
// frames; reached frames of the queue (a Close ends the batch), answered if any answers an
// uplink, whose latency is observed once the batch is on the socket; closeAfter if it ends with a
// Close.
type outBatch struct {
	n          int
	sent       [16]int64
	broadcasts int64
	reached    int
	answered   bool
	closeAfter bool
}

// encodeOut writes q's frames into w, as WebSocket messages when ws.
func encodeOut(w netpoll.Writer, q []outFrame, ws bool) (b outBatch, err error) {
	for _, o := range q {
		b.reached++
		if o.readAt != 0 {
			b.answered = true
		}
		if ws {
			m, last, err := wsWrite(w, o)
			if err != nil {
				return b, err
			}
			b.n += m
			if o.broadcast != nil {
				b.sent[uint8(protocol.SigDownlink)]++
				b.broadcasts++
			} else if o.down.Signal != wsRawSignal {
				b.sent[uint8(o.down.Signal)&15]++
			}
			if b.closeAfter = last; last {
				break
			}
			continue
		}
		if o.broadcast != nil {
			// Linked rather than copied when large: the bytes are never modified.
			if _, err := w.WriteBinary(o.broadcast); err != nil {
				return b, err
			}
			b.n += len(o.broadcast)
			b.sent[uint8(protocol.SigDownlink)]++
			b.broadcasts++
			continue
		}
		f := o.down
		buf, err := w.Malloc(protocol.HeaderLen + len(f.Body))
		if err != nil {
			return b, err
		}
		protocol.PutHeader(buf, protocol.Header{
			Signal: protocol.Signal(f.Signal), Flags: uint16(f.Flags), Seq: uint64(f.Seq), Length: uint32(len(f.Body)),
		})
		copy(buf[protocol.HeaderLen:], f.Body)
		b.n += len(buf)
		b.sent[uint8(f.Signal)&15]++
		if f.Action == fleet.DownAction_SEND_AND_CLOSE {
			b.closeAfter = true
			break
		}
	}
	return b, nil
}

// writeFailed closes c after a write to its socket failed with err.
func (c *conn) writeFailed(err error) {
	// A write that timed out means the device stopped reading. It is counted once per connection:
	// one already closing for another reason (a full queue, a stall) is not again. Any other error
	// is the socket gone (or closed under the write).
	if !errors.Is(err, netpoll.ErrWriteTimeout) {
		c.abort(protocol.CodeConnectionLost)
		return
	}
	c.mu.Lock()
	first := c.reason == 0
	c.mu.Unlock()
	if first {
		c.gw.metrics.slowConsumers[slowWriteTimeout].Add(1)
	}
	c.abort(protocol.CodeSlowConsumer)
}

// closeWith sends Close(code) to the device, then closes the socket. It reports false when the
// connection was already closing.
func (c *conn) closeWith(code protocol.Code, msg string) bool {
	c.mu.Lock()
	if c.closed || c.state == stateClosing {
		c.mu.Unlock()
		return false
	}
	c.state = stateClosing
	c.reason = code
	f := c.wsPreUpgradeCloseLocked(code, msg)
	c.mu.Unlock()
	if f == nil {
		body := (&protocol.Close{Code: code, Message: msg}).Append(nil)
		f = &fleet.DownFrame{ConnId: int64(c.id), Action: fleet.DownAction_SEND_AND_CLOSE, Signal: int8(protocol.SigClose), Body: body}
	}
	c.mu.Lock()
	start, _ := c.appendLocked(outFrame{down: f}, true)
	c.mu.Unlock()
	if start {
		c.startFlush()
	}
	return true
}

// abort closes the socket without a Close frame. reason 0 keeps an earlier reason.
func (c *conn) abort(reason protocol.Code) {
	c.mu.Lock()
	if reason != 0 && c.reason == 0 {
		c.reason = reason
	}
	c.queue, c.queued = nil, 0
	c.flushing = false
	c.mu.Unlock()
	_ = c.nc.Close()
}
