package stage

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	// Encoded as a frame, header included, for the data socket; the Process stream sends the
	// message after the header.
	b := endFrame(appendBatch(beginFrame(r.frames.get(batchSize(events)+frameHeader)), id, remainingUS(ctx), events))
	if len(b)-frameHeader > maxFrame {
		return fmt.Errorf("stage process: a batch of %d bytes is over the limit of %d", len(b)-frameHeader, maxFrame)
	}
	res, end := s.call(ctx, id, b)
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

// open opens the batch stream for r.batches, bounded by ctx: the data socket (rawdata.go) when
// the plugin has one, else a Process stream.
func (r *remote) open(ctx context.Context) (muxConn[[]byte, result], context.CancelFunc, error) {
	if err := r.Fault(); err != nil {
		return nil, nil, err // cut off: the host replaces this plugin
	}
	if !r.rawOff.Load() {
		c, err := r.openRaw(ctx)
		switch {
		case err == nil:
			r.path.Store(&pathSocketV)
			return c, c.close, nil
		case status.Code(errors.Unwrap(err)) == codes.Unimplemented:
			r.rawOff.Store(true) // a plugin built before the data socket: never ask again
		case ctx.Err() != nil:
			return nil, nil, fmt.Errorf("opening stage data socket: %w", err)
		}
		// Any other failure to set the socket up (a plugin that cannot reach the host's
		// temporary directory, say) leaves the Process stream, which works everywhere; the next
		// stream opened tries the socket again.
	}
	st, cancel, interrupted, err := openStream(ctx, func(sctx context.Context) (pb.Stage_ProcessClient, error) {
		return r.client.Process(sctx, grpc.ForceCodec(wireCodec{}))
	})
	switch {
	case interrupted:
		return nil, nil, fmt.Errorf("opening stage stream: %w", err)
	case err != nil:
		return nil, nil, fmt.Errorf("opening stage stream: %w", callError("stage process", err))
	}
	r.path.Store(&pathGRPCV)
	return &batchConn{stream: st, answered: &r.answered}, cancel, nil
}

// Values of remote.path (pointers to them, so that the path is stored without allocating).
var pathSocketV, pathGRPCV = PathSocket, PathGRPC

// batchConn is a Process stream as the mux uses it: encoded batches out, Results in.
type batchConn struct {
	stream   pb.Stage_ProcessClient
	answered *atomic.Uint64 // the remote's count of Results received
	out      wireMsg        // the sender's
	in       wireMsg        // the receiver's
}

func (c *batchConn) send(b []byte) error {
	c.out.b = b[frameHeader:] // gRPC keeps out.b, not out, until it is written
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
