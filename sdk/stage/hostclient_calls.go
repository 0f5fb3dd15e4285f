package stage

import (
	"context"
	"errors"

	"github.com/platoim/plato/sdk/stage/internal/pb"
)

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
