package client

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

// closeWriteTimeout bounds the courtesy Close frame, so a stuck peer cannot stall Close.
const closeWriteTimeout = time.Second

// conn is one logged-in (or resumed) TCP connection to a gateway. A Client goes through a series of
// them when it reconnects; each has a reader goroutine and a heartbeat goroutine.
type conn struct {
	c        *Client
	nc       net.Conn
	br       *bufio.Reader
	endpoint string
	id       uint64
	interval time.Duration
	start    time.Time
	log      *slog.Logger

	// umu orders uplinks: it is held while a seq is assigned and written, and across the resends
	// after a Resume, so no new uplink overtakes them. It is taken before wmu.
	umu   sync.Mutex
	upSeq uint64 // the last uplink seq used; a resumed connection carries on from its predecessor's
	// wmu serializes frame writes; each write holds it alone, so a DownlinkAck never waits long.
	wmu   sync.Mutex
	wbuf  []byte
	hbSeq uint64
	// lastWrite is when a frame was last written, as time.Since(start), for the heartbeat.
	lastWrite atomic.Int64

	// Used by the reader goroutine, then by the same goroutine deciding what comes next.
	lastDown uint64             // the highest downlink seq handed to the application, for Resume
	redirect *protocol.Redirect // set when the server asked the device to move

	endOnce sync.Once
	done    chan struct{} // closed when the connection ended; err is set by then
	err     error
	// superseded is closed when a newer connection replaced this one, so a Send waiting to write
	// can go on with that one.
	superseded chan struct{}
}

func (c *Client) newConn(nc net.Conn, br *bufio.Reader, addr string, ack protocol.LoginAck) *conn {
	interval := time.Duration(ack.HeartbeatMs) * time.Millisecond
	if interval <= 0 {
		interval = DefaultHeartbeat
	}
	return &conn{
		c:          c,
		nc:         nc,
		br:         br,
		endpoint:   addr,
		id:         ack.ConnID,
		interval:   interval,
		start:      time.Now(),
		log:        c.cfg.Logger.With("endpoint", addr, "conn_id", ack.ConnID),
		done:       make(chan struct{}),
		superseded: make(chan struct{}),
	}
}

func (cn *conn) ended() bool {
	select {
	case <-cn.done:
		return true
	default:
		return false
	}
}

// end records why the connection ended, once, closes the socket and releases everything waiting on
// it. It must not take wmu: it is called with wmu held.
func (cn *conn) end(err error) { cn.endWith(err, true) }

// endWith is end that may leave the socket open: a redirected connection is closed only once its
// successor resumed it (§11.2 of docs/protocol.md).
func (cn *conn) endWith(err error, closeSocket bool) {
	cn.endOnce.Do(func() {
		cn.err = err
		close(cn.done)
		if closeSocket {
			cn.nc.Close()
		}
		if err != nil && !cn.c.closing.Load() {
			cn.log.Info("plato connection ended", "err", err)
		}
	})
}

// goodbye sends Close 1209, best effort, and closes the socket: the server then keeps nothing of
// the connection, which is what a device leaving on purpose wants.
func (cn *conn) goodbye() {
	body := (&protocol.Close{Code: protocol.CodeClientClose}).Append(nil)
	cn.wmu.Lock()
	cn.nc.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	// The server may already be gone, or the socket closed; it is closed below either way.
	cn.nc.Write(protocol.AppendFrame(nil, protocol.SigClose, 0, 0, body))
	cn.wmu.Unlock()
	cn.end(nil)
	cn.nc.Close()
}

// writeLocked writes one frame; wmu must be held. A failed write ends the connection, since part of
// the frame may be on the wire and the stream can no longer be trusted.
func (cn *conn) writeLocked(sig protocol.Signal, seq uint64, body []byte) error {
	return cn.writeFlagsLocked(sig, 0, seq, body)
}

func (cn *conn) writeFlagsLocked(sig protocol.Signal, flags uint16, seq uint64, body []byte) error {
	if cn.ended() {
		return fmt.Errorf("writing %s: %w", sig, errConnEnded)
	}
	cn.wbuf = protocol.AppendFrame(cn.wbuf[:0], sig, flags, seq, body)
	cn.nc.SetWriteDeadline(time.Now().Add(cn.c.cfg.AckTimeout))
	_, err := cn.nc.Write(cn.wbuf)
	if cap(cn.wbuf) > readBufferSize {
		cn.wbuf = nil // do not pin one large payload's buffer for the connection's life
	}
	if err != nil {
		err = fmt.Errorf("writing %s: %w", sig, err)
		cn.end(err)
		return err
	}
	cn.lastWrite.Store(int64(time.Since(cn.start)))
	return nil
}

func (cn *conn) write(sig protocol.Signal, seq uint64, body []byte) error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	return cn.writeLocked(sig, seq, body)
}
