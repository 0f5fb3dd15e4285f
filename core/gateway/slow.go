package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/internal/cloexec"
	"github.com/platoim/plato/internal/tick"
	"github.com/platoim/plato/sdk/protocol"
)

// Slow consumers: a device that does not read what is sent to it costs the gateway memory, in its
// own queue and in the kernel's send buffer. Three bounds close it with 1205, each counted under
// its reason in plato_gateway_slow_consumers_total:
//
//   - queue_full: its queue is over gateway.write_queue frames or gateway.write_queue_bytes
//     (appendLocked), at once;
//   - stalled: its unsent bytes, the kernel's send queue (SIOCOUTQ) included, stay above
//     gateway.slow_consumer.max_unsent_bytes for gateway.slow_consumer.max_stall (this file);
//   - write_timeout: one write to its socket waits gateway.write_timeout (flush).
//
// The socket's own buffer is bounded too (gateway.socket_send_buffer, set at accept), so the
// kernel cannot hide megabytes of backlog from the first two.
//
// The stalled check costs nothing for idle connections: one goroutine per gateway looks, every
// slowWatch.interval, at the connections whose unsent bytes may be above the threshold, and only
// those. A connection knows an upper bound of its unsent bytes without asking the kernel (conn.sent
// + writing + queued: the kernel's queue when last measured plus everything written since, and what
// the gateway holds), and joins the watch when that bound crosses the threshold. The watch measures
// it (one ioctl), and lets it go when even the bound is back under the threshold; so a device that
// reads costs one ioctl per max_unsent_bytes written to it, and one that is idle costs none.

// Reasons a device is closed as a slow consumer.
const (
	slowQueueFull = iota
	slowStalled
	slowWriteTimeout
	numSlowReasons
)

var slowReasons = [numSlowReasons]string{"queue_full", "stalled", "write_timeout"}

// slowLogEvery limits the log line about slow consumers: a mass stall must not flood the log.
const slowLogEvery = 10 * time.Second

// slowWatch is the set of connections whose unsent bytes may be above the threshold.
//
// Lock order: conn.mu, then slowWatch.mu; the sweep copies the set before it locks a connection.
// Each value is read and written under both.
type slowWatch struct {
	limit    int
	maxStall time.Duration
	interval time.Duration

	mu sync.Mutex
	// conns maps each watched connection to when the check first found its unsent bytes surely
	// above the threshold, in nanoseconds since the gateway started (0: it did not). Only the
	// sweep changes a value.
	conns map[*conn]int64
	// scratch is the sweep's copy of conns, reused from one sweep to the next.
	scratch []*conn

	// watched is len(conns); unsent the bytes the watched connections had unsent at the last sweep
	// (each counted at its lower bound, see check).
	watched, unsent atomic.Int64
	log             logLimiter
}

func newSlowWatch(limit int, maxStall time.Duration) *slowWatch {
	return &slowWatch{
		limit: limit, maxStall: maxStall, interval: sweepInterval(maxStall),
		conns: make(map[*conn]int64),
	}
}

// sweepInterval is how often the watched connections are measured: a fifth of the stall, so a
// device is closed at most max_stall plus two intervals after its unsent bytes crossed the
// threshold, and at most once a second, at least every 20 ms.
func sweepInterval(maxStall time.Duration) time.Duration {
	return min(max(maxStall/5, 20*time.Millisecond), time.Second)
}

// watchLocked adds c to the watch; c.mu is held.
func (w *slowWatch) watchLocked(c *conn) {
	c.watched = true
	w.mu.Lock()
	w.conns[c] = 0
	w.watched.Store(int64(len(w.conns)))
	w.mu.Unlock()
}

// unwatchLocked removes c from the watch; c.mu is held.
func (w *slowWatch) unwatchLocked(c *conn) {
	if !c.watched {
		return
	}
	c.watched = false
	w.mu.Lock()
	delete(w.conns, c)
	w.watched.Store(int64(len(w.conns)))
	w.mu.Unlock()
}

// watchSlow sweeps until ctx ends.
func (gw *Gateway) watchSlow(ctx context.Context) {
	tick.Every(ctx, gw.slow.interval, gw.sweepSlow)
}

// sweepSlow measures every watched connection and closes those stalled for too long.
func (gw *Gateway) sweepSlow(now time.Time) {
	defer gw.guard(nil, "slow-consumer check") // a bug here must not take the gateway down
	w := gw.slow
	w.mu.Lock()
	list := w.scratch[:0]
	for c := range w.conns {
		list = append(list, c)
	}
	w.mu.Unlock()
	at := max(int64(now.Sub(gw.startedAt)), 1) // monotonic; 0 means "not stalled"
	var total int64
	for _, c := range list {
		unsent, cut := c.checkUnsent(w, at)
		total += int64(unsent)
		if cut {
			gw.cutSlow(c, unsent, now)
		}
	}
	clear(list) // the next sweep must not keep closed connections alive
	w.scratch = list[:0]
	w.unsent.Store(total)
}

// checkUnsent measures c's unsent bytes, at lower bound: the kernel's send queue and the batch being
// written overlap by what of the batch the kernel already took, which is not known. cut says c
// stayed above the threshold for longer than max_stall. now is in nanoseconds since the gateway
// started, and above 0.
func (c *conn) checkUnsent(w *slowWatch, now int64) (unsent int, cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || !c.watched {
		return 0, false
	}
	// Under c.mu the descriptor is still this socket's: the close callback that marks c closed
	// takes c.mu, and netpoll closes the descriptor only after it.
	k := 0
	if c.fd >= 0 {
		k, _ = sendQueue(int(c.fd)) // 0 where the kernel does not tell: the gateway's part still counts
	}
	queued, writing := int(c.queued), int(c.writing)
	lower := queued + max(k, writing)
	upper := queued + k + writing
	c.sent = int32(min(k, maxSent))
	w.mu.Lock()
	since, watch, cut := stallVerdict(lower, upper, w.limit, w.conns[c], now, w.maxStall)
	if watch {
		w.conns[c] = since
	}
	w.mu.Unlock()
	if !watch {
		w.unwatchLocked(c)
	}
	return lower, cut
}

// stallVerdict is one check of a watched connection whose unsent bytes are at least lower and at
// most upper, above the threshold limit since since (0: not above at the last check), at now
// (nanoseconds, > 0). The connection stays watched while it may be above the threshold, and is to
// be cut once it has surely been above it for maxStall.
func stallVerdict(lower, upper, limit int, since, now int64, maxStall time.Duration) (newSince int64, watch, cut bool) {
	switch {
	case upper <= limit:
		// It cannot go above without more being written to it, which brings it back.
		return 0, false, false
	case lower <= limit:
		return 0, true, false
	case since == 0:
		return now, true, false
	default:
		return since, true, now-since >= int64(maxStall)
	}
}

// cutSlow closes a device that stayed above the threshold: with Close 1205 when its socket has
// room for the frame, which a device that stopped reading reads after what is already on its way,
// and without it otherwise: nothing must wait on a socket nobody reads.
func (gw *Gateway) cutSlow(c *conn, unsent int, now time.Time) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	gw.slow.unwatchLocked(c)
	if c.state == stateClosing {
		// Its Close is stuck behind what it does not read: close the socket, with the reason given.
		c.mu.Unlock()
		_ = c.nc.Close()
		return
	}
	c.state = stateClosing
	c.reason = protocol.CodeSlowConsumer
	// No flusher starts from now on; one already writing is woken by the close with an error.
	busy := c.flushing
	c.flushing = true
	c.queue, c.queued = nil, 0
	if !busy && c.fd >= 0 {
		// Nothing of the gateway's is being written, so the frame cannot land inside another one.
		// The descriptor is this socket's while c.mu is held (checkUnsent).
		frame := protocol.AppendFrame(nil, protocol.SigClose, 0, 0,
			(&protocol.Close{Code: protocol.CodeSlowConsumer, Message: "the device did not read what was sent to it"}).Append(nil))
		if n, err := writeNow(int(c.fd), frame); err == nil && n == len(frame) {
			gw.metrics.framesOut.Add(uint8(protocol.SigClose))
			gw.metrics.bytesOut.Add(int64(n))
		}
	}
	c.mu.Unlock()
	gw.metrics.slowConsumers[slowStalled].Add(1)
	if gw.slow.log.allow(now, slowLogEvery) {
		gw.log.Warn("closing a device that does not read (1205); further ones are only counted for a while",
			"conn", c.id, "unsent_bytes", unsent, "max_unsent_bytes", gw.slow.limit, "max_stall", gw.slow.maxStall,
			"metric", "plato_gateway_slow_consumers_total")
	}
	_ = c.nc.Close()
}

// setSocketOptions notes c's descriptor and bounds its send buffer (gateway.socket_send_buffer).
func (gw *Gateway) setSocketOptions(c *conn) {
	fc, ok := c.nc.(interface{ Fd() int })
	if !ok {
		return
	}
	c.fd = int32(fc.Fd())
	// netpoll accepts without close-on-exec: a program started later (a plugin, the next process
	// of an upgrade) would otherwise hold this socket open after the gateway closes it.
	cloexec.Mark(int(c.fd))
	n := gw.cfg.SocketSendBuffer
	if n <= 0 {
		return
	}
	got, err := setSendBuffer(int(c.fd), n)
	if err != nil {
		if gw.slow.log.allow(time.Now(), slowLogEvery) {
			gw.log.Warn("could not bound a device socket's send buffer", "conn", c.id, "socket_send_buffer", n, "err", err)
		}
		return
	}
	gw.metrics.sendBuffer.Store(int64(got))
}
