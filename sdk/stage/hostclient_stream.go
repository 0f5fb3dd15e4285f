package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/platoim/plato/sdk/stage/internal/pb"
)

// A plugin's Host calls travel over one long-lived HostCalls stream (hostMux) rather than one
// unary RPC each, because the retransmit stage makes two to four calls per downlink and a unary
// call over go-plugin's broker is costly: a new HTTP/2 stream, headers and trailers, a goroutine.
// On the stream a call is one message each way, and the state server spends 1.3-2.5x less CPU on
// it (BenchmarkHostCall; what remains is mostly the syscalls and wake-ups of a round trip). The
// stream is multiplexed: every caller sends its call under a fresh id and waits for the answer of
// that id, so any number of calls may be in flight.
//
// The messages are the generated protobuf types: encoding and decoding are about 15% of the state
// server's CPU per call with eight concurrent callers (less with one), not worth a second
// hand-written codec (ADR 0006) while the transport costs the rest.
//
// Order: a call is sent once the stream's sender has taken it, and calls are sent in the order
// they were taken. The host runs State and Timer calls on the stream's receiver, one after
// another in that order, so they take effect in the order they were made, even from different
// goroutines (and a call that timed out after being sent still lands before any later one). The
// other calls (Push, Resend, Undelivered, Bind, Unbind, Sessions, Join) run concurrently on the
// host: concurrent ones have no order, but a call made after another returned starts after it,
// as with unary calls. Answers come back in whatever order calls finish.
//
// Fallback: the unary RPCs still exist and are used while there is no stream: before a host
// without HostCalls (an older one) is known to be one, from then on; for reopenInterval after the
// stream broke (a host that fails every stream is not hammered); and when opening fails. A call
// already sent on a stream that breaks is not retried (it may have taken effect): it fails with
// "host call stream broken: ...". A call never sent is made unary instead.
//
// Locks never nest: hostMux.mu guards opening and closing, hostStream.mu its waiters.

// reopenInterval is the least time between two stream openings of one hostMux.
const reopenInterval = time.Second

// errUnary tells a hostMux method to make its call with the unary RPC instead: there is no
// stream, the call was never sent on one, or the host does not know the call.
var errUnary = errors.New("stage host: use the unary call")

// hostAPI is the Host service as hostClient calls it: hostMux, over the stream.
type hostAPI interface {
	Push(context.Context, *pb.PushRequest) (*pb.PushResponse, error)
	Resend(context.Context, *pb.ResendRequest) (*pb.Empty, error)
	Undelivered(context.Context, *pb.UndeliveredRequest) (*pb.Empty, error)
	Bind(context.Context, *pb.BindRequest) (*pb.Empty, error)
	Timer(context.Context, *pb.TimerRequest) (*pb.Empty, error)
	State(context.Context, *pb.StateRequest) (*pb.StateResponse, error)
	Sessions(context.Context, *pb.SessionsRequest) (*pb.SessionsResponse, error)
	Join(context.Context, *pb.JoinRequest) (*pb.Empty, error)
}

// hostMux makes Host calls over the HostCalls stream, opened on first use, or unary (see above).
// Its methods return what the unary RPC would: the response, or a gRPC status error with the
// host's code and message.
type hostMux struct {
	c      pb.HostClient
	reopen time.Duration // reopenInterval; tests shorten it

	ids         atomic.Uint64
	cur         atomic.Pointer[hostStream] // the open stream, nil before the first call
	unsupported atomic.Bool                // the host has no HostCalls: unary for good
	retryAt     atomic.Int64               // unix ns before which no stream is opened

	mu     sync.Mutex // serializes opening streams and close
	closed bool
}

var _ hostAPI = (*hostMux)(nil)

func newHostMux(c pb.HostClient) *hostMux { return &hostMux{c: c, reopen: reopenInterval} }

// hostStream is one open HostCalls stream: callers register a waiter under their call's id and
// hand the encoded call to the sender goroutine; the receiver goroutine routes each answer to its
// waiter. The first error fails every waiter, and a later call opens a new stream.
type hostStream struct {
	mux    *hostMux
	stream pb.Host_HostCallsClient
	cancel context.CancelFunc
	sendq  chan *grpc.PreparedMsg
	wake   chan struct{} // cancels is not empty (buffered: one pending wake-up is enough)
	done   chan struct{} // closed by fail

	mu       sync.Mutex
	waiters  map[uint64]chan *pb.HostAnswer
	cancels  []uint64 // calls their callers gave up on (ctx cancelled), for the sender to cancel
	answered bool     // an answer came: this host knows HostCalls
	err      error    // why the stream ended; set before done is closed
}

// call makes c over the stream and returns its answer; errUnary when the caller should make the
// call unary instead. A call whose ctx ends returns at once with the context's status (as a unary
// call does); so does one whose answer arrives after its ctx ended.
func (m *hostMux) call(ctx context.Context, c *pb.HostCall) (*pb.HostAnswer, error) {
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	s := m.stream(ctx)
	if s == nil {
		return nil, errUnary
	}
	c.Id = m.ids.Add(1)
	if dl, ok := ctx.Deadline(); ok {
		c.TimeoutUs = max(int64(time.Until(dl)/time.Microsecond), 1)
	}
	// Encoded here, not by the sender: a call that cannot be marshalled (a string that is not
	// UTF-8) fails alone, with the unary call's error, instead of ending the stream.
	msg := new(grpc.PreparedMsg)
	if err := msg.Encode(s.stream, c); err != nil {
		return nil, err
	}
	w := make(chan *pb.HostAnswer, 1)
	if !s.register(c.Id, w) {
		return nil, errUnary // the stream broke before the call was sent
	}
	select {
	case s.sendq <- msg:
	case <-ctx.Done():
		s.unregister(c.Id)
		return nil, status.FromContextError(ctx.Err()).Err()
	case <-s.done:
		return nil, errUnary
	}
	select {
	case a := <-w:
		return answer(ctx, a)
	case <-ctx.Done():
		s.abandon(c.Id, ctx.Err())
		return nil, status.FromContextError(ctx.Err()).Err()
	case <-s.done:
		select {
		case a := <-w: // routed just before the stream broke
			return answer(ctx, a)
		default:
			return nil, s.brokenErr()
		}
	}
}

// answer turns a HostAnswer into what the unary call would have returned.
func answer(ctx context.Context, a *pb.HostAnswer) (*pb.HostAnswer, error) {
	if err := ctx.Err(); err != nil {
		// Late: the caller's time is up, and a unary call would have said so too.
		return nil, status.FromContextError(err).Err()
	}
	switch code := codes.Code(a.GetCode()); code {
	case codes.OK:
		return a, nil
	case codes.Unimplemented:
		// A host older than this SDK that has the stream but not this kind of call.
		return nil, errUnary
	default:
		return nil, status.Error(code, a.GetError())
	}
}

// stream returns the open stream, opening one if there is none and opening is allowed now; nil
// means make the call unary.
func (m *hostMux) stream(ctx context.Context) *hostStream {
	s := m.cur.Load()
	if s != nil && !s.broken() {
		return s
	}
	// Without the lock only when a stream broke (s is not nil): before the first stream, callers
	// must wait for the one opening it rather than see its back-off and go unary.
	if m.unsupported.Load() || s != nil && time.Now().UnixNano() < m.retryAt.Load() {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.unsupported.Load() {
		return nil
	}
	if s := m.cur.Load(); s != nil && !s.broken() {
		return s
	}
	now := time.Now()
	if now.UnixNano() < m.retryAt.Load() {
		return nil
	}
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel) // opening is bounded by the caller's ctx
	st, err := m.c.HostCalls(sctx)
	if !stop() {
		// The caller's ctx ended while opening: not the stream's fault, no back-off. The unary
		// call it falls back to fails at once with the context's error.
		cancel()
		return nil
	}
	m.retryAt.Store(now.Add(m.reopen).UnixNano())
	if err != nil {
		cancel()
		return nil
	}
	s = &hostStream{
		mux:     m,
		stream:  st,
		cancel:  cancel,
		sendq:   make(chan *grpc.PreparedMsg),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		waiters: make(map[uint64]chan *pb.HostAnswer),
	}
	go s.sendLoop()
	go s.recvLoop()
	m.cur.Store(s)
	return s
}

// close ends the stream for good (the Host's connection is being closed: a new Init replaced
// it); calls still waiting fail, later ones go unary and get the closed connection's error.
func (m *hostMux) close() {
	m.mu.Lock()
	m.closed = true
	s := m.cur.Swap(nil)
	m.mu.Unlock()
	if s != nil {
		s.fail(errors.New("the host connection was closed"))
	}
}

func (s *hostStream) broken() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// register adds w as the waiter of id; false when the stream has already ended.
func (s *hostStream) register(id uint64, w chan *pb.HostAnswer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false
	}
	s.waiters[id] = w
	return true
}

func (s *hostStream) unregister(id uint64) {
	s.mu.Lock()
	delete(s.waiters, id)
	s.mu.Unlock()
}

// abandon forgets the waiter of a sent call whose caller left. A cancelled caller also has the
// host cancel the call, as a unary call's cancellation would; an expired one needs nothing, as the
// host's copy of the deadline expires by itself.
func (s *hostStream) abandon(id uint64, cause error) {
	s.mu.Lock()
	delete(s.waiters, id)
	cancel := errors.Is(cause, context.Canceled) && s.err == nil
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

// sendLoop is the stream's only sender. A goroutine rather than a mutex around Send, so that a
// caller whose ctx ends while Send is blocked (the host stopped reading) can still leave.
func (s *hostStream) sendLoop() {
	for {
		select {
		case msg := <-s.sendq:
			if !s.send(msg) {
				return
			}
		case <-s.wake:
			s.mu.Lock()
			ids := s.cancels
			s.cancels = nil
			s.mu.Unlock()
			for _, id := range ids {
				if !s.send(&pb.HostCall{Id: id, Cancel: true}) {
					return
				}
			}
		case <-s.done:
			return
		}
	}
}

// send sends one message; false when the stream has ended.
func (s *hostStream) send(msg any) bool {
	if err := s.stream.SendMsg(msg); err != nil {
		// io.EOF: the stream ended, and the receiver is about to fail it with the real error
		// from Recv (which tells an older host's Unimplemented from a break). Anything else
		// ended the stream too: gRPC finishes a stream on a send error.
		if !errors.Is(err, io.EOF) {
			s.fail(fmt.Errorf("sending a host call: %w", err))
		}
		return false
	}
	return true
}

func (s *hostStream) recvLoop() {
	for {
		a, err := s.stream.Recv()
		if err != nil {
			s.mu.Lock()
			answered := s.answered
			s.mu.Unlock()
			if status.Code(err) == codes.Unimplemented && !answered {
				// A host older than HostCalls: it ran none of the calls sent, so they, and every
				// later call, are made unary.
				s.mux.unsupported.Store(true)
				err = errUnary
			}
			s.fail(err)
			return
		}
		s.mu.Lock()
		s.answered = true
		w, ok := s.waiters[a.GetId()]
		delete(s.waiters, a.GetId())
		s.mu.Unlock()
		if ok {
			w <- a // buffered: never blocks
		}
	}
}

// fail ends the stream with err, once; every waiter sees done closed.
func (s *hostStream) fail(err error) {
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

// brokenErr is what a call that was sent on the stream gets when the stream ends before its
// answer: Unavailable, with the cause, since the call may or may not have taken effect.
func (s *hostStream) brokenErr() error {
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if errors.Is(err, errUnary) {
		return errUnary // the host never ran it
	}
	msg := err.Error()
	if st, ok := status.FromError(err); ok {
		msg = st.Message()
	}
	return status.Error(codes.Unavailable, "host call stream broken: "+msg)
}

// The Host service's calls, over the stream or unary.

func (m *hostMux) Push(ctx context.Context, req *pb.PushRequest) (*pb.PushResponse, error) {
	a, err := m.call(ctx, &pb.HostCall{Call: &pb.HostCall_Push{Push: req}})
	if errors.Is(err, errUnary) {
		return m.c.Push(ctx, req)
	}
	return a.GetPush(), err
}

func (m *hostMux) Resend(ctx context.Context, req *pb.ResendRequest) (*pb.Empty, error) {
	_, err := m.call(ctx, &pb.HostCall{Call: &pb.HostCall_Resend{Resend: req}})
	if errors.Is(err, errUnary) {
		return m.c.Resend(ctx, req)
	}
	return nil, err
}

func (m *hostMux) Undelivered(ctx context.Context, req *pb.UndeliveredRequest) (*pb.Empty, error) {
	_, err := m.call(ctx, &pb.HostCall{Call: &pb.HostCall_Undelivered{Undelivered: req}})
	if errors.Is(err, errUnary) {
		return m.c.Undelivered(ctx, req)
	}
	return nil, err
}

func (m *hostMux) Bind(ctx context.Context, req *pb.BindRequest) (*pb.Empty, error) {
	_, err := m.call(ctx, &pb.HostCall{Call: &pb.HostCall_Bind{Bind: req}})
	if errors.Is(err, errUnary) {
		return m.c.Bind(ctx, req)
	}
	return nil, err
}

func (m *hostMux) Timer(ctx context.Context, req *pb.TimerRequest) (*pb.Empty, error) {
	_, err := m.call(ctx, &pb.HostCall{Call: &pb.HostCall_Timer{Timer: req}})
	if errors.Is(err, errUnary) {
		return m.c.Timer(ctx, req)
	}
	return nil, err
}

func (m *hostMux) State(ctx context.Context, req *pb.StateRequest) (*pb.StateResponse, error) {
	a, err := m.call(ctx, &pb.HostCall{Call: &pb.HostCall_State{State: req}})
	if errors.Is(err, errUnary) {
		return m.c.State(ctx, req)
	}
	return a.GetState(), err
}

func (m *hostMux) Sessions(ctx context.Context, req *pb.SessionsRequest) (*pb.SessionsResponse, error) {
	a, err := m.call(ctx, &pb.HostCall{Call: &pb.HostCall_Sessions{Sessions: req}})
	if errors.Is(err, errUnary) {
		return m.c.Sessions(ctx, req)
	}
	return a.GetSessions(), err
}

func (m *hostMux) Join(ctx context.Context, req *pb.JoinRequest) (*pb.Empty, error) {
	_, err := m.call(ctx, &pb.HostCall{Call: &pb.HostCall_Join{Join: req}})
	if errors.Is(err, errUnary) {
		return m.c.Join(ctx, req)
	}
	return nil, err
}
