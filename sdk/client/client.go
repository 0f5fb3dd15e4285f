package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ErrClosed is returned by Send once Close was called.
var ErrClosed = errors.New("client closed")

// ErrAckTimeout is returned by Send when no UplinkAck arrived within Config.AckTimeout. The message
// may still have been delivered.
var ErrAckTimeout = errors.New("uplink ack timeout")

// ErrOutcomeUnknown is returned by Send, wrapping why the connection was lost, for an uplink that
// was waiting for its UplinkAck when the connection dropped and whose connection could not be
// resumed (the reconnect needed a Login): the server may or may not have delivered it. Sending it
// again may deliver it twice; the application decides.
var ErrOutcomeUnknown = errors.New("uplink outcome unknown")

// errConnEnded is what a write finds on a connection that already ended.
var errConnEnded = errors.New("connection ended")

// Client is a device's connection to Plato: one gateway connection at a time, replaced by a new one
// when Config.Reconnect is set and it drops. Make one with Dial.
type Client struct {
	cfg Config
	// ctx bounds every reconnect attempt; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	mu  sync.Mutex
	cur *conn // the latest connection; one that ended while the client reconnects
	err error

	route route // one goroutine at a time: Dial, then the reader of the connection that ended

	pmu     sync.Mutex
	pending map[uint64]*uplink

	msgs  chan Message
	seen  *window // one goroutine at a time: the reader of the current connection
	state *notifier

	closing atomic.Bool
	done    chan struct{}
	wg      sync.WaitGroup
}

func newClient(ctx context.Context, cfg Config) *Client {
	c := &Client{
		cfg:     cfg,
		pending: make(map[uint64]*uplink),
		msgs:    make(chan Message, MessageBuffer),
		seen:    newWindow(dedupeWindow),
		done:    make(chan struct{}),
	}
	// The client outlives Dial's ctx (often a timeout for connecting), but keeps its values.
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	c.route = newRoute(&c.cfg)
	if cfg.OnState != nil {
		c.state = newNotifier(cfg.OnState)
		c.wg.Go(c.state.run)
	}
	return c
}

// report tells OnState about s, without waiting for it.
func (c *Client) report(s State) {
	if c.state != nil {
		c.state.push(s)
	}
}

func (c *Client) current() *conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// ConnID is the ID of the current (or, while reconnecting, the last) connection, from its LoginAck
// or ResumeAck.
func (c *Client) ConnID() uint64 { return c.current().id }

// Endpoint is the "host:port" address of the current (or last) connection's gateway.
func (c *Client) Endpoint() string { return c.current().endpoint }

// Messages returns the downlinks, in order, when Config.OnDownlink is nil. It holds MessageBuffer
// messages; when it is full the reader waits, which slows the server down. It keeps delivering
// across reconnects, and is closed once the client is over (Done).
func (c *Client) Messages() <-chan Message { return c.msgs }

// Done is closed when the client is over for good: Close was called, or the connection ended and
// the client does not reconnect (Config.Reconnect is false, or the reason was final).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err says why the client ended: a *protocol.Error from the server (1203 when the same did logged in
// elsewhere, 1201 after a heartbeat timeout...), an I/O error, or nil if it ended because Close was
// called. It is nil until Done is closed.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close sends Close 1209 to the server, closes the socket, stops a reconnect in progress and waits
// for the SDK's goroutines. It is safe to call more than once and always returns nil.
func (c *Client) Close() error {
	if c.closing.Swap(true) {
		c.wg.Wait()
		return nil
	}
	c.cancel()
	// Read after closing is set: a reconnect that publishes a connection later sees closing instead.
	c.current().goodbye()
	c.wg.Wait()
	return nil
}

// finish ends the client for good, once its last connection ended: the reader goroutine of that
// connection calls it.
func (c *Client) finish(err error) {
	if c.closing.Load() {
		err = nil // whatever broke after Close was asked for is a consequence of it
	}
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	reason := err
	if reason == nil {
		reason = ErrClosed
	}
	c.failPending(func(u *uplink) error { return fmt.Errorf("waiting for uplink ack %d: %w", u.seq, reason) })
	close(c.msgs)
	close(c.done)
	c.cancel()
	c.report(State{Kind: Closed, Err: err})
}

// endedErr is the error for an operation that found the client over.
func (c *Client) endedErr() error {
	if err := c.Err(); err != nil {
		return err
	}
	return ErrClosed
}
