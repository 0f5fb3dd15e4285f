package rpc

import (
	"context"
	"strings"
	"time"

	"github.com/cloudwego/kitex/client"
	"github.com/cloudwego/kitex/pkg/endpoint"
	"github.com/cloudwego/kitex/pkg/rpcinfo"
	"go.opentelemetry.io/otel/attribute"

	"github.com/platoim/plato/internal/telemetry"
)

// CallLatency observes how long a Kitex client's calls take, from one client middleware, by
// method and result (ok, or error: the call failed in transport or with a timeout). The methods
// are given up front: the label values are a fixed set, and each series is resolved once, so a
// call costs a map lookup and a histogram record, no allocation.
type CallLatency struct {
	index map[string]int
	obs   [][2]telemetry.Observer // per method: ok, error
}

// NewCallLatency observes the calls of methods (Kitex method names, "Deliver") in l; the method
// label is the name lower-cased.
func NewCallLatency(l telemetry.Latency, methods ...string) *CallLatency {
	c := &CallLatency{index: make(map[string]int, len(methods)), obs: make([][2]telemetry.Observer, len(methods))}
	for i, m := range methods {
		c.index[m] = i
		method := attribute.String("method", strings.ToLower(m))
		c.obs[i] = [2]telemetry.Observer{
			l.Observer(method, attribute.String("result", "ok")),
			l.Observer(method, attribute.String("result", "error")),
		}
	}
	return c
}

// Option is the client option that installs the middleware.
func (c *CallLatency) Option() client.Option { return client.WithMiddleware(c.Middleware) }

// Middleware is the client middleware that observes.
func (c *CallLatency) Middleware(next endpoint.Endpoint) endpoint.Endpoint {
	return func(ctx context.Context, req, resp any) error {
		start := time.Now()
		err := next(ctx, req, resp)
		ri := rpcinfo.GetRPCInfo(ctx)
		if ri == nil || ri.Invocation() == nil {
			return err
		}
		i, known := c.index[ri.Invocation().MethodName()]
		if !known {
			return err
		}
		result := 0
		if err != nil {
			result = 1
		}
		c.obs[i][result].Since(start)
		return err
	}
}

// Observe records one call of method (a Kitex method name) that started at start and was made
// another way than through a Kitex client (internal/colocal's in-process link), so the histogram
// counts every call whichever way it went. A nil CallLatency observes nothing.
func (c *CallLatency) Observe(method string, start time.Time, err error) {
	if c == nil {
		return
	}
	i, known := c.index[method]
	if !known {
		return
	}
	result := 0
	if err != nil {
		result = 1
	}
	c.obs[i][result].Since(start)
}
