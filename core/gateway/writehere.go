package gateway

import (
	"errors"
	"syscall"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/protocol"
)

// Device writes on the caller's goroutine (docs/performance.md, "Device writes where the frames
// are queued"). A flush used to run on a writer task always, because netpoll's Flush waits while
// the socket's send buffer is full, and a device that does not read must not hold up the Push or
// the read that queued its frames. Handing each connection's flush to another goroutine cost
// about a tenth of the CPU of a push. flushHere writes on the caller's goroutine with one
// non-blocking write(2) when the socket takes the whole batch, and hands only the rest to a
// writer, which waits as before: a slow device costs the caller one write that returns at once.

// writeBufSize bounds the batch written here: a larger one (a big body, a long queue) goes to a
// writer, which links the bodies into netpoll's buffer instead of copying them.
const writeBufSize = 16 << 10

// pendingFlusher is a conn whose batch the socket took only part of: the rest is in netpoll's
// write buffer, and the writer flushes it before the queue.
type pendingFlusher conn

func (p *pendingFlusher) Run() {
	c := (*conn)(p)
	if err := c.nc.Writer().Flush(); err != nil {
		c.writeFailed(err)
		return
	}
	c.flush()
}

// flushHere drains c's queue onto the socket on the caller's goroutine while the socket takes
// each batch whole, and hands the rest to a writer. The caller has set c.flushing and does not
// hold c.mu. A WebSocket connection, a batch with a Close (the connection is closed after it, on
// the writer, as before) and one over writeBufSize go to the writer as they are.
func (c *conn) flushHere() {
	if c.ws != nil || c.fd < 0 {
		c.startFlush()
		return
	}
	bp := c.gw.writeBufs.Get().(*[]byte)
	defer c.gw.writeBufs.Put(bp)
	for {
		c.mu.Lock()
		c.sent = satAdd(c.sent, int(c.writing))
		c.writing = 0
		q := c.queue
		if len(q) == 0 || c.closed || c.handingLocked() {
			c.flushing = false // a handed connection's queue goes to the new process
			c.mu.Unlock()
			return
		}
		b, ok := encodeHere((*bp)[:0], q)
		if !ok {
			c.mu.Unlock()
			c.startFlush()
			return
		}
		// Under c.mu the descriptor is still this socket's: the close callback that marks c
		// closed takes c.mu, and netpoll closes the descriptor only after it (checkUnsent). No
		// other write is under way: c.flushing is ours.
		n, err := writeNow(int(c.fd), b)
		if err != nil && !errors.Is(err, syscall.EAGAIN) {
			// Nothing was written: the writer writes the batch again, meets the error and
			// closes the connection as a flush always has.
			c.mu.Unlock()
			c.startFlush()
			return
		}
		n = max(n, 0)
		rest := b[n:]
		if len(rest) > 0 {
			// The device is behind: what the socket did not take waits in netpoll's buffer for
			// the writer, ahead of anything queued after it.
			w := c.nc.Writer()
			buf, merr := w.Malloc(len(rest))
			if merr != nil {
				c.mu.Unlock()
				c.abort(protocol.CodeConnectionLost)
				return
			}
			copy(buf, rest)
		}
		c.queue = nil
		c.queued = 0
		c.sent = satAdd(c.sent, n)
		c.writing = int32(len(rest))
		usage := c.usage
		c.mu.Unlock()
		c.wrote(q, usage, len(b))
		if len(rest) > 0 {
			c.gw.writers.RunTask((*pendingFlusher)(c))
			return
		}
	}
}

// encodeHere appends q's frames to b, or reports false for a batch the writer must take: one
// with a Close or longer than b's capacity.
func encodeHere(b []byte, q []outFrame) ([]byte, bool) {
	for _, o := range q {
		if o.broadcast != nil {
			if len(b)+len(o.broadcast) > cap(b) {
				return b, false
			}
			b = append(b, o.broadcast...)
			continue
		}
		f := o.down
		end := len(b) + protocol.HeaderLen + len(f.Body)
		if f.Action == fleet.DownAction_SEND_AND_CLOSE || end > cap(b) {
			return b, false
		}
		h := b[len(b):end]
		protocol.PutHeader(h, protocol.Header{
			Signal: protocol.Signal(f.Signal), Flags: uint16(f.Flags), Seq: uint64(f.Seq), Length: uint32(len(f.Body)),
		})
		copy(h[protocol.HeaderLen:], f.Body)
		b = b[:end]
	}
	return b, true
}

// wrote counts a batch q of n bytes that is the kernel's (or netpoll's, for the writer to flush),
// observes the latency of the uplinks it answers, and keeps q for reuse.
func (c *conn) wrote(q []outFrame, usage *appUsage, n int) {
	var sent [16]int64
	var broadcasts int64
	answered := false
	for _, o := range q {
		if o.readAt != 0 {
			answered = true
		}
		if o.broadcast != nil {
			sent[uint8(protocol.SigDownlink)]++
			broadcasts++
			continue
		}
		sent[uint8(o.down.Signal)&15]++
	}
	c.gw.countOut(n, &sent, broadcasts)
	if answered && usage != nil {
		observeUplinks(usage, q)
	}
	c.gw.queues.put(q)
}

// countOut adds a written batch to the shared counters, once per batch rather than per frame: n
// bytes, sent frames per signal, of which broadcasts were broadcast frames.
func (gw *Gateway) countOut(n int, sent *[16]int64, broadcasts int64) {
	gw.metrics.bytesOut.Add(int64(n))
	if broadcasts > 0 {
		gw.metrics.broadcastFramesOut.Add(broadcasts)
	}
	for sig, k := range sent {
		if k > 0 {
			gw.metrics.framesOut.AddN(uint8(sig), k)
		}
	}
}
