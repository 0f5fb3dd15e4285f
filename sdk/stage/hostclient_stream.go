package stage

import (
	"context"
	"errors"
	"fmt"
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
// stream is multiplexed (a mux, see stream_mux.go): every caller sends its call under a fresh id
// and waits for the answer of that id, so any number of calls may be in flight.
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
// Its methods (hostclient_calls.go) return what the unary RPC would: the response, or a gRPC
// status error with the host's code and message.
type hostMux struct {
	c      pb.HostClient
	reopen time.Duration // reopenInterval; tests shorten it

	calls       mux[*grpc.PreparedMsg, *pb.HostAnswer]
	unsupported atomic.Bool  // the host has no HostCalls: unary for good
	retryAt     atomic.Int64 // unix ns before which no stream is opened
}

// hostStream is one open HostCalls stream.
type hostStream = muxStream[*grpc.PreparedMsg, *pb.HostAnswer]

var _ hostAPI = (*hostMux)(nil)

func newHostMux(c pb.HostClient) *hostMux {
	m := &hostMux{c: c, reopen: reopenInterval}
	m.calls.open = m.open
	return m
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
	c.Id = m.calls.nextID()
	c.TimeoutUs = remainingUS(ctx)
	// Encoded here, not by the sender: a call that cannot be marshalled (a string that is not
	// UTF-8) fails alone, with the unary call's error, instead of ending the stream. Encoding
	// needs the gRPC stream itself (for its codec and compressor), hence the assertion.
	msg := new(grpc.PreparedMsg)
	if err := msg.Encode(s.conn.(*hostConn).stream, c); err != nil {
		return nil, err
	}
	a, end := s.call(ctx, c.Id, msg)
	switch end {
	case callAnswered:
		return answer(ctx, a)
	case callCtxEnded:
		return nil, status.FromContextError(ctx.Err()).Err()
	case callNotSent:
		return nil, errUnary
	default:
		return nil, brokenErr(s.cause())
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

// brokenErr is what a call that was sent on the stream gets when the stream ends (with err)
// before its answer: Unavailable, with the cause, since the call may or may not have taken effect.
func brokenErr(err error) error {
	if errors.Is(err, errUnary) {
		return errUnary // the host never ran it
	}
	msg := err.Error()
	if st, ok := status.FromError(err); ok {
		msg = st.Message()
	}
	return status.Error(codes.Unavailable, "host call stream broken: "+msg)
}

// stream returns the open stream, opening one if there is none and opening is allowed now; nil
// means make the call unary.
func (m *hostMux) stream(ctx context.Context) *hostStream {
	s := m.calls.cur.Load()
	if s != nil && !s.broken() {
		return s
	}
	// Without the lock only when a stream broke (s is not nil): before the first stream, callers
	// must wait for the one opening it rather than see its back-off and go unary.
	if m.unsupported.Load() || s != nil && time.Now().UnixNano() < m.retryAt.Load() {
		return nil
	}
	s, err := m.calls.stream(ctx)
	if err != nil {
		return nil // closed, or no stream now (see open)
	}
	return s
}

// open opens a HostCalls stream for m.calls, unless the host has none or the last opening was
// less than m.reopen ago; opening is bounded by ctx.
func (m *hostMux) open(ctx context.Context) (muxConn[*grpc.PreparedMsg, *pb.HostAnswer], context.CancelFunc, error) {
	if m.unsupported.Load() {
		return nil, nil, errUnary
	}
	now := time.Now()
	if now.UnixNano() < m.retryAt.Load() {
		return nil, nil, errUnary
	}
	st, cancel, interrupted, err := openStream(ctx, func(sctx context.Context) (pb.Host_HostCallsClient, error) {
		return m.c.HostCalls(sctx)
	})
	if interrupted {
		// The caller's ctx ended while opening: not the stream's fault, no back-off. The unary
		// call it falls back to fails at once with the context's error.
		return nil, nil, errUnary
	}
	m.retryAt.Store(now.Add(m.reopen).UnixNano())
	if err != nil {
		return nil, nil, errUnary
	}
	return &hostConn{mux: m, stream: st}, cancel, nil
}

// close ends the stream for good (the Host's connection is being closed: a new Init replaced
// it); calls still waiting fail, later ones go unary and get the closed connection's error.
func (m *hostMux) close() {
	m.calls.close(errors.New("the host connection was closed"))
}

// hostConn is a HostCalls stream as the mux uses it.
type hostConn struct {
	mux      *hostMux
	stream   pb.Host_HostCallsClient
	answered bool // an answer came: this host knows HostCalls (the receiver's)
}

func (c *hostConn) send(msg *grpc.PreparedMsg) error { return c.sendMsg(msg) }

// sendCancel has the host cancel call id, as a unary call's cancellation would.
func (c *hostConn) sendCancel(id uint64) error {
	return c.sendMsg(&pb.HostCall{Id: id, Cancel: true})
}

func (c *hostConn) sendMsg(msg any) error {
	if err := c.stream.SendMsg(msg); err != nil {
		return fmt.Errorf("sending a host call: %w", err)
	}
	return nil
}

func (c *hostConn) recv() (uint64, *pb.HostAnswer, error) {
	a, err := c.stream.Recv()
	if err != nil {
		if status.Code(err) == codes.Unimplemented && !c.answered {
			// A host older than HostCalls: it ran none of the calls sent, so they, and every
			// later call, are made unary.
			c.mux.unsupported.Store(true)
			err = errUnary
		}
		return 0, nil, err
	}
	c.answered = true
	return a.GetId(), a, nil
}
