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
// the host gave in InitRequest.
type hostServer struct {
	pb.UnimplementedHostServer
	h Host
}

func (s *hostServer) Push(ctx context.Context, req *pb.PushRequest) (*pb.PushResponse, error) {
	res, err := s.h.Push(ctx, req.GetAppId(), req.GetDids(), req.GetPayload())
	if err != nil {
		return nil, toStatus(err)
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
	return empty(s.h.Resend(ctx, connFromPB(req.GetConn()), req.GetSeq(), req.GetMsgId(), req.GetPayload()))
}

func (s *hostServer) Undelivered(ctx context.Context, req *pb.UndeliveredRequest) (*pb.Empty, error) {
	return empty(s.h.Undelivered(ctx, connFromPB(req.GetConn()), req.GetSeq(), req.GetMsgId(), int(req.GetAttempts())))
}

func (s *hostServer) Bind(ctx context.Context, req *pb.BindRequest) (*pb.Empty, error) {
	if req.GetUnbind() {
		return empty(s.h.Unbind(ctx, req.GetAppId(), req.GetSession(), req.GetDids()))
	}
	return empty(s.h.Bind(ctx, req.GetAppId(), req.GetSession(), req.GetDids()))
}

func (s *hostServer) Timer(ctx context.Context, req *pb.TimerRequest) (*pb.Empty, error) {
	if req.GetCancel() {
		return empty(s.h.CancelTimer(ctx, req.GetAppId(), req.GetKey()))
	}
	d := time.Duration(req.GetAfterMs()) * time.Millisecond
	return empty(s.h.SetTimer(ctx, req.GetAppId(), req.GetKey(), d, req.GetData()))
}

func (s *hostServer) State(ctx context.Context, req *pb.StateRequest) (*pb.StateResponse, error) {
	switch req.GetOp() {
	case stateGet:
		v, ok, err := s.h.Get(ctx, req.GetAppId(), req.GetKey())
		if err != nil {
			return nil, toStatus(err)
		}
		return &pb.StateResponse{Value: v, Found: ok}, nil
	case statePut:
		ttl := time.Duration(req.GetTtlMs()) * time.Millisecond
		if err := s.h.Put(ctx, req.GetAppId(), req.GetKey(), req.GetValue(), ttl); err != nil {
			return nil, toStatus(err)
		}
	case stateDelete:
		if err := s.h.Delete(ctx, req.GetAppId(), req.GetKey()); err != nil {
			return nil, toStatus(err)
		}
	default:
		return nil, status.Errorf(codes.InvalidArgument, "unknown state op %d", req.GetOp())
	}
	return &pb.StateResponse{}, nil
}

func empty(err error) (*pb.Empty, error) {
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.Empty{}, nil
}

// toStatus carries a Host error to the plugin: its message, and whether it was the context's.
func toStatus(err error) error {
	code := codes.Unknown
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, clean(err.Error()))
}
