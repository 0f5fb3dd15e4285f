package pipeline

import (
	"context"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/platoim/plato/internal/telemetry"
	"github.com/platoim/plato/sdk/stage"
)

// Stage calls are traced per signal, not per batch: a batch mixes signals of many connections,
// each with its own trace (or none). For every signal of a call whose TraceParent is sampled,
// the call gets a "plato.stage" span in that signal's trace, and the stage receives the
// traceparent of that span, so a plugin's own spans nest under the call that carried them.
// Signals that are not sampled (nearly all) cost a string length check.

// startStageSpans starts the spans of one call; it reports whether it started any. sc.spans[k]
// belongs to evs[k].
func (p *Pipelines) startStageSpans(st *step, pipeline string, evs []stage.Event, sc *laneScratch) bool {
	if p.cfg.Tracer == nil {
		return false
	}
	started := false
	for k := range evs {
		if evs[k].TraceParent == "" {
			continue
		}
		parent := telemetry.SpanContextOf(evs[k].TraceParent)
		if !parent.IsSampled() {
			continue
		}
		if !started {
			sc.spans = slices.Grow(sc.spans[:0], len(evs))[:len(evs)]
			started = true
		}
		// The signal's span lives in this process: its context came through a string only
		// because stage.Event is what travels on to plugins.
		ctx := trace.ContextWithSpanContext(context.Background(), parent.WithRemote(false))
		ctx, span := p.cfg.Tracer.Start(ctx, "plato.stage", trace.WithAttributes(
			attribute.String("stage", st.name), attribute.String("app", pipeline),
			attribute.String("signal", string(evs[k].Signal)), attribute.Int("batch.events", len(evs)),
		))
		sc.spans[k] = span
		evs[k].TraceParent = telemetry.TraceParent(ctx)
	}
	return started
}

// endStageSpans ends the spans of a call with its failure, or each signal's verdict.
func endStageSpans(sc *laneScratch, reps []stage.Reply, err error) {
	for k, span := range sc.spans {
		if span == nil {
			continue
		}
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		} else {
			span.SetAttributes(attribute.String("verdict", verdictName(reps[k].Verdict)))
		}
		span.End()
	}
	clear(sc.spans)
	sc.spans = sc.spans[:0]
}

func verdictName(v stage.Verdict) string {
	switch v {
	case stage.Continue:
		return "continue"
	case stage.Reject:
		return "reject"
	case stage.Drop:
		return "drop"
	case stage.Fail:
		return "fail"
	}
	return "unknown"
}
