package colocal

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/cloudwego/kitex/client/callopt"
	"github.com/cloudwego/kitex/pkg/kerrors"
	"github.com/cloudwego/kitex/pkg/remote"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
)

// Options are what a local client keeps of its Kitex twin's options.
type Options struct {
	// Timeout is the client's call bound (state.rpc_timeout): an answer later than this fails the
	// call with kerrors.ErrRPCTimeout and is dropped, as the wire's read deadline does (ADR 0013).
	Timeout time.Duration
	// Latency observes every call, as the Kitex client's middleware (rpc.CallLatency.Option) does.
	Latency *rpc.CallLatency
}

// msg is a generated Thrift struct: what the wire encodes and decodes, with the deep copy Kitex
// generates for it (make gen's -deep-copy-api).
type msg[T any] interface {
	*T
	DeepCopy(s any) error
}

// clone copies src as the wire would hand it over: the copy shares no mutable memory with src
// (binaries, lists and structs are copied; strings, immutable, are shared), so the caller may
// reuse its request once the call returns and the handler may keep what it got (but for
// requestLent's), and the other way round for the response (but for answerHandedOver's). It
// replaced a round trip through the Thrift fast codec, which cost three times as much
// (BenchmarkClone).
func clone[T any, P msg[T]](src P) (P, error) {
	if src == nil {
		return nil, nil
	}
	// The calls that carry many frames or events make their elements in one array (copyList), as
	// the codec's reader does, instead of one object each; the generated copy does the rest, so a
	// field added to the IDL is copied too.
	var (
		d   any
		err error
	)
	switch s := any(src).(type) {
	case *fleet.DeliverRequest:
		if len(s.Events) < shareFrom {
			break
		}
		top, dst := *s, new(fleet.DeliverRequest)
		top.Events = nil
		if err = dst.DeepCopy(&top); err == nil {
			dst.Events, err = copyList(s.Events)
		}
		d = dst
	case *fleet.DeliverResponse:
		if len(s.Acks) < shareFrom {
			break
		}
		top, dst := *s, new(fleet.DeliverResponse)
		top.Acks = nil
		if err = dst.DeepCopy(&top); err == nil {
			dst.Acks, err = copyList(s.Acks)
		}
		d = dst
	case *fleet.PushRequest:
		if len(s.Frames) < shareFrom {
			break
		}
		top, dst := *s, new(fleet.PushRequest)
		top.Frames = nil
		if err = dst.DeepCopy(&top); err == nil {
			dst.Frames, err = copyList(s.Frames)
		}
		d = dst
	}
	if d != nil {
		if err != nil {
			return nil, fmt.Errorf("copying %T: %w", src, err)
		}
		return d.(P), nil
	}
	dst := P(new(T))
	if err := dst.DeepCopy(src); err != nil {
		return nil, fmt.Errorf("copying %T: %w", src, err)
	}
	return dst, nil
}

// shareFrom is the shortest list copyList takes: the generated copy's fmt.Errorf makes the copy of
// the struct around the list escape, one object that one array saves from three elements on.
const shareFrom = 3

// copyList deep-copies the elements of src into one array: two objects for the list, plus what
// each element holds (a body), where one per element more would be made otherwise. An element
// the caller keeps (a tracked downlink) keeps the array, as one decoded from the wire does.
func copyList[T any, P msg[T]](src []P) ([]P, error) {
	if src == nil {
		return nil, nil
	}
	out := make([]P, len(src))
	vals := make([]T, len(src))
	for i, e := range src {
		if e == nil {
			continue
		}
		p := P(&vals[i])
		if err := p.DeepCopy(e); err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// call runs one call of handler h on the caller's goroutine, or on the wire when the local server
// has stopped. It returns what a Kitex client would: the handler's answer copied, or an error of
// the same kerrors kind (rpc.KindOf) as the wire would give.
func call[H, W any, Q any, PQ msg[Q], R any, PR msg[R]](
	ctx context.Context, d *Dir, e *Entry[H], o *Options, m method, req PQ,
	local func(h H, ctx context.Context, req PQ) (PR, error),
	w W, wire func(w W, ctx context.Context, req PQ, opts ...callopt.Option) (PR, error), opts []callopt.Option,
) (PR, error) {
	if ctx.Err() != nil {
		// A Kitex call with an ended context fails at once, as a timeout.
		return nil, kerrors.ErrRPCTimeout.WithCause(ctx.Err())
	}
	if !e.enter() {
		return wire(w, ctx, req, opts...)
	}
	start := time.Now()
	resp, err := serveOne(e, m, req, local)
	e.leave()
	d.calls[m].Add(1)
	if err == nil {
		bound := o.Timeout
		if dl, ok := ctx.Deadline(); ok && (bound <= 0 || dl.Sub(start) < bound) {
			bound = dl.Sub(start)
		}
		if took := time.Since(start); bound > 0 && took > bound {
			// The wire's caller would have given up at its read deadline; the late answer is
			// dropped, the handler's effects stay, as with a server that answers too late.
			resp, err = nil, kerrors.ErrRPCTimeout.WithCause(fmt.Errorf("in-process %s took %v, over the call's bound of %v", methodNames[m], took, bound))
		}
	}
	o.Latency.Observe(methodNames[m], start, err)
	return resp, err
}

// serveOne is the server's side: the request copied in (or lent, requestLent), the handler under
// recover, the answer copied out (or handed over, answerHandedOver).
func serveOne[H any, Q any, PQ msg[Q], R any, PR msg[R]](e *Entry[H], m method, req PQ, local func(h H, ctx context.Context, req PQ) (PR, error)) (resp PR, err error) {
	in := req
	if !requestLent[m] {
		if in, err = clone(req); err != nil {
			// Only a mismatched type fails a generated deep copy, which the type parameters rule
			// out; answered as the wire answers a request it cannot encode.
			return nil, kerrors.ErrRemoteOrNetwork.WithCause(err)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			// Kitex's server recovers a handler's panic and answers with an exception, which its
			// client reports as a remote error.
			resp, err = nil, remoteErr(fmt.Errorf("[happened in biz handler, method=%s] %w: %v\n%s", methodNames[m], kerrors.ErrPanic, r, debug.Stack()))
		}
	}()
	// The handler gets a context of its own, as on the wire: none of the caller's values or
	// cancellation cross (the handlers read nothing from it).
	out, herr := local(e.h, context.Background(), in)
	if herr != nil {
		return nil, remoteErr(herr)
	}
	if out == nil {
		// Kitex's server cannot encode a nil result either.
		return nil, remoteErr(errors.New("the handler returned neither a result nor an error"))
	}
	if answerHandedOver[m] {
		return out, nil
	}
	cp, err := clone(out)
	if err != nil {
		return nil, remoteErr(err)
	}
	return cp, nil
}

// remoteErr is a handler's error as a Kitex client sees it: the server sent it as an application
// exception, which the client's default error handler wraps as a remote error.
func remoteErr(err error) error {
	return kerrors.ErrRemoteOrNetwork.WithCauseAndExtraMsg(remote.NewTransErrorWithMsg(remote.InternalError, err.Error()), "remote")
}
