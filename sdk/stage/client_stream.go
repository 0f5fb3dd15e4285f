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

	"github.com/platoim/plato/sdk/stage/internal/pb"
)

// procStream is one long-lived Process stream shared by every caller of a remote Processor.
// Callers register a waiter under a fresh batch id and hand their batch to the sender goroutine;
// the receiver goroutine routes each Results to its waiter by id. The first error on the stream
// fails every waiter, and the next Process opens a new stream.
//
// Locks never nest: remote.mu guards opening and closing, procStream.mu the waiters.
type procStream struct {
	stream   pb.Stage_ProcessClient
	answered *atomic.Uint64 // the remote's count of Results received
	cancel   context.CancelFunc
	sendq    chan []byte   // encoded batches, to sendLoop
	done     chan struct{} // closed by fail

	mu      sync.Mutex
	waiters map[uint64]chan result
	err     error // why the stream ended; set before done is closed
}

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
	s, err := r.stream(ctx)
	if err != nil {
		return err
	}
	var timeoutUS int64
	if dl, ok := ctx.Deadline(); ok {
		timeoutUS = max(int64(time.Until(dl)/time.Microsecond), 1)
	}
	id := r.ids.Add(1)
	w := make(chan result, 1)
	if err := s.register(id, w); err != nil {
		return err
	}
	b := encodeBatch(id, timeoutUS, events)
	select {
	case s.sendq <- b:
	case <-ctx.Done():
		s.unregister(id)
		return ctx.Err()
	case <-s.done:
		return s.brokenErr()
	}
	select {
	case res := <-w:
		return res.decode(replies[:len(events)])
	case <-ctx.Done():
		s.unregister(id)
		return ctx.Err()
	case <-s.done:
		select {
		case res := <-w: // routed just before the stream broke
			return res.decode(replies[:len(events)])
		default:
			return s.brokenErr()
		}
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

// stream returns the open stream, opening one if there is none or the last one broke. Opening is
// bounded by ctx.
func (r *remote) stream(ctx context.Context) (*procStream, error) {
	if s := r.cur.Load(); s != nil && !s.broken() {
		return s, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if s := r.cur.Load(); s != nil && !s.broken() {
		return s, nil
	}
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	st, err := r.client.Process(sctx, grpc.ForceCodec(wireCodec{}))
	if !stop() {
		cancel()
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("opening stage stream: %w", err)
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("opening stage stream: %w", callError("stage process", err))
	}
	s := &procStream{
		answered: &r.answered,
		stream:   st,
		cancel:   cancel,
		sendq:    make(chan []byte),
		done:     make(chan struct{}),
		waiters:  make(map[uint64]chan result),
	}
	go s.sendLoop()
	go s.recvLoop()
	r.cur.Store(s)
	return s, nil
}

func (s *procStream) broken() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *procStream) register(id uint64, w chan result) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.wrap(s.err)
	}
	s.waiters[id] = w
	return nil
}

func (s *procStream) unregister(id uint64) {
	s.mu.Lock()
	delete(s.waiters, id)
	s.mu.Unlock()
}

// sendLoop is the stream's only sender. A goroutine rather than a mutex around Send, so that a
// caller whose ctx ends while Send is blocked (the plugin stopped reading) can still leave.
func (s *procStream) sendLoop() {
	var msg wireMsg
	for {
		select {
		case msg.b = <-s.sendq: // gRPC keeps msg.b, not msg, until it is written
			if err := s.stream.SendMsg(&msg); err != nil {
				// io.EOF: the stream ended, and the receiver is about to fail it with the real
				// error from Recv. Anything else (marshalling) ended the stream too.
				if !errors.Is(err, io.EOF) {
					s.fail(fmt.Errorf("sending a batch: %w", err))
				}
				return
			}
		case <-s.done:
			return
		}
	}
}

func (s *procStream) recvLoop() {
	var msg wireMsg
	for {
		if err := s.stream.RecvMsg(&msg); err != nil {
			s.fail(err)
			return
		}
		id, failure, err := peekResults(msg.b)
		if err != nil {
			s.fail(fmt.Errorf("stage sent a malformed result: %w", err))
			return
		}
		s.answered.Add(1) // the plugin is alive, even when nobody waits for this answer any more
		s.mu.Lock()
		w, ok := s.waiters[id]
		delete(s.waiters, id)
		s.mu.Unlock()
		if ok {
			w <- result{failure: failure, b: msg.b} // buffered: never blocks
		}
	}
}

// fail ends the stream with err, once; every waiter sees done closed.
func (s *procStream) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	s.waiters = nil
	close(s.done)
	s.mu.Unlock()
	s.cancel()
}

func (s *procStream) brokenErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wrap(s.err)
}

func (s *procStream) wrap(err error) error {
	if errors.Is(err, ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("stage stream broken: %w", err)
}
