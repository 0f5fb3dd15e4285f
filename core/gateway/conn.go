package gateway

import (
	"sync"

	"github.com/cloudwego/netpoll"

	"github.com/platoim/plato/core/timewheel"
	"github.com/platoim/plato/idl/kitex_gen/plato/common"
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

	mu       sync.Mutex
	state    uint8
	flushing bool
	closed   bool
	// reason is the close code reported to the state server when the socket goes away.
	reason     protocol.Code
	queue      []*common.DownFrame
	appID, did string
	link       *stateLink
	loginTimer *timewheel.Timer
}

// enqueue queues f for the device and makes sure a flusher runs. It reports false when the
// connection is closed or its queue overflowed (and the connection is being closed).
func (c *conn) enqueue(f *common.DownFrame) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.gw.cfg.WriteQueue && f.Action != common.DownAction_SEND_AND_CLOSE {
		c.mu.Unlock()
		c.gw.metrics.slowConsumers.Add(1)
		c.closeWith(protocol.CodeSlowConsumer, "write queue full")
		return false
	}
	c.queue = append(c.queue, f)
	start := !c.flushing
	c.flushing = true
	c.mu.Unlock()
	if start {
		c.gw.writers.Go(c.flush)
	}
	return true
}

// flush drains the queue onto the socket. Only one flush runs per conn (the flushing flag), so the
// netpoll writer is never used concurrently.
func (c *conn) flush() {
	w := c.nc.Writer()
	for {
		c.mu.Lock()
		q := c.queue
		c.queue = nil
		if len(q) == 0 {
			c.flushing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()

		closeAfter := false
		n := 0
		// Frames per signal, added to the shared counters once per flush rather than per frame.
		var sent [16]int64
		for _, f := range q {
			buf, err := w.Malloc(protocol.HeaderLen + len(f.Body))
			if err != nil {
				c.abort(protocol.CodeClientClose)
				return
			}
			protocol.PutHeader(buf, protocol.Header{
				Signal: protocol.Signal(f.Signal), Flags: uint16(f.Flags), Seq: uint64(f.Seq), Length: uint32(len(f.Body)),
			})
			copy(buf[protocol.HeaderLen:], f.Body)
			n += len(buf)
			sent[uint8(f.Signal)&15]++
			if f.Action == common.DownAction_SEND_AND_CLOSE {
				closeAfter = true
				break
			}
		}
		err := w.Flush()
		c.gw.metrics.bytesOut.Add(int64(n))
		for sig, k := range sent {
			if k > 0 {
				c.gw.metrics.framesOut.AddN(uint8(sig), k)
			}
		}
		if err != nil {
			// A write that timed out means the device stopped reading. It is counted once per
			// connection: one already closing for another reason (a full queue) is not again.
			c.mu.Lock()
			first := c.reason == 0
			c.mu.Unlock()
			if first {
				c.gw.metrics.slowConsumers.Add(1)
			}
			c.abort(protocol.CodeSlowConsumer)
			return
		}
		if closeAfter {
			c.abort(0)
			return
		}
	}
}

// closeWith sends Close(code) to the device, then closes the socket.
func (c *conn) closeWith(code protocol.Code, msg string) {
	c.mu.Lock()
	if c.closed || c.state == stateClosing {
		c.mu.Unlock()
		return
	}
	c.state = stateClosing
	c.reason = code
	c.mu.Unlock()
	body := (&protocol.Close{Code: code, Message: msg}).Append(nil)
	f := &common.DownFrame{ConnId: int64(c.id), Action: common.DownAction_SEND_AND_CLOSE, Signal: int8(protocol.SigClose), Body: body}
	c.mu.Lock()
	c.queue = append(c.queue, f)
	start := !c.flushing
	c.flushing = true
	c.mu.Unlock()
	if start {
		c.gw.writers.Go(c.flush)
	}
}

// abort closes the socket without a Close frame. reason 0 keeps an earlier reason.
func (c *conn) abort(reason protocol.Code) {
	c.mu.Lock()
	if reason != 0 && c.reason == 0 {
		c.reason = reason
	}
	c.queue = nil
	c.flushing = false
	c.mu.Unlock()
	_ = c.nc.Close()
}
