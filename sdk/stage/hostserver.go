package stage

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/platoim/plato/sdk/stage/internal/pb"
)

// hostServer is the host side of the Host service: it hands a plugin's calls to the stage.Host
// the host gave in InitRequest, whether they come as unary RPCs (plugins built with an older SDK)
// or over the HostCalls stream (hostserver_stream.go), which serves each call with these methods.
type hostServer struct {
	pb.UnimplementedHostServer
	h Host
}

func (s *hostServer) Push(ctx context.Context, req *pb.PushRequest) (*pb.PushResponse, error) {
	res, err := s.h.Push(ctx, req.GetAppId(), req.GetDids(), req.GetPayload())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	resp := &pb.PushResponse{MsgId: res.MsgID}
	if len(res.Targets) > 0 {
		msgs := make([]pb.PushTarget, len(res.Targets))
		resp.Targets = make([]*pb.PushTarget, len(res.Targets))
		for i, t := range res.Targets {
			m := &msgs[i]
			m.Did, m.ConnId, m.Status, m.Seq = clean(t.DID), t.ConnID, uint32(t.Status), t.Seq
			resp.Targets[i] = m
		}
	}
	return resp, nil
}

func (s *hostServer) Resend(ctx context.Context, req *pb.ResendRequest) (*pb.Empty, error) {
	return empty(ctx, s.h.Resend(ctx, connFromPB(req.GetConn()), req.GetSeq(), req.GetMsgId(), req.GetPayload()))
}

func (s *hostServer) Undelivered(ctx context.Context, req *pb.UndeliveredRequest) (*pb.Empty, error) {
	return empty(ctx, s.h.Undelivered(ctx, connFromPB(req.GetConn()), req.GetSeq(), req.GetMsgId(), int(req.GetAttempts())))
}

func (s *hostServer) Bind(ctx context.Context, req *pb.BindRequest) (*pb.Empty, error) {
	if req.GetUnbind() {
		return empty(ctx, s.h.Unbind(ctx, req.GetAppId(), req.GetSession(), req.GetDids()))
	}
	return empty(ctx, s.h.Bind(ctx, req.GetAppId(), req.GetSession(), req.GetDids()))
}

func (s *hostServer) Sessions(ctx context.Context, req *pb.SessionsRequest) (*pb.SessionsResponse, error) {
	sessions, err := s.h.Sessions(ctx, connFromPB(req.GetConn()))
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	// The names come from the business server: clean them, or the response would not marshal.
	out := make([]string, len(sessions))
	for i, name := range sessions {
		out[i] = clean(name)
	}
	return &pb.SessionsResponse{Sessions: out}, nil
}

func (s *hostServer) Join(ctx context.Context, req *pb.JoinRequest) (*pb.Empty, error) {
	return empty(ctx, s.h.Join(ctx, connFromPB(req.GetConn()), req.GetSessions()))
}

func (s *hostServer) Timer(ctx context.Context, req *pb.TimerRequest) (*pb.Empty, error) {
	if req.GetCancel() {
		return empty(ctx, s.h.CancelTimer(ctx, req.GetAppId(), req.GetKey()))
	}
	d := time.Duration(req.GetAfterMs()) * time.Millisecond
	return empty(ctx, s.h.SetTimer(ctx, req.GetAppId(), req.GetKey(), d, req.GetData()))
}

func (s *hostServer) State(ctx context.Context, req *pb.StateRequest) (*pb.StateResponse, error) {
	switch req.GetOp() {
	case stateGet:
		v, ok, err := s.h.Get(ctx, req.GetAppId(), req.GetKey())
		if err != nil {
			return nil, toStatus(ctx, err)
		}
		return &pb.StateResponse{Value: v, Found: ok}, nil
	case statePut:
		ttl := time.Duration(req.GetTtlMs()) * time.Millisecond
		if err := s.h.Put(ctx, req.GetAppId(), req.GetKey(), req.GetValue(), ttl); err != nil {
			return nil, toStatus(ctx, err)
		}
	case stateDelete:
		if err := s.h.Delete(ctx, req.GetAppId(), req.GetKey()); err != nil {
			return nil, toStatus(ctx, err)
		}
	default:
		return nil, status.Errorf(codes.InvalidArgument, "unknown state op %d", req.GetOp())
	}
	return &pb.StateResponse{}, nil
}

func empty(ctx context.Context, err error) (*pb.Empty, error) {
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.Empty{}, nil
}

// toStatus carries a Host error to the plugin: its message, and whether it was the context's.
// An error of the Host's own that comes once the call's deadline has passed (a business RPC's
// timeout, say) is reported as the deadline too: the plugin's deadline and the host's copy of it
// do not expire at quite the same instant, and a stage should see a timeout either way.
func toStatus(ctx context.Context, err error) error {
	code := codes.Unknown
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(ctx.Err(), context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, clean(err.Error()))
}
