package stage

import (
	"context"
	"errors"
	"os"
	"time"
)

// On the data socket, a caller whose batch is the only one in flight reads its result itself
// instead of waiting for the stream's receiver goroutine to read it and hand it over: that
// hand-over woke a goroutine, and often a thread, per batch, about a third of the host's CPU per
// round trip when one caller waits for each batch (docs/adr/0011-stage-data-socket.md).
//
// One goroutine at a time holds the reading role (muxStream.reading): a caller that finds it free
// after sending, with no other call's result due, takes it and reads, routing any other call's result to its waiter as the receiver
// would, until its own result comes or its ctx ends (an AfterFunc of ctx then moves the socket's
// read deadline to the past). It then passes the role to the receiver goroutine if a
// result is still due (another caller's, or its own after it left), or frees it. The receiver reads
// while it holds the role and results are due, so late results are still read and counted
// (Liveness), and a busy stream, where results are always due, is read by it as before.

// leadReader is a muxConn whose results a caller may read itself, with its own deadline (the data
// socket). Requests are []byte, as for a directSender.
type leadReader interface {
	setReadDeadline(t time.Time) error
}

// longAgo is a read deadline in the past: a blocked read returns at once.
var longAgo = time.Unix(1, 0)

// lead takes the reading role for a call just sent, if it is free and no other result is due, and
// reads until the call's result; ok false means the receiver reads, and the caller waits for its
// result as usual.
func (s *muxStream[Req, Resp]) lead(ctx context.Context, id uint64, w chan Resp) (r Resp, end callEnd, ok bool) {
	s.mu.Lock()
	if _, waiting := s.waiters[id]; !waiting || s.err != nil || s.reading {
		// Its result already routed (by the receiver, before it gave the role up), or the
		// stream ended, or another goroutine reads: w, or done, has the answer.
		s.mu.Unlock()
		return r, end, false
	}
	if s.due > 1 { // others in flight: the receiver reads for all
		s.reading = true
		s.readReq <- struct{}{} // buffered, and empty: the role was free
		s.mu.Unlock()
		return r, end, false
	}
	s.reading = true
	s.leader = id
	s.mu.Unlock()
	var stop func() bool
	if ctx.Done() != nil {
		// Its deadline and its cancel both end ctx: the AfterFunc serves both, and a deadline set
		// on the socket per call would add a timer per batch to the runtime's.
		stop = context.AfterFunc(ctx, func() {
			s.mu.Lock()
			if s.leader == id { // still reading: make its read return
				s.dl = longAgo
				_ = s.leadConn.setReadDeadline(longAgo)
			}
			s.mu.Unlock()
		})
	}
	r, end = s.readFor(ctx, id, w)
	if stop != nil {
		stop()
	}
	s.release()
	return r, end, true
}

// readFor reads results, holding the reading role, until the one of call id.
func (s *muxStream[Req, Resp]) readFor(ctx context.Context, id uint64, w chan Resp) (Resp, callEnd) {
	var none Resp
	s.mu.Lock()                       // s.dl is also set by the AfterFunc of an ended ctx, under mu
	if err := ctx.Err(); err != nil { // ended before its AfterFunc could see a leader
		s.mu.Unlock()
		s.abandon(id, err)
		return none, callCtxEnded
	}
	s.clearDeadline()
	s.mu.Unlock()
	for {
		rid, resp, err := s.conn.recv()
		if err != nil {
			select {
			case r := <-w: // routed just before
				return r, callAnswered
			default:
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				<-ctx.Done() // its deadline, or the cancel that moved the read deadline
				s.abandon(id, ctx.Err())
				return none, callCtxEnded
			}
			s.fail(err)
			return none, callBroken
		}
		s.route(rid, resp)
		select {
		case r := <-w:
			return r, callAnswered
		default:
		}
	}
}

// release gives up the reading role: to the receiver goroutine while a result is due, else free.
func (s *muxStream[Req, Resp]) release() {
	s.mu.Lock()
	s.leader = 0
	if s.err == nil && s.due > 0 {
		s.readReq <- struct{}{} // buffered, and empty: only the role's holder sends
	} else {
		s.reading = false
	}
	s.mu.Unlock()
}

// recvLoopLed is the receiver goroutine of a leadReader stream: it reads while it holds the role.
func (s *muxStream[Req, Resp]) recvLoopLed() {
	for {
		select {
		case <-s.readReq:
		case <-s.done:
			return
		}
		s.mu.Lock()
		s.clearDeadline()
		s.mu.Unlock()
		for {
			id, resp, err := s.conn.recv()
			if err != nil {
				s.fail(err)
				return
			}
			s.route(id, resp)
			s.mu.Lock()
			idle := s.due == 0
			if idle {
				s.reading = false
			}
			s.mu.Unlock()
			if idle {
				break
			}
		}
	}
}

// clearDeadline lifts the read deadline an ended ctx's AfterFunc set, if any; s.mu is held.
func (s *muxStream[Req, Resp]) clearDeadline() {
	if !s.dl.IsZero() {
		s.dl = time.Time{}
		_ = s.leadConn.setReadDeadline(time.Time{})
	}
}
