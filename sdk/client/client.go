package client

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

// ErrClosed is returned by Send once Close was called.
var ErrClosed = errors.New("client closed")

// ErrAckTimeout is returned by Send when no UplinkAck arrived within Config.AckTimeout. The message
// may still have been delivered.
var ErrAckTimeout = errors.New("uplink ack timeout")

// closeWriteTimeout bounds the courtesy Close frame sent by Close, so a stuck peer cannot stall it.
const closeWriteTimeout = time.Second

// Client is one logged-in connection to a gateway. Make one with Dial.
type Client struct {
	cfg      Config
	conn     net.Conn
	br       *bufio.Reader
	endpoint string
	connID   uint64
	interval time.Duration
	start    time.Time

	// wmu serializes writes and sequence numbers, so uplinks reach the server in seq order.
	wmu   sync.Mutex
	wbuf  []byte
	upSeq uint64
	hbSeq uint64
	// lastWrite is when a frame was last written, as time.Since(start), for the heartbeat.
	lastWrite atomic.Int64

	pmu     sync.Mutex
	pending map[uint64]chan protocol.Ack

	msgs chan Message
	seen *window // reader goroutine only

	closing atomic.Bool
	endOnce sync.Once
	done    chan struct{}
	errMu   sync.Mutex
	err     error
	wg      sync.WaitGroup
}

func newClient(cfg Config, conn net.Conn, br *bufio.Reader, addr string, ack protocol.LoginAck) *Client {
	interval := time.Duration(ack.HeartbeatMs) * time.Millisecond
	if interval <= 0 {
		interval = DefaultHeartbeat
	}
	c := &Client{
		cfg:      cfg,
		conn:     conn,
		br:       br,
		endpoint: addr,
		connID:   ack.ConnID,
		interval: interval,
		start:    time.Now(),
		pending:  make(map[uint64]chan protocol.Ack),
		msgs:     make(chan Message, MessageBuffer),
		seen:     newWindow(dedupeWindow),
		done:     make(chan struct{}),
	}
	c.cfg.Logger = cfg.Logger.With("endpoint", addr, "conn_id", ack.ConnID)
	c.wg.Add(2)
	go c.readLoop()
	go c.heartbeatLoop()
	return c
}

// ConnID is the connection ID the server assigned in LoginAck.
func (c *Client) ConnID() uint64 { return c.connID }

// Endpoint is the "host:port" address the client is connected to.
func (c *Client) Endpoint() string { return c.endpoint }

// Messages returns the downlinks, in order, when Config.OnDownlink is nil. It holds MessageBuffer
// messages; when it is full the reader waits, which slows the server down. It is closed after the
// connection ended.
func (c *Client) Messages() <-chan Message { return c.msgs }

// Done is closed when the connection ends.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err says why the connection ended: a *protocol.Error from the server's Close (1203 when the same
// did logged in elsewhere, 1201 after a heartbeat timeout...), an I/O error, or nil if it ended
// because Close was called. It is nil while the connection is up.
func (c *Client) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// Close sends Close 1209 to the server, closes the socket and waits for the SDK's goroutines. It is
// safe to call more than once and always returns nil.
func (c *Client) Close() error {
	if c.closing.Swap(true) {
		c.wg.Wait()
		return nil
	}
	c.wmu.Lock()
	select {
	case <-c.done:
	default:
		body := (&protocol.Close{Code: protocol.CodeClientClose}).Append(nil)
		c.conn.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
		// The server may already be gone; the socket is closed either way.
		c.conn.Write(protocol.AppendFrame(nil, protocol.SigClose, 0, 0, body))
	}
	c.wmu.Unlock()
	c.end(nil)
	c.wg.Wait()
	return nil
}

// end records why the connection ended, once, and releases everything waiting on it.
// It must not take wmu: it is called with wmu held.
func (c *Client) end(err error) {
	c.endOnce.Do(func() {
		if c.closing.Load() {
			err = nil // whatever broke after Close was asked for is a consequence of it
		}
		c.errMu.Lock()
		c.err = err
		c.errMu.Unlock()
		close(c.done)
		c.conn.Close()
		if err != nil {
			c.cfg.Logger.Info("plato connection ended", "err", err)
		}
	})
}

// endedErr is the error for an operation that found the connection ended.
func (c *Client) endedErr() error {
	if err := c.Err(); err != nil {
		return err
	}
	return ErrClosed
}

// writeLocked writes one frame; wmu must be held. A failed write ends the connection, since part of
// the frame may be on the wire and the stream can no longer be trusted.
func (c *Client) writeLocked(sig protocol.Signal, seq uint64, body []byte) error {
	return c.writeFlagsLocked(sig, 0, seq, body)
}

func (c *Client) writeFlagsLocked(sig protocol.Signal, flags uint16, seq uint64, body []byte) error {
	select {
	case <-c.done:
		return c.endedErr()
	default:
	}
	c.wbuf = protocol.AppendFrame(c.wbuf[:0], sig, flags, seq, body)
	c.conn.SetWriteDeadline(time.Now().Add(c.cfg.AckTimeout))
	_, err := c.conn.Write(c.wbuf)
	if cap(c.wbuf) > readBufferSize {
		c.wbuf = nil // do not pin one large payload's buffer for the connection's life
	}
	if err != nil {
		err = fmt.Errorf("writing %s: %w", sig, err)
		c.end(err)
		return err
	}
	c.lastWrite.Store(int64(time.Since(c.start)))
	return nil
}

func (c *Client) write(sig protocol.Signal, seq uint64, body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(sig, seq, body)
}
