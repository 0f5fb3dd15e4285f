package telemetry

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// sampledContext is the context of a measurement made inside a sampled span, the case in which
// the SDK's default filter keeps an exemplar.
func sampledContext() context.Context {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled,
	})
	return trace.ContextWithSpanContext(context.Background(), sc)
}

// /metrics and the console read the registry in Prometheus's text format, which has no exemplars:
// a measurement inside a sampled span keeps none.
func TestMeasurementsKeepNoExemplars(t *testing.T) {
	tel := newTestTelemetry(t, 1)
	m := tel.Meter()
	c, err := m.Int64Counter("test_exemplar_total")
	if err != nil {
		t.Fatal(err)
	}
	h, err := m.Float64Histogram("test_exemplar_seconds")
	if err != nil {
		t.Fatal(err)
	}
	ctx := sampledContext()
	for range 100 {
		c.Add(ctx, 1)
		h.Record(ctx, 0.002)
	}
	mfs, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "test_exemplar") {
			continue
		}
		for _, mt := range mf.GetMetric() {
			found++
			if ex := mt.GetCounter().GetExemplar(); ex != nil {
				t.Errorf("%s keeps an exemplar: %v", mf.GetName(), ex)
			}
			for _, b := range mt.GetHistogram().GetBucket() {
				if ex := b.GetExemplar(); ex != nil {
					t.Errorf("%s bucket %v keeps an exemplar: %v", mf.GetName(), b.GetUpperBound(), ex)
				}
			}
		}
	}
	if found != 2 {
		t.Fatalf("gathered %d of the 2 test series", found)
	}
}

// BenchmarkGather is one reading of a registry shaped like a busy process's (60 histogram and 60
// counter series, each measured inside sampled spans), as /metrics and the console's sampler take.
func BenchmarkGather(b *testing.B) {
	tel := newTestTelemetry(b, 1)
	m := tel.Meter()
	c, err := m.Int64Counter("bench_gather_total")
	if err != nil {
		b.Fatal(err)
	}
	h, err := m.Float64Histogram("bench_gather_seconds")
	if err != nil {
		b.Fatal(err)
	}
	ctx := sampledContext()
	for i := range 60 {
		set := metric.WithAttributeSet(attribute.NewSet(attribute.String("app", "app"+strconv.Itoa(i))))
		c.Add(ctx, 1, set)
		h.Record(ctx, 0.002, set)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tel.Registry.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
