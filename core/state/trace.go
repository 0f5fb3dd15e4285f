package state

import (
	"context"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/platoim/plato/internal/telemetry"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// sigSpan is the trace of one sampled signal: the root span "plato.signal", started when the
// signal reaches the state server and ended when the state server has answered it (queued the
// LoginAck, the UplinkAck after the business server's answer, the Downlink for the gateway...).
// A signal that is not sampled has a nil *sigSpan, and every method is nil-safe, so the common
// path costs a nil check and no allocation.
type sigSpan struct {
	ctx  context.Context
	span trace.Span
	// parent is the span's W3C traceparent, which the pipeline's stages receive.
	parent string
}

// startSignal starts the span of a signal of app when the sampler keeps it.
func (s *Server) startSignal(sig stage.Signal, app string) *sigSpan {
	ctx, span := s.tracer.StartRoot("plato.signal")
	if span == nil {
		return nil
	}
	span.SetAttributes(attribute.String("signal", string(sig)), attribute.String("app", app))
	return &sigSpan{ctx: ctx, span: span, parent: telemetry.TraceParent(ctx)}
}

// startFrame starts the span of a device frame the gateway traced (traceparent set), under the
// gateway's span: the sampling of device signals is decided once, at the gateway.
func (s *Server) startFrame(sig stage.Signal, app, traceparent string) *sigSpan {
	ctx, span := s.tracer.StartRemote("plato.signal", traceparent)
	if span == nil {
		return nil
	}
	span.SetAttributes(attribute.String("signal", string(sig)), attribute.String("app", app))
	return &sigSpan{ctx: ctx, span: span, parent: telemetry.TraceParent(ctx)}
}

func (sp *sigSpan) traceParent() string {
	if sp == nil {
		return ""
	}
	return sp.parent
}

// end ends the span with the code the signal was answered with. Codes 1300-1399 say Plato could
// not do its job (business unreachable, overloaded, a stage failed): those spans are errors. A
// refusal (a bad token, a business 2xxx code, a duplicate) is an answer, not an error.
func (sp *sigSpan) end(code protocol.Code) {
	if sp == nil {
		return
	}
	sp.span.SetAttributes(attribute.Int("code", int(code)))
	if code >= 1300 && code <= 1399 {
		sp.span.SetStatus(codes.Error, "code "+strconv.Itoa(int(code)))
	}
	sp.span.End()
}

// child starts a client span under the signal's span (nil when the signal is not sampled).
func (sp *sigSpan) child(tr trace.Tracer, name string) trace.Span {
	if sp == nil || tr == nil {
		return nil
	}
	_, span := tr.Start(sp.ctx, name, trace.WithSpanKind(trace.SpanKindClient))
	return span
}
