package gateway

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
)

// What a downlink push and its DownlinkAck reuse instead of allocating per message: at a window of
// one push per device, each push used to make a connCold and its unacked slice (dropped again at the
// ACK), a write queue, a flush closure, the ACK's event and a share of a Deliver call's request and
// context (docs/performance.md, "The gateway's push path"). Everything here belongs to the Gateway,
// and each object has one owner at a time, said at each get and put.

// flusher is a conn as a writer's task: a *conn in an interface costs nothing, where the method
// value c.flush was allocated on every flush.
type flusher conn

func (f *flusher) Run() { (*conn)(f).flush() }

// startFlush runs c.flush on a writer; the caller has set c.flushing.
func (c *conn) startFlush() { c.gw.writers.RunTask((*flusher)(c)) }

// Bounds of what the pools keep: a connection's rare long queue or long unacked list is not kept
// for others, and the free queues are bounded in count (a burst's worth).
const (
	maxPooledQueue   = 64
	maxFreeQueues    = 1024
	maxPooledUnacked = 8
)

// queueCache keeps the write queues flushes have written, for the next connection that queues a
// frame. A queue is the flush's from the moment it takes it from c.queue (under c.mu) until it
// puts it here, after the last read of its frames; nothing else keeps it.
type queueCache struct {
	mu   sync.Mutex
	free [][]outFrame
}

// get returns an empty queue, nil when none is kept. Called with a conn's mu held.
func (qc *queueCache) get() []outFrame {
	qc.mu.Lock()
	defer qc.mu.Unlock()
	n := len(qc.free)
	if n == 0 {
		return nil
	}
	q := qc.free[n-1]
	qc.free[n-1] = nil
	qc.free = qc.free[:n-1]
	return q
}

// put keeps q, whose frames have been written, for another connection.
func (qc *queueCache) put(q []outFrame) {
	if cap(q) == 0 || cap(q) > maxPooledQueue {
		return
	}
	clear(q) // the frames are the state server's, or shared broadcasts: not kept alive here
	qc.mu.Lock()
	if len(qc.free) < maxFreeQueues {
		qc.free = append(qc.free, q[:0])
	}
	qc.mu.Unlock()
}

// newColdLocked returns an empty connCold, one a connection dropped if the pool has one. c.mu is
// held.
func (gw *Gateway) newColdLocked() *connCold {
	if k, ok := gw.colds.Get().(*connCold); ok {
		return k
	}
	return &connCold{}
}

// freeCold takes k, which trimColdLocked has just dropped from its connection (nothing in it, and
// no handover holds it: see trimColdLocked), for another connection. Its unacked and upPending
// slices, empty, are kept with it when small: the next at-least-once downlink or uplink reuses
// them.
func (gw *Gateway) freeCold(k *connCold) {
	u := k.unacked[:0]
	if cap(u) > maxPooledUnacked {
		u = nil
	}
	clear(u[:cap(u)]) // the frames ACKed: not kept alive here
	p := k.upPending[:0]
	if cap(p) > maxPooledUnacked {
		p = nil
	}
	*k = connCold{unacked: u, upPending: p}
	gw.colds.Put(k)
}

// newEvent returns an UpEvent for a device frame; deliver puts it back once the state server took
// it.
func (gw *Gateway) newEvent() *fleet.UpEvent {
	if ev, ok := gw.events.Get().(*fleet.UpEvent); ok {
		return ev
	}
	return &fleet.UpEvent{}
}

// freeEvents takes back events a Deliver call sent: the call has returned, the wire encoded them
// or the in-process link copied them (internal/colocal), and the batch that held them drops them.
// Only the caller of a successful call without a reroute may do it: rerouteClosed queues events
// again.
func (gw *Gateway) freeEvents(events []*fleet.UpEvent) {
	for _, ev := range events {
		*ev = fleet.UpEvent{}
		gw.events.Put(ev)
	}
}

// deliverRequest returns a request for one Deliver call, to give back with freeDeliverRequest
// once the call has returned.
func (gw *Gateway) deliverRequest() *fleet.DeliverRequest {
	if r, ok := gw.deliverReqs.Get().(*fleet.DeliverRequest); ok {
		return r
	}
	return &fleet.DeliverRequest{}
}

func (gw *Gateway) freeDeliverRequest(r *fleet.DeliverRequest) {
	*r = fleet.DeliverRequest{}
	gw.deliverReqs.Put(r)
}

// detachedCtx is a link's rpc.Detached of its batcher's context, made once: the batcher passes
// the same context to every send.
type detachedCtx struct {
	parent, ctx context.Context
}

// detached is rpc.Detached(ctx), reusing the one made for the same ctx before.
func (l *stateLink) detached(ctx context.Context) context.Context {
	if ctx.Done() == nil || ctx.Err() != nil {
		return rpc.Detached(ctx) // ctx itself
	}
	if d := l.dctx.Load(); d != nil && d.parent == ctx {
		return d.ctx
	}
	d := &detachedCtx{parent: ctx, ctx: rpc.Detached(ctx)}
	l.dctx.Store(d)
	return d.ctx
}

// dctxCache is stateLink's cache for detached.
type dctxCache = atomic.Pointer[detachedCtx]
