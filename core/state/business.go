package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/kitex/pkg/kerrors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/platoim/plato/internal/batch"
	"github.com/platoim/plato/internal/bizlink"
	"github.com/platoim/plato/internal/telemetry"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
)

// bizItem is one event for a business server and what to do with its result.
type bizItem struct {
	ev *api.Event
	// up is the connection of an uplink, which gets the result (Server.uplinkDone); nil for
	// notifications. seq is the uplink's.
	up  *connState
	seq uint64
	sp  *sigSpan // the uplink's trace, when it is sampled
}

// businessLink delivers events to one app's business server (its endpoints, Kitex or webhook,
// balanced by bizlink) in ordered micro-batches; the events of a failed batch are retried by
// retry, off the batcher's lanes.
type businessLink struct {
	addr  string // the endpoints, for logs and spans
	key   string // endpoints and secret: a change makes a new link
	cli   bizlink.Link
	batch *batch.Batcher[bizItem]
	// latency is the app's series of plato_state_business_call_seconds: ok, error.
	latency [2]telemetry.Observer
	retry   *eventRetry
	calls   bizCalls // Deliver requests, reused (callbufs.go)
	// callTime is how long its Deliver calls take, in nanoseconds, averaged (an EWMA, each call
	// weighing 1/8): uplinks of an app slower than state.uplink_ack_wait are not waited for
	// (replyacks.go). Concurrent lanes may lose an update; an average does not mind.
	callTime atomic.Int64
}

// observeCall folds the duration of one Deliver call into callTime.
func (l *businessLink) observeCall(d time.Duration) {
	old := l.callTime.Load()
	l.callTime.Store(old + (int64(d)-old)/8)
}

// businesses maps app IDs to their business server, one link per app: each app's events queue on
// their own, so one app's slow business server fills its own queue, never another app's.
type businesses struct {
	s     *Server
	mu    sync.Mutex
	byApp map[string]*businessLink
}

// forApp returns the link for appID, or nil when the app is not declared or has no business
// server. An app that moved to another address gets a new link.
func (b *businesses) forApp(appID string) (*businessLink, error) {
	app := b.s.cfg.Apps.Get(appID)
	if app == nil || len(app.Endpoints) == 0 {
		return nil, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if l := b.byApp[appID]; l != nil && l.key == app.BusinessKey {
		return l, nil
	} else if l != nil {
		go l.close(context.Background())
	}
	addr := strings.Join(app.Endpoints, ",")
	cli, err := bizlink.New(bizlink.Options{App: appID, Endpoints: app.Endpoints, Secret: app.WebhookSecret, Timeout: b.s.cfg.Business.Timeout})
	if err != nil {
		return nil, fmt.Errorf("creating business client for %s: %w", addr, err)
	}
	l := &businessLink{addr: addr, key: app.BusinessKey, cli: cli, latency: b.s.businessObservers(appID)}
	l.retry = newEventRetry(b.s, l)
	bc := b.s.cfg.Batch
	l.batch = batch.New(batch.Config{MaxSize: bc.MaxSize, MaxDelay: bc.MaxDelay, Lanes: bc.Lanes, MergeWait: bc.MergeWait},
		func(ctx context.Context, items []bizItem) { b.s.deliverBusiness(ctx, l, items) })
	b.byApp[appID] = l
	return l, nil
}

// close sends what is queued, stops the retries and drops the idle connections.
func (l *businessLink) close(ctx context.Context) {
	_ = l.batch.Close(ctx)
	l.retry.stop()
	l.cli.Close()
}

func (b *businesses) closeAll(ctx context.Context) {
	b.mu.Lock()
	links := b.byApp
	b.byApp = map[string]*businessLink{}
	b.mu.Unlock()
	for _, l := range links {
		l.close(ctx)
	}
}

// deliverBusiness sends one batch and hands each event its result. A failed call fails every
// uplink in it with a code the device can act on (retry later); notifications are logged.
func (s *Server) deliverBusiness(ctx context.Context, l *businessLink, items []bizItem) {
	call := l.calls.get(items)
	defer func() {
		// A ctx that had ended sent the call through Kitex's timeout pool, which may still be
		// encoding the request: only a call made while ctx was live is surely done with it.
		if ctx.Err() == nil {
			l.calls.put(call)
		}
	}()
	events := call.events
	spans := s.startDeliverSpans(l, items)
	for i, sp := range spans {
		if sp != nil {
			// The business server continues the trace under this call's span.
			events[i].Traceparent = telemetry.TraceParent(trace.ContextWithSpan(context.Background(), sp))
		}
	}
	start := time.Now()
	resp, err := l.cli.Deliver(ctx, &call.req)
	l.observeCall(time.Since(start))
	l.observe(start, err)
	endDeliverSpans(spans, err)
	if err != nil {
		code := protocol.CodeBusinessUnavailable
		if errors.Is(err, kerrors.ErrRPCTimeout) {
			code = protocol.CodeBusinessTimeout
		}
		s.metrics.businessFailed.Add(int64(len(items)))
		s.metrics.rpcError(peerBusiness, err)
		s.log.Warn("delivering to business server failed", "addr", l.addr, "events", len(items), "err", err)
		var again []*api.Event
		for i, it := range items {
			if it.up != nil {
				s.uplinkDone(it, code, "business server: "+err.Error())
			} else {
				// Uplinks are retried by their device, which gets the code; events only by us.
				again = append(again, events[i])
			}
		}
		l.retry.add(again)
		return
	}
	for i, it := range items {
		if it.up == nil {
			continue
		}
		if i < len(resp.Results) && resp.Results[i] != nil && resp.Results[i].Code != 0 {
			// Business codes live in 2000-2999 so they never collide with Plato's own.
			c := resp.Results[i].Code
			if c < 2000 || c > 2999 {
				c = 2000
			}
			s.uplinkDone(it, protocol.Code(c), resp.Results[i].Message)
			continue
		}
		s.uplinkDone(it, protocol.CodeOK, "")
	}
}

// startDeliverSpans starts a "plato.business.deliver" span under each sampled uplink of a batch;
// nil (and nothing allocated) when none is sampled.
func (s *Server) startDeliverSpans(l *businessLink, items []bizItem) []trace.Span {
	var spans []trace.Span
	for i, it := range items {
		if it.sp == nil {
			continue
		}
		if spans == nil {
			spans = make([]trace.Span, len(items))
		}
		sp := it.sp.child(s.tracer.Trace(), "plato.business.deliver")
		sp.SetAttributes(attribute.String("peer.address", l.addr), attribute.Int("batch.events", len(items)))
		spans[i] = sp
	}
	return spans
}

func endDeliverSpans(spans []trace.Span, err error) {
	for _, sp := range spans {
		if sp == nil {
			continue
		}
		if err != nil {
			sp.SetStatus(codes.Error, err.Error())
		}
		sp.End()
	}
}
