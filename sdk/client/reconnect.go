package client

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// serve is a connection's reader goroutine. When the connection ends it either ends the client or,
// with Config.Reconnect, finds the next connection and hands over to that one's reader.
func (c *Client) serve(cn *conn) {
	defer c.wg.Done()
	cn.readLoop()
	// A Send that was writing on cn has registered its uplink by now, and none will after: what is
	// pending is what the next connection must resend or fail.
	cn.umu.Lock()
	upSeq := cn.upSeq
	cn.umu.Unlock()

	if c.closing.Load() {
		c.finish(nil)
		return
	}
	c.report(State{Kind: Disconnected, Endpoint: cn.endpoint, ConnID: cn.id, Err: cn.err})
	if !c.cfg.Reconnect {
		c.finish(cn.err)
		return
	}
	next, resumed, err := c.reconnect(cn)
	if next == nil {
		c.finish(err)
		return
	}
	c.adopt(cn, next, resumed, upSeq)
}

// reconnect finds the connection that replaces old: it resumes old where the server kept it, and
// logs in otherwise. It returns nil when the client must end, with the reason (nil when Close was called).
func (c *Client) reconnect(old *conn) (next *conn, resumed bool, err error) {
	r := &c.route
	reason := old.err
	v := classify(reason)
	// The backoff keeps doubling across connections that do not last, so a gateway that accepts and
	// then drops at once is not hammered.
	r.ended(time.Since(old.start) >= c.cfg.ReconnectMax, v)
	switch v {
	case final:
		return nil, false, reason
	case renew:
		if err := r.refused(reason); err != nil {
			return nil, false, err
		}
	}
	// A redirected connection stays open until its successor resumed it: closing it first would
	// end the server's state for it (docs/protocol.md §11.2).
	held, direct := (*conn)(nil), 0
	if old.redirect != nil {
		held, direct = old, len(old.redirect.Endpoints)
		r.redirect(old.redirect)
	}
	defer func() {
		if held != nil {
			held.goodbye()
		}
	}()

	var from *resumePoint
	if resumable(reason) {
		from = &resumePoint{connID: old.id, lastDown: old.lastDown}
	}
	var lastErr error
	for attempt := 1; ; attempt++ {
		// The server asked for the move, so its endpoints are tried at once; everything else waits.
		if attempt > direct {
			if held != nil {
				held.nc.Close() // without a Close frame: the server keeps the state for a Resume
				held = nil
			}
			if !sleep(c.ctx, backoff(r.failures, c.cfg.ReconnectMin, c.cfg.ReconnectMax, rand.Int64N)) {
				return nil, false, nil
			}
			r.failures++
		}
		c.report(State{Kind: Connecting, Endpoint: r.peek(), Attempt: attempt, Err: lastErr})
		next, resumed, err := c.attempt(from)
		if err == nil {
			r.connected()
			return next, resumed, nil
		}
		if c.ctx.Err() != nil {
			return nil, false, nil
		}
		if err := c.judge(err); err != nil {
			return nil, false, err
		}
		c.cfg.Logger.Info("plato reconnect attempt failed", "attempt", attempt, "err", err)
		lastErr = err
	}
}

// attempt tries the next endpoint once.
func (c *Client) attempt(from *resumePoint) (*conn, bool, error) {
	addr, err := c.route.advance(c.ctx)
	if err != nil {
		return nil, false, &ipconfFailure{err}
	}
	cn, resumed, err := c.connect(c.ctx, addr, c.route.token, from)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", addr, err)
	}
	return cn, resumed, nil
}

// ipconfFailure is an attempt that failed asking ipconf, judged by ipconf's rules.
type ipconfFailure struct{ err error }

func (e *ipconfFailure) Error() string { return e.err.Error() }
func (e *ipconfFailure) Unwrap() error { return e.err }

// judge returns err when a failed attempt ends the client, nil when another attempt follows.
func (c *Client) judge(err error) error {
	if errors.As(err, new(*ipconfFailure)) {
		if classifyIPConf(err) == final {
			return err
		}
		return nil
	}
	switch classify(err) {
	case final:
		return err
	case renew:
		return c.route.refused(err)
	}
	return nil
}
