package bizlink

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// Cool-down of an endpoint whose call failed: it is tried after the healthy ones (never dropped,
// so a fleet whose every endpoint failed still gets tried, and a recovered one is found) for
// cooldownBase doubling with each failure in a row, up to cooldownMax.
const (
	cooldownBase = 500 * time.Millisecond
	cooldownMax  = 30 * time.Second
)

// balanced spreads calls over several endpoints of one kind. Each call goes to the healthy
// endpoint with the fewest calls in flight (ties taken in turn, so an idle fleet is round-robin);
// when it fails, the next one is tried, until one answers or all have been tried once.
type balanced struct {
	eps  []*endpoint
	next atomic.Uint32
	now  func() time.Time
}

type endpoint struct {
	link      Link
	inflight  atomic.Int32
	fails     atomic.Int32 // failed calls in a row
	downUntil atomic.Int64 // unix nanoseconds; 0 healthy
}

func newBalanced(links []Link) *balanced {
	b := &balanced{now: time.Now}
	for _, l := range links {
		b.eps = append(b.eps, &endpoint{link: l})
	}
	return b
}

// order is the endpoints in the order one call tries them: the healthy ones by calls in flight
// (ties from a rotating start), then the cooling-down ones, the soonest back first.
func (b *balanced) order() []*endpoint {
	n := len(b.eps)
	start := int(b.next.Add(1)-1) % n
	now := b.now().UnixNano()
	out := make([]*endpoint, 0, n)
	for i := range n {
		out = append(out, b.eps[(start+i)%n])
	}
	// Insertion sort: a handful of endpoints. Stable, so ties keep the rotation.
	less := func(x, y *endpoint) bool {
		dx, dy := x.downUntil.Load() > now, y.downUntil.Load() > now
		if dx != dy {
			return dy
		}
		if dx {
			return x.downUntil.Load() < y.downUntil.Load()
		}
		return x.inflight.Load() < y.inflight.Load()
	}
	for i := 1; i < n; i++ {
		for j := i; j > 0 && less(out[j], out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func (e *endpoint) failed(now time.Time) {
	f := e.fails.Add(1)
	d := cooldownBase << min(f-1, 10)
	e.downUntil.Store(now.Add(min(d, cooldownMax)).UnixNano())
}

func (e *endpoint) ok() {
	if e.fails.Load() != 0 {
		e.fails.Store(0)
	}
	if e.downUntil.Load() != 0 {
		e.downUntil.Store(0)
	}
}

// call runs f on endpoints in order until one succeeds; the last error otherwise.
func call[T any](ctx context.Context, b *balanced, f func(Link) (T, error)) (T, error) {
	var zero T
	err := errNoEndpoint
	for _, e := range b.order() {
		e.inflight.Add(1)
		r, ferr := f(e.link)
		e.inflight.Add(-1)
		if ferr == nil {
			e.ok()
			return r, nil
		}
		err = ferr
		e.failed(b.now())
		if ctx.Err() != nil {
			break
		}
	}
	return zero, err
}

func (b *balanced) Deliver(ctx context.Context, req *api.DeliverRequest) (*api.DeliverResponse, error) {
	return call(ctx, b, func(l Link) (*api.DeliverResponse, error) { return l.Deliver(ctx, req) })
}

func (b *balanced) Sessions(ctx context.Context, req *api.SessionsRequest) (*api.SessionsResponse, error) {
	return call(ctx, b, func(l Link) (*api.SessionsResponse, error) { return l.Sessions(ctx, req) })
}

func (b *balanced) Authenticate(ctx context.Context, req *api.AuthenticateRequest) (*api.AuthenticateResponse, error) {
	return call(ctx, b, func(l Link) (*api.AuthenticateResponse, error) { return l.Authenticate(ctx, req) })
}

func (b *balanced) Close() {
	for _, e := range b.eps {
		e.link.Close()
	}
}
