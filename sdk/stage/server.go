package stage

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/platoim/plato/sdk/stage/internal/pb"
	"github.com/platoim/plato/sdk/stage/internal/wiretest"
)

// server is the plugin side: the Stage gRPC service over a Stage.
type server struct {
	pb.UnimplementedStageServer

	stage Stage
	h     *handlers
	log   *slog.Logger
	// dialHost reaches the host's Host service by the id in the init request: go-plugin's broker
	// in a real plugin, a direct connection in a test harness.
	dialHost func(ctx context.Context, id uint32) (*grpc.ClientConn, error)

	scratch sync.Pool // *batchScratch

	mu       sync.Mutex
	hostConn *grpc.ClientConn // the current Init's, closed by the next Init
	hostMux  *hostMux         // the current Init's Host calls, over hostConn
}

func newServer(s Stage, log *slog.Logger, dial func(context.Context, uint32) (*grpc.ClientConn, error)) *server {
	return &server{stage: s, h: handlersOf(s), log: log, dialHost: dial}
}

func (s *server) Describe(context.Context, *pb.DescribeRequest) (*pb.Info, error) {
	info := s.stage.Info()
	sigs := s.h.signals()
	names := make([]string, len(sigs))
	for i, sg := range sigs {
		names[i] = string(sg)
	}
	return &pb.Info{Name: clean(info.Name), Version: clean(info.Version), Signals: names}, nil
}

func (s *server) Init(ctx context.Context, req *pb.InitRequest) (*pb.InitResponse, error) {
	var host Host = noHost{}
	var conn *grpc.ClientConn
	var mux *hostMux
	if id := req.GetHostBrokerId(); id != 0 {
		if s.dialHost == nil {
			return nil, status.Error(codes.FailedPrecondition, "no way to reach the host's Host service")
		}
		var err error
		if conn, err = s.dialHost(ctx, id); err != nil {
			return nil, status.Errorf(codes.Unavailable, "dialing the host's Host service: %v", err)
		}
		mux = newHostMux(pb.NewHostClient(conn))
		host = &hostClient{c: mux}
	}
	err := s.stage.Init(ctx, InitRequest{
		Pipeline: req.GetPipeline(),
		Stage:    req.GetStage(),
		Config:   req.GetConfig(),
		Host:     host,
		Logger:   s.log,
	})
	var d declaration
	if err == nil {
		d, err = actsOnOf(s.stage)
	}
	if err != nil {
		if conn != nil {
			mux.close()
			_ = conn.Close()
		}
		return nil, status.Error(codes.FailedPrecondition, clean(err.Error()))
	}
	s.mu.Lock()
	old, oldMux := s.hostConn, s.hostMux
	s.hostConn, s.hostMux = conn, mux
	s.mu.Unlock()
	if old != nil {
		oldMux.close()
		_ = old.Close()
	}
	resp := &pb.InitResponse{ActsOnDeclared: d.declared, RouteSessionsOnly: d.sessionRoutesOnly}
	for _, sg := range d.signals {
		resp.ActsOn = append(resp.ActsOn, clean(string(sg)))
	}
	return resp, nil
}

// Process serves one long-lived stream. Each batch runs in its own goroutine, so batches of
// different lanes run concurrently; within a batch, events run in order. Results go back with the
// batch's id, in whatever order batches finish.
func (s *server) Process(stream pb.Stage_ProcessServer) error {
	out := &resultSender{stream: stream}
	defer out.close()
	ctx := stream.Context()
	var in wireMsg
	for {
		if err := stream.RecvMsg(&in); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		go s.runBatch(ctx, in.b, out)
	}
}

// resultSink is where runBatch sends a batch's encoded Results: the Process stream or the data
// socket.
type resultSink interface {
	// buffer returns a buffer to append a Results of about n bytes to.
	buffer(n int) []byte
	// send sends b, a buffer from buffer with the Results appended, and takes it back.
	send(b []byte) error
	// release takes back a batch's bytes once its results are sent (nothing refers to them).
	release(batch []byte)
}

// batchScratch is a batch's events and replies, recycled across batches: events are valid only
// during their handler's call (doc.go), and replies only until they are encoded.
type batchScratch struct {
	events  []Event
	replies []Reply
}

// maxPooledBatch is the most events a recycled batchScratch keeps room for.
const maxPooledBatch = 4096

func (s *server) runBatch(ctx context.Context, b []byte, out resultSink) {
	defer out.release(b)
	sc, _ := s.scratch.Get().(*batchScratch)
	if sc == nil {
		sc = new(batchScratch)
	}
	defer func() {
		if cap(sc.events) <= maxPooledBatch {
			clear(sc.events[:cap(sc.events)]) // drop what the events point to: payloads, strings
			clear(sc.replies[:cap(sc.replies)])
			s.scratch.Put(sc)
		}
	}()
	id, timeoutUS, events, err := decodeBatchInto(b, sc.events)
	sc.events = events
	if err != nil {
		s.log.Error("malformed batch from the host", "batch", id, "error", err)
		out.send(appendFailure(out.buffer(64), id, "malformed batch: "+err.Error()))
		return
	}
	if timeoutUS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(timeoutUS)*time.Microsecond)
		defer cancel()
	}
	if cap(sc.replies) < len(events) {
		sc.replies = make([]Reply, len(events))
	}
	replies := sc.replies[:len(events)]
	var res []byte
	if err := s.h.run(ctx, s.log, events, replies, false); err != nil {
		msg := err.Error()
		var be *BatchError
		if errors.As(err, &be) {
			msg = be.Message
		}
		res = appendFailure(out.buffer(len(msg)+16), id, msg)
	} else {
		res = appendResults(out.buffer(resultsSize(replies)), id, replies)
	}
	if raw, ok := out.(*rawSender); ok && len(events) > 0 {
		if t, ok := s.stage.(wiretest.RawResults); ok {
			if frame, ok := t.RawResultFrame(events[0].Payload); ok {
				_ = raw.sendRaw(frame)
				return
			}
		}
	}
	if err := out.send(res); err != nil && ctx.Err() == nil {
		s.log.Warn("sending a batch's results to the host failed", "batch", id, "error", err)
	}
}

// resultSender serializes Sends on a stream (gRPC allows one sender at a time) and stops them once
// the stream's handler has returned.
type resultSender struct {
	mu     sync.Mutex
	stream pb.Stage_ProcessServer
	msg    wireMsg
	done   bool
}

func (o *resultSender) send(b []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done {
		return errors.New("stream closed")
	}
	o.msg.b = b // gRPC keeps b (not msg) until it is written
	return o.stream.SendMsg(&o.msg)
}

func (o *resultSender) buffer(n int) []byte { return make([]byte, 0, n) }
func (o *resultSender) release([]byte)      {}

func (o *resultSender) close() {
	o.mu.Lock()
	o.done = true
	o.mu.Unlock()
}
