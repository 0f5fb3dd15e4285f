package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/platoim/plato/sdk/stage/internal/pb"
)

// maxAsyncHostCalls bounds the calls one HostCalls stream runs concurrently on their own
// goroutines. A plugin has about as many calls in flight as it has batches (the host's lanes), so
// this is a guard against a runaway plugin, not a limit a stage meets: past it the stream stops
// reading, and the plugin's calls wait (within their deadlines) as they would for a slow host.
const maxAsyncHostCalls = 1024

// HostCalls serves the plugin's Host calls on one stream (see hostclient_stream.go for the
// plugin's side). Each call is served by the same method as its unary RPC, so results, errors
// and deadlines are the same; its context is the stream's, bounded by the call's timeout_us.
//
// State and Timer calls only touch the host's memory, so they run here, on the receiving
// goroutine, one after another in the order they arrive; their order is part of the contract.
// The others may block (Push waits on gateways, Sessions on the business server), so each runs on
// its own goroutine, at most maxAsyncHostCalls at a time, and can be cancelled by the plugin.
func (s *hostServer) HostCalls(stream pb.Host_HostCallsServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel() // ends the calls still running once the stream is gone
	out := &answerSender{stream: stream}
	defer out.close()

	var (
		mu      sync.Mutex
		running = make(map[uint64]context.CancelFunc) // async calls, for cancel messages
	)
	sem := make(chan struct{}, maxAsyncHostCalls)
	for {
		c, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			// A status, so that the plugin sees the code and a readable message.
			return status.Errorf(status.Code(err), "receiving host calls: %s", status.Convert(err).Message())
		}
		id := c.GetId()
		if c.GetCancel() {
			mu.Lock()
			if stop := running[id]; stop != nil {
				stop()
			}
			mu.Unlock()
			continue
		}
		switch c.GetCall().(type) {
		case *pb.HostCall_State, *pb.HostCall_Timer:
			cctx, stop := callContext(ctx, c.GetTimeoutUs())
			a := s.serve(cctx, c)
			stop()
			if err := out.send(a); err != nil {
				return err
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		cctx, stop := callContext(ctx, c.GetTimeoutUs())
		mu.Lock()
		running[id] = stop
		mu.Unlock()
		go func() {
			a := s.serve(cctx, c)
			mu.Lock()
			delete(running, id)
			mu.Unlock()
			stop()
			<-sem
			// An error here is the stream's end, which the receiving loop sees too.
			_ = out.send(a)
		}()
	}
}

// callContext is a call's context: ctx, bounded by the plugin's remaining time when it has one,
// and always cancellable.
func callContext(ctx context.Context, timeoutUS int64) (context.Context, context.CancelFunc) {
	if timeoutUS > 0 {
		return context.WithTimeout(ctx, time.Duration(timeoutUS)*time.Microsecond)
	}
	return context.WithCancel(ctx)
}

// serve runs one call through the unary RPC's method and wraps its result as a HostAnswer.
func (s *hostServer) serve(ctx context.Context, c *pb.HostCall) *pb.HostAnswer {
	a := &pb.HostAnswer{Id: c.GetId()}
	var err error
	switch call := c.GetCall().(type) {
	case *pb.HostCall_State:
		var r *pb.StateResponse
		if r, err = s.State(ctx, call.State); err == nil && (r.GetFound() || len(r.GetValue()) > 0) {
			a.Answer = &pb.HostAnswer_State{State: r}
		}
	case *pb.HostCall_Timer:
		_, err = s.Timer(ctx, call.Timer)
	case *pb.HostCall_Push:
		var r *pb.PushResponse
		if r, err = s.Push(ctx, call.Push); err == nil {
			a.Answer = &pb.HostAnswer_Push{Push: r}
		}
	case *pb.HostCall_Resend:
		_, err = s.Resend(ctx, call.Resend)
	case *pb.HostCall_Undelivered:
		_, err = s.Undelivered(ctx, call.Undelivered)
	case *pb.HostCall_Bind:
		_, err = s.Bind(ctx, call.Bind)
	case *pb.HostCall_Sessions:
		var r *pb.SessionsResponse
		if r, err = s.Sessions(ctx, call.Sessions); err == nil {
			a.Answer = &pb.HostAnswer_Sessions{Sessions: r}
		}
	case *pb.HostCall_Join:
		_, err = s.Join(ctx, call.Join)
	default:
		// A call from a newer SDK: the plugin makes it unary instead.
		err = status.Errorf(codes.Unimplemented, "host call %T not known to this host", call)
	}
	if err != nil {
		st := status.Convert(err)
		a.Code, a.Error = uint32(st.Code()), st.Message()
	}
	return a
}

// answerSender serializes Sends on the stream (gRPC allows one sender at a time) and stops them
// once the handler has returned.
type answerSender struct {
	mu     sync.Mutex
	stream pb.Host_HostCallsServer
	done   bool
}

func (o *answerSender) send(a *pb.HostAnswer) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done {
		return errors.New("host call stream closed")
	}
	if err := o.stream.Send(a); err != nil {
		return fmt.Errorf("sending a host answer: %w", err)
	}
	return nil
}

func (o *answerSender) close() {
	o.mu.Lock()
	o.done = true
	o.mu.Unlock()
}
