package stage

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Both long-lived bidi streams of this package, the host's Process stream (client_stream.go) and a
// plugin's HostCalls stream (hostclient_stream.go), are multiplexed the same way: every caller
// sends its request under a fresh id and waits for the response of that id, so any number of calls
// may be in flight on one stream, answered in whatever order they finish. A mux is one such
// stream, opened on first use and again after it broke; a muxStream (stream_mux_stream.go) is one
// open stream. What differs, the messages, what a broken stream means to a caller and when a
// stream may be opened, stays with each user.
//
// Locks never nest: mux.mu guards opening and closing, muxStream.mu the waiters.

// muxConn is one open bidi stream as a mux uses it.
type muxConn[Req, Resp any] interface {
	// send sends one request; only the stream's sender goroutine calls it. An error ends the
	// stream; io.EOF (wrapped or not) means it has ended already.
	send(req Req) error
	// recv returns the next response and the id of the call it answers; only the stream's
	// receiver goroutine calls it. An error ends the stream with that error.
	recv() (id uint64, resp Resp, err error)
}

// callCanceller is a muxConn whose other side can be told that the caller of a sent call left.
type callCanceller interface {
	sendCancel(id uint64) error
}

// mux is a stream shared by every caller, reopened after it breaks.
type mux[Req, Resp any] struct {
	// open opens a new stream; cancel ends it. Called under mu: one opening at a time, and every
	// caller waits for it.
	open func(ctx context.Context) (c muxConn[Req, Resp], cancel context.CancelFunc, err error)

	ids    atomic.Uint64
	cur    atomic.Pointer[muxStream[Req, Resp]] // the last stream opened; nil before and after close
	mu     sync.Mutex                           // serializes opening streams and close
	closed bool
}

// nextID is a fresh call id, to be encoded into the request.
func (m *mux[Req, Resp]) nextID() uint64 { return m.ids.Add(1) }

// stream returns the open stream, opening one if there is none or the last one broke; ErrClosed
// after close, or open's error.
func (m *mux[Req, Resp]) stream(ctx context.Context) (*muxStream[Req, Resp], error) {
	if s := m.cur.Load(); s != nil && !s.broken() {
		return s, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if s := m.cur.Load(); s != nil && !s.broken() {
		return s, nil
	}
	c, cancel, err := m.open(ctx)
	if err != nil {
		return nil, err
	}
	s := newMuxStream(c, cancel)
	m.cur.Store(s)
	return s, nil
}

// close ends the mux for good: calls waiting on its stream see it broken by err, and stream
// returns ErrClosed from then on.
func (m *mux[Req, Resp]) close(err error) {
	m.mu.Lock()
	m.closed = true
	s := m.cur.Swap(nil)
	m.mu.Unlock()
	if s != nil {
		s.fail(err)
	}
}

// openStream opens a stream with dial. The stream serves later callers too, so it must outlive
// ctx, but opening is bounded by ctx: interrupted says ctx ended first (err is then dial's error,
// or ctx's). cancel ends the stream; it is nil when err is not.
func openStream[S any](ctx context.Context, dial func(context.Context) (S, error)) (st S, cancel context.CancelFunc, interrupted bool, err error) {
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	st, err = dial(sctx)
	if !stop() {
		cancel()
		if err == nil {
			err = ctx.Err()
		}
		var none S
		return none, nil, true, err
	}
	if err != nil {
		cancel()
		return st, nil, false, err
	}
	return st, cancel, false, nil
}

// remainingUS is ctx's time left in microseconds, at least 1, sent with a call so the other side
// gives up when its caller does; 0 without a deadline.
func remainingUS(ctx context.Context) int64 {
	if dl, ok := ctx.Deadline(); ok {
		return max(int64(time.Until(dl)/time.Microsecond), 1)
	}
	return 0
}
