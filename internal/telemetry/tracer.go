package telemetry

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Tracer starts the root span of a signal. A nil *Tracer traces nothing.
//
// Asking the SDK for a span allocates (a context, the span, its ID) even when the sampler then
// drops it, and a state server handles every signal of a million devices. So StartRoot draws the
// trace ID first and decides on it the way the provider's TraceIDRatioBased sampler does (the low
// 64 bits, shifted right once, below fraction * 2^63): one random number rejects nearly every
// signal. A trace ID that passes is confirmed by the provider's own sampler (which allocates
// nothing) and handed to the SDK through presetIDs, whose sampler then reaches the same decision
// on the same ID. The fraction traced is exactly telemetry.traces.sampling.
type Tracer struct {
	tracer  trace.Tracer
	sampler sdktrace.Sampler // nil: a tracer from elsewhere, asked by starting a span
	bound   uint64           // keep a root when its trace ID's low 64 bits >> 1 are below this
}

func newTracer(t trace.Tracer, fraction float64) *Tracer {
	tr := &Tracer{tracer: t, sampler: tracesSampler(fraction)}
	switch {
	case fraction >= 1:
		tr.bound = math.MaxUint64
	case fraction > 0:
		tr.bound = uint64(fraction * (1 << 63))
	}
	return tr
}

// NewTracer wraps a tracer from another provider (tests, an embedding program). Every root span
// is started and dropped again when that provider does not record it.
func NewTracer(t trace.Tracer) *Tracer {
	if t == nil {
		return nil
	}
	return &Tracer{tracer: t}
}

// Trace is the tracer for child spans, whose sampling follows their parent.
func (t *Tracer) Trace() trace.Tracer {
	if t == nil {
		return nil
	}
	return t.tracer
}

// rootOpts are fixed so that StartRoot's callers build no option slice per call.
var rootOpts = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// StartRoot starts a new trace with a server span called name when it is sampled, and returns a
// nil span (having allocated nothing) when it is not. Callers add attributes to a span they got.
func (t *Tracer) StartRoot(name string) (context.Context, trace.Span) {
	if t == nil {
		return nil, nil
	}
	ctx := context.Background()
	if t.sampler != nil {
		lo := rand.Uint64()
		if lo>>1 >= t.bound {
			return nil, nil
		}
		var id trace.TraceID
		binary.BigEndian.PutUint64(id[:8], rand.Uint64()|1) // never zero, so always a valid ID
		binary.BigEndian.PutUint64(id[8:], lo)
		r := t.sampler.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: id, Name: name})
		if r.Decision != sdktrace.RecordAndSample {
			return nil, nil
		}
		ctx = context.WithValue(ctx, presetKey{}, id)
	}
	ctx, span := t.tracer.Start(ctx, name, rootOpts...)
	if !span.IsRecording() {
		span.End()
		return nil, nil
	}
	return ctx, span
}

// StartRemote continues the trace another process started and passed on as a W3C traceparent
// (the gateway's, for a device frame): a server span called name under it. It returns a nil span
// when there is no valid parent: the other process did not sample the signal.
func (t *Tracer) StartRemote(name, traceparent string) (context.Context, trace.Span) {
	if t == nil || traceparent == "" {
		return nil, nil
	}
	parent := SpanContextOf(traceparent)
	if !parent.IsValid() {
		return nil, nil
	}
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
	ctx, span := t.tracer.Start(ctx, name, rootOpts...)
	if !span.IsRecording() {
		span.End()
		return nil, nil
	}
	return ctx, span
}

// TraceParent is the W3C traceparent of the span in ctx, or "" when there is none.
func TraceParent(ctx context.Context) string {
	var c traceParentCarrier
	propagation.TraceContext{}.Inject(ctx, &c)
	return c.v
}

// SpanContextOf parses a W3C traceparent; the span context is invalid when traceparent is not one.
func SpanContextOf(traceparent string) trace.SpanContext {
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), &traceParentCarrier{v: traceparent}))
}

// traceParentCarrier carries one traceparent value, so propagating it needs no map.
type traceParentCarrier struct{ v string }

func (c *traceParentCarrier) Get(key string) string {
	if key == "traceparent" {
		return c.v
	}
	return ""
}
func (c *traceParentCarrier) Set(key, v string) {
	if key == "traceparent" {
		c.v = v
	}
}
func (c *traceParentCarrier) Keys() []string { return []string{"traceparent"} }

// presetKey carries a trace ID StartRoot already drew (and sampled) to presetIDs.
type presetKey struct{}

// presetIDs is the providers' ID generator: random IDs, except a trace ID preset by StartRoot.
type presetIDs struct{}

func (presetIDs) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if id, ok := ctx.Value(presetKey{}).(trace.TraceID); ok {
		return id, newSpanID()
	}
	return newTraceID(), newSpanID()
}

func (presetIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

// newTraceID draws 128 random bits from the runtime's per-thread generator (no lock, no
// allocation). Zero is not a valid ID, hence the loop.
func newTraceID() trace.TraceID {
	var id trace.TraceID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:8], rand.Uint64())
		binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}
