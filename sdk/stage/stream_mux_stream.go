package stage

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// muxStream is one open stream of a mux: callers register a waiter under their call's id and hand
// the request to the sender goroutine; the receiver goroutine routes each response to its waiter
// by id. The first error on the stream fails every waiter, and the mux opens a new stream for
// later calls.
type muxStream[Req, Resp any] struct {
	conn      muxConn[Req, Resp]
	canceller callCanceller // conn, when it can cancel calls; nil otherwise
	direct    directSender  // conn, when callers may write to it themselves; nil otherwise
	// writing holds the one token of a direct stream while a request is being written: taken by
	// a caller writing directly or by the sender. A caller that wrote part of a request hands
	// the rest, and the token with it, to the sender through rest.
	writing chan struct{}
	rest    chan []byte
	cancel  context.CancelFunc // ends the stream
	sendq   chan Req
	wake    chan struct{} // cancels is not empty (buffered: one pending wake-up is enough)
	done    chan struct{} // closed by fail

	leadConn leadReader    // conn, when callers may read their results themselves; nil otherwise
	readReq  chan struct{} // passes the reading role to the receiver (stream_mux_lead.go)

	mu      sync.Mutex
	waiters map[uint64]chan Resp
	// With leadConn: due counts the results still to come, of calls sent (or about to be) and
	// not answered, their callers waiting or not; reading says a goroutine holds the reading
	// role, leader which call's caller it is (0: the receiver, or nobody); dl is the socket's
	// read deadline: zero, or set in the past by an ended ctx's AfterFunc to make the leader's read
	// return, and lifted by the next holder of the role.
	due     int
	reading bool
	leader  uint64
	dl      time.Time
	cancels []uint64 // calls their callers gave up on (ctx cancelled), for the sender to cancel
	err     error    // why the stream ended; set before done is closed
}

// callEnd is how a call on a muxStream ended.
type callEnd uint8

const (
	callAnswered callEnd = iota // its response came
	callCtxEnded                // the caller's ctx ended first; a response arriving later is dropped
	callNotSent                 // the stream ended before the sender took it: the other side never saw it
	callBroken                  // the stream ended after it was sent: it may or may not have taken effect
)

func newMuxStream[Req, Resp any](c muxConn[Req, Resp], cancel context.CancelFunc) *muxStream[Req, Resp] {
	s := &muxStream[Req, Resp]{
		conn:    c,
		cancel:  cancel,
		sendq:   make(chan Req),
		done:    make(chan struct{}),
		waiters: make(map[uint64]chan Resp),
	}
	if d, ok := c.(directSender); ok {
		s.direct = d
		s.writing = make(chan struct{}, 1)
		s.writing <- struct{}{}
		s.rest = make(chan []byte, 1)
	}
	if cc, ok := c.(callCanceller); ok {
		s.canceller = cc
		s.wake = make(chan struct{}, 1) // nil otherwise: the sender's select skips it
	}
	go s.sendLoop()
	if l, ok := c.(leadReader); ok && s.direct != nil {
		s.leadConn = l
		s.readReq = make(chan struct{}, 1)
		go s.recvLoopLed()
	} else {
		go s.recvLoop()
	}
	return s
}

// call sends req, the request of call id, and waits for its response, the stream's end, or ctx,
// whichever comes first. Calls are sent in the order the sender takes them.
func (s *muxStream[Req, Resp]) call(ctx context.Context, id uint64, req Req) (Resp, callEnd) {
	var none Resp
	w := make(chan Resp, 1)
	if !s.register(id, w) {
		return none, callNotSent
	}
	if sent, ok := s.sendDirect(req); ok {
		if !sent {
			return none, callNotSent
		}
	} else {
		select {
		case s.sendq <- req:
		case <-ctx.Done():
			s.unregister(id)
			return none, callCtxEnded
		case <-s.done:
			return none, callNotSent
		}
	}
	if s.leadConn != nil {
		if r, end, ok := s.lead(ctx, id, w); ok {
			return r, end
		}
	}
	select {
	case r := <-w:
		return r, callAnswered
	case <-ctx.Done():
		s.abandon(id, ctx.Err())
		return none, callCtxEnded
	case <-s.done:
		select {
		case r := <-w: // routed just before the stream broke
			return r, callAnswered
		default:
			return none, callBroken
		}
	}
}

// directSender is a muxConn to which a caller may write its request itself, as far as that does
// not block (the data socket): trySend writes what it can of b without blocking and says how much.
// Requests are []byte then.
type directSender interface {
	trySend(b []byte) (n int, err error)
}

// sendDirect writes req in the caller's goroutine when the stream allows it: ok false means
// the caller must hand req to the sender goroutine (not a direct stream, the sender busy, or the
// socket full before any byte went). sent false means the stream ended before anything was
// written. A request written in part is finished by the sender goroutine, before anything else.
func (s *muxStream[Req, Resp]) sendDirect(req Req) (sent, ok bool) {
	if s.direct == nil {
		return false, false
	}
	select {
	case <-s.writing:
	default: // the sender, or another caller, is writing
		return false, false
	}
	b := any(req).([]byte)
	n, err := s.direct.trySend(b)
	switch {
	case err != nil:
		s.writing <- struct{}{}
		s.fail(err) // the socket is gone: nobody can write on it any more
		return n > 0, true
	case n == len(b):
		s.writing <- struct{}{}
		return true, true
	case n == 0:
		s.writing <- struct{}{}
		return false, false
	}
	s.rest <- b[n:] // buffered, and empty: we hold the token, which goes with it to the sender
	return true, true
}

func (s *muxStream[Req, Resp]) broken() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// cause is why the stream ended; nil while it is open.
func (s *muxStream[Req, Resp]) cause() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// register adds w as the waiter of id; false when the stream has already ended.
func (s *muxStream[Req, Resp]) register(id uint64, w chan Resp) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false
	}
	s.waiters[id] = w
	s.due++
	return true
}

func (s *muxStream[Req, Resp]) unregister(id uint64) {
	s.mu.Lock()
	delete(s.waiters, id)
	s.due = max(s.due-1, 0) // never sent: no result is due
	s.mu.Unlock()
}

// abandon forgets the waiter of a sent call whose caller left. A cancelled caller also has the
// other side cancel the call, where the stream can say so (HostCalls), as a unary call's
// cancellation would; an expired one needs nothing, as the other side's copy of the deadline
// expires by itself.
func (s *muxStream[Req, Resp]) abandon(id uint64, cause error) {
	s.mu.Lock()
	delete(s.waiters, id)
	cancel := s.canceller != nil && errors.Is(cause, context.Canceled) && s.err == nil
	if cancel {
		s.cancels = append(s.cancels, id)
	}
	s.mu.Unlock()
	if cancel {
		select {
		case s.wake <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// sendLoop is the stream's only sender. A goroutine rather than a mutex around send, so that a
// caller whose ctx ends while send is blocked (the other side stopped reading) can still leave.
func (s *muxStream[Req, Resp]) sendLoop() {
	for {
		select {
		case req := <-s.sendq:
			if s.direct != nil && !s.takeWriting() {
				return
			}
			err := s.conn.send(req)
			if s.direct != nil {
				s.writing <- struct{}{}
			}
			if !s.sent(err) {
				return
			}
		case b := <-s.rest: // with the token of the caller who wrote the start of b
			err := s.conn.send(any(b).(Req))
			s.writing <- struct{}{}
			if !s.sent(err) {
				return
			}
		case <-s.wake:
			s.mu.Lock()
			ids := s.cancels
			s.cancels = nil
			s.mu.Unlock()
			for _, id := range ids {
				if !s.sent(s.canceller.sendCancel(id)) {
					return
				}
			}
		case <-s.done:
			return
		}
	}
}

// takeWriting takes the writing token for the sender, finishing first a request a caller wrote in
// part (whose token then passes to the sender); false when the stream ended meanwhile.
func (s *muxStream[Req, Resp]) takeWriting() bool {
	select {
	case <-s.writing:
		return true
	case b := <-s.rest:
		return s.sent(s.conn.send(any(b).(Req)))
	case <-s.done:
		return false
	}
}

// sent reports whether a send succeeded, and ends the stream when it did not.
func (s *muxStream[Req, Resp]) sent(err error) bool {
	if err == nil {
		return true
	}
	// io.EOF: the stream ended, and the receiver is about to fail it with the real error from its
	// recv (which tells, say, an older host's Unimplemented from a break). Anything else ended the
	// stream too: gRPC finishes a stream on a send error.
	if !errors.Is(err, io.EOF) {
		s.fail(err)
	}
	return false
}

func (s *muxStream[Req, Resp]) recvLoop() {
	for {
		id, resp, err := s.conn.recv()
		if err != nil {
			s.fail(err)
			return
		}
		s.route(id, resp)
	}
}

// route hands resp to the waiter of call id, if it still waits.
func (s *muxStream[Req, Resp]) route(id uint64, resp Resp) {
	s.mu.Lock()
	w, ok := s.waiters[id]
	delete(s.waiters, id)
	s.due = max(s.due-1, 0)
	s.mu.Unlock()
	if ok {
		w <- resp // buffered: never blocks
	}
}

// fail ends the stream with err, once; every waiter sees done closed.
func (s *muxStream[Req, Resp]) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	s.waiters = nil
	s.cancels = nil
	close(s.done)
	s.mu.Unlock()
	s.cancel()
}
