package colocal

import (
	"context"

	"github.com/cloudwego/kitex/client/callopt"

	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	gwservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/gateway"
	stateservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/state"
)

// StateClient returns the client a gateway uses for state server n: wire itself unless n is served
// in this process (same registry ID, same RPC address), else one that calls its handler directly
// and wire once it has stopped. Call options are not applied to local calls; a call's context
// deadline bounds it as o.Timeout does.
func (d *Dir) StateClient(n registry.Node, wire stateservice.Client, o Options) stateservice.Client {
	if d == nil {
		return wire
	}
	e := lookup(d, d.states, n.ID, n.RPCAddr)
	if e == nil {
		return wire
	}
	return &stateClient{d: d, e: e, wire: wire, o: o}
}

// GatewayClient is StateClient for the state server's calls to gateway n.
func (d *Dir) GatewayClient(n registry.Node, wire gwservice.Client, o Options) gwservice.Client {
	if d == nil {
		return wire
	}
	e := lookup(d, d.gateways, n.ID, n.RPCAddr)
	if e == nil {
		return wire
	}
	return &gatewayClient{d: d, e: e, wire: wire, o: o}
}

type stateClient struct {
	d    *Dir
	e    *Entry[fleet.State]
	wire stateservice.Client
	o    Options
}

var _ stateservice.Client = (*stateClient)(nil)

func (c *stateClient) Deliver(ctx context.Context, req *fleet.DeliverRequest, opts ...callopt.Option) (*fleet.DeliverResponse, error) {
	return call(ctx, c.d, c.e, &c.o, mDeliver, req, fleet.State.Deliver, c.wire, stateservice.Client.Deliver, opts)
}

func (c *stateClient) Ping(ctx context.Context, req *fleet.PingRequest, opts ...callopt.Option) (*fleet.PingResponse, error) {
	return call(ctx, c.d, c.e, &c.o, mPing, req, fleet.State.Ping, c.wire, stateservice.Client.Ping, opts)
}

func (c *stateClient) LocalPush(ctx context.Context, req *fleet.LocalPushRequest, opts ...callopt.Option) (*fleet.LocalPushResponse, error) {
	return call(ctx, c.d, c.e, &c.o, mLocalPush, req, fleet.State.LocalPush, c.wire, stateservice.Client.LocalPush, opts)
}

func (c *stateClient) LocalPushBatch(ctx context.Context, req *fleet.LocalPushBatchRequest, opts ...callopt.Option) (*fleet.LocalPushBatchResponse, error) {
	return call(ctx, c.d, c.e, &c.o, mLocalPushBatch, req, fleet.State.LocalPushBatch, c.wire, stateservice.Client.LocalPushBatch, opts)
}

func (c *stateClient) LocalSession(ctx context.Context, req *fleet.LocalSessionRequest, opts ...callopt.Option) (*fleet.LocalSessionResponse, error) {
	return call(ctx, c.d, c.e, &c.o, mLocalSession, req, fleet.State.LocalSession, c.wire, stateservice.Client.LocalSession, opts)
}

type gatewayClient struct {
	d    *Dir
	e    *Entry[fleet.Gateway]
	wire gwservice.Client
	o    Options
}

var _ gwservice.Client = (*gatewayClient)(nil)

func (c *gatewayClient) Push(ctx context.Context, req *fleet.PushRequest, opts ...callopt.Option) (*fleet.PushResponse, error) {
	return call(ctx, c.d, c.e, &c.o, mPush, req, fleet.Gateway.Push, c.wire, gwservice.Client.Push, opts)
}

func (c *gatewayClient) Sessions(ctx context.Context, req *fleet.SessionsRequest, opts ...callopt.Option) (*fleet.SessionsResponse, error) {
	return call(ctx, c.d, c.e, &c.o, mSessions, req, fleet.Gateway.Sessions, c.wire, gwservice.Client.Sessions, opts)
}
