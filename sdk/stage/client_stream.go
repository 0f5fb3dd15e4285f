package stage

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"google.golang.org/grpc"

	"github.com/platoim/plato/sdk/stage/internal/pb"
)

// A remote Processor sends every caller's batch over one long-lived Process stream (a mux, see
// stream_mux.go): each batch goes under a fresh batch id, and its Results come back with that id.

// Process sends events as one batch on the shared stream and waits for its results, the broken
// stream, or ctx, whichever comes first. A result arriving after ctx ended is dropped.
func (r *remote) Process(ctx context.Context, events []Event, replies []Reply) error {
	if len(replies) < len(events) {
		return fmt.Errorf("stage process: %d replies for %d events", len(replies), len(events))
	}
	if len(events) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s, err := r.batches.stream(ctx)
	if err != nil {
		return err
	}
	id := r.batches.nextID()
	res, end := s.call(ctx, id, encodeBatch(id, remainingUS(ctx), events))
	switch end {
	case callAnswered:
		return res.decode(replies[:len(events)])
	case callCtxEnded:
		return ctx.Err()
	default:
		return streamBroken(s.cause())
	}
}

// result is a Results as routed to its caller: the whole-batch error, or the encoded replies.
type result struct {
	failure string
	b       []byte
}

func (r result) decode(replies []Reply) error {
	if r.failure != "" {
		return &BatchError{Message: r.failure}
	}
	if err := decodeResults(r.b, replies); err != nil {
		return fmt.Errorf("stage process: %w", err)
	}
	return nil
}

// open opens a Process stream for r.batches; opening is bounded by ctx.
func (r *remote) open(ctx context.Context) (muxConn[[]byte, result], context.CancelFunc, error) {
	st, cancel, interrupted, err := openStream(ctx, func(sctx context.Context) (pb.Stage_ProcessClient, error) {
		return r.client.Process(sctx, grpc.ForceCodec(wireCodec{}))
	})
	switch {
	case interrupted:
		return nil, nil, fmt.Errorf("opening stage stream: %w", err)
	case err != nil:
		return nil, nil, fmt.Errorf("opening stage stream: %w", callError("stage process", err))
	}
	return &batchConn{stream: st, answered: &r.answered}, cancel, nil
}

// batchConn is a Process stream as the mux uses it: encoded batches out, Results in.
type batchConn struct {
	stream   pb.Stage_ProcessClient
	answered *atomic.Uint64 // the remote's count of Results received
	out      wireMsg        // the sender's
	in       wireMsg        // the receiver's
}

func (c *batchConn) send(b []byte) error {
	c.out.b = b // gRPC keeps out.b, not out, until it is written
	if err := c.stream.SendMsg(&c.out); err != nil {
		return fmt.Errorf("sending a batch: %w", err)
	}
	return nil
}

func (c *batchConn) recv() (uint64, result, error) {
	if err := c.stream.RecvMsg(&c.in); err != nil {
		return 0, result{}, err
	}
	id, failure, err := peekResults(c.in.b)
	if err != nil {
		return 0, result{}, fmt.Errorf("stage sent a malformed result: %w", err)
	}
	c.answered.Add(1) // the plugin is alive, even when nobody waits for this answer any more
	return id, result{failure: failure, b: c.in.b}, nil
}

// streamBroken is what a batch gets when the stream ended before its results: ErrClosed after
// Close, else the stream's error.
func streamBroken(err error) error {
	if errors.Is(err, ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("stage stream broken: %w", err)
}
