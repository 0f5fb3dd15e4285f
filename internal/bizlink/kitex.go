package bizlink

import (
	"context"
	"time"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	bizservice "github.com/platoim/plato/sdk/business/rpc/plato/api/business"
)

// kitexLink is a business server that serves the Kitex Business service.
type kitexLink struct{ cli bizservice.Client }

func newKitex(addr string, timeout time.Duration) (*kitexLink, error) {
	cli, err := bizservice.NewClient("plato-business", rpc.Client(addr, timeout)...)
	if err != nil {
		return nil, err
	}
	return &kitexLink{cli: cli}, nil
}

// Deliver is on every uplink's path: Detached keeps the call on the caller's goroutine rather than
// on Kitex's timeout pool; the client's call timeout bounds it (internal/rpc/bound.go).
func (k *kitexLink) Deliver(ctx context.Context, req *api.DeliverRequest) (*api.DeliverResponse, error) {
	return k.cli.Deliver(rpc.Detached(ctx), req)
}

func (k *kitexLink) Sessions(ctx context.Context, req *api.SessionsRequest) (*api.SessionsResponse, error) {
	return k.cli.Sessions(ctx, req)
}

func (k *kitexLink) Authenticate(ctx context.Context, req *api.AuthenticateRequest) (*api.AuthenticateResponse, error) {
	return k.cli.Authenticate(ctx, req)
}

// Close does nothing: the Kitex client's pooled connections close when they idle out.
func (k *kitexLink) Close() {}
