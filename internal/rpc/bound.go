package rpc

import (
	"context"
	"time"

	"github.com/cloudwego/kitex/client"
	"github.com/cloudwego/kitex/pkg/endpoint"
	"github.com/cloudwego/kitex/pkg/rpcinfo"
)

// Why Plato's clients carry no Kitex RPC timeout (docs/adr/0013-internal-call-bounds.md): with client.WithRPCTimeout, or with a
// context that can be cancelled, Kitex (v0.16) runs every call on a goroutine of its timeout pool
// and parks the caller until that goroutine is done: a goroutine handoff, a fresh context and
// channel, and often stack growth of a new pool goroutine, per call. That was about a third of the
// CPU of `plato up` per uplink (docs/performance.md, issue 13). A call with neither runs on the
// caller's goroutine.
//
// The bound stays: readDeadline sets the call's RPC timeout on its own rpcinfo from inside the
// chain, after Kitex's timeout middleware has looked (and seen none), so the only thing the
// setting still drives is the connection's read deadline (the timeout plus Kitex's 5 ms margin).
// A peer that takes the request and never answers fails the call with kerrors.ErrRPCTimeout (the
// read deadline's netpoll.ErrReadTimeout as its cause) in that time; dialing is bounded by
// ConnectTimeout, and the write of one request on a connection of its own cannot block for long.
// The connection that timed out is closed, so a late answer cannot be taken for the next call's.

// readDeadline is the client middleware that bounds a call's wait for its answer by timeout,
// unless the call already has an RPC timeout (callopt.WithRPCTimeout): that one then bounds it,
// through Kitex's timeout pool, as before.
func readDeadline(timeout time.Duration) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			if ri := rpcinfo.GetRPCInfo(ctx); ri != nil && ri.Config().RPCTimeout() <= 0 {
				if cfg := rpcinfo.AsMutableRPCConfig(ri.Config()); cfg != nil {
					_ = cfg.SetRPCTimeout(timeout)
				}
			}
			return next(ctx, req, resp)
		}
	}
}

// readDeadlineOption installs readDeadline.
func readDeadlineOption(timeout time.Duration) client.Option {
	return client.WithMiddleware(readDeadline(timeout))
}

// Detached returns ctx without its cancellation (its values stay), for a call on a hot path: a
// context that can be cancelled sends the call through Kitex's timeout pool (see above). The call
// stays bounded by the client's call timeout; what it loses is being cut short when ctx ends
// during the call. A ctx that has already ended is returned as it is, so the call fails at once,
// as before: a batch lane's sends after its Close gave up fail rather than each wait for a peer.
//
// Not context.WithoutCancel: its value receiver re-boxes the context into an interface on every
// Value lookup, an allocation each, and Kitex looks up a dozen values per call.
func Detached(ctx context.Context) context.Context {
	if ctx.Done() == nil || ctx.Err() != nil {
		return ctx
	}
	return &detached{parent: ctx}
}

type detached struct{ parent context.Context }

func (*detached) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*detached) Done() <-chan struct{}       { return nil }
func (*detached) Err() error                  { return nil }
func (d *detached) Value(key any) any         { return d.parent.Value(key) }
func (d *detached) String() string            { return "rpc.Detached" }
