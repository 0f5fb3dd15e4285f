package rpc

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/cloudwego/kitex/pkg/endpoint"
	"github.com/cloudwego/kitex/pkg/rpcinfo"

	"github.com/platoim/plato/internal/telemetry"
)

// Calls counts the calls a Kitex server answers, by method and result, from one server middleware:
// no handler counts its own. Only the methods it is made with are counted, so the label values
// stay a fixed set whatever callers send.
type Calls struct {
	names   []string       // the method label: the Kitex method name, lower-cased
	index   map[string]int // Kitex method name -> position in names
	ok      []atomic.Int64
	refused []telemetry.Codes
	codeOf  func(resp any, err error) (code int, refused bool)
}

// NewCalls counts the calls of methods (Kitex method names, "Push"). codeOf says whether a call
// was refused and with which code, from its result and error; a refusal without a code of its own
// (a transport error) is counted as code -1, "other".
func NewCalls(codeOf func(resp any, err error) (code int, refused bool), methods ...string) *Calls {
	c := &Calls{index: map[string]int{}, ok: make([]atomic.Int64, len(methods)), refused: make([]telemetry.Codes, len(methods)), codeOf: codeOf}
	for i, m := range methods {
		c.names = append(c.names, strings.ToLower(m))
		c.index[m] = i
	}
	return c
}

// Middleware is the server middleware that counts (server.WithMiddleware).
func (c *Calls) Middleware(next endpoint.Endpoint) endpoint.Endpoint {
	return func(ctx context.Context, req, resp any) error {
		err := next(ctx, req, resp)
		ri := rpcinfo.GetRPCInfo(ctx)
		if ri == nil || ri.Invocation() == nil {
			return err
		}
		i, known := c.index[ri.Invocation().MethodName()]
		if !known {
			return err
		}
		if code, refused := c.codeOf(resp, err); refused {
			c.refused[i].Add(code)
		} else {
			c.ok[i].Add(1)
		}
		return err
	}
}

// Add counts one call of method (a Kitex method name) made another way than through Kitex (the
// HTTP API): ok, or refused with code.
func (c *Calls) Add(method string, code int, refused bool) {
	i, known := c.index[method]
	if !known {
		return
	}
	if refused {
		c.refused[i].Add(code)
	} else {
		c.ok[i].Add(1)
	}
}

// Each calls f with every count: the method label, "ok" or the refusal code's label, and n.
func (c *Calls) Each(f func(method, result string, n int64)) {
	for i, name := range c.names {
		f(name, "ok", c.ok[i].Load())
		c.refused[i].Each(func(_ int, label string, n int64) { f(name, label, n) })
	}
}
