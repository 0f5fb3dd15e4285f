package telemetry

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/platoim/plato/internal/config"
)

func newTestTelemetry(t testing.TB, sampling float64) *Telemetry {
	t.Helper()
	tel, err := New(context.Background(), Settings{Traces: config.Traces{
		Exporter: config.TraceExporterStdout, File: filepath.Join(t.TempDir(), "spans.jsonl"), Sampling: sampling,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}

// An unsampled signal must cost the state server nothing but two random numbers.
func TestStartRootAllocatesNothingWhenNotSampled(t *testing.T) {
	tr := newTestTelemetry(t, 0).Tracer()
	if n := testing.AllocsPerRun(1000, func() {
		if _, sp := tr.StartRoot("plato.signal"); sp != nil {
			t.Fatal("sampled at 0")
		}
	}); n != 0 {
		t.Errorf("StartRoot allocates %v times per unsampled call, want 0", n)
	}
	var nilTracer *Tracer
	if _, sp := nilTracer.StartRoot("x"); sp != nil {
		t.Error("a nil tracer started a span")
	}
}

func TestStartRootKeepsTheConfiguredFraction(t *testing.T) {
	tr := newTestTelemetry(t, 0.25).Tracer()
	const n = 20000
	kept := 0
	for range n {
		ctx, sp := tr.StartRoot("plato.signal")
		if sp == nil {
			continue
		}
		kept++
		if !sp.SpanContext().IsSampled() || TraceParent(ctx) == "" {
			t.Fatal("a kept root span is not sampled or has no traceparent")
		}
		sp.End()
	}
	// 25% of 20000 is 5000 with a standard deviation of about 61.
	if kept < 4600 || kept > 5400 {
		t.Errorf("kept %d of %d roots at sampling 0.25", kept, n)
	}
	if tr1 := newTestTelemetry(t, 1).Tracer(); func() bool { _, sp := tr1.StartRoot("x"); return sp == nil }() {
		t.Error("sampling 1 dropped a root")
	}
}

func TestCodes(t *testing.T) {
	var c Codes
	for _, code := range []int{0, 1209, 1209, 2042, 70000, -1} {
		c.Add(code)
	}
	got := map[string]int64{}
	c.Each(func(_ int, label string, n int64) { got[label] = n })
	want := map[string]int64{"0": 1, "1209": 2, "2042": 1, "other": 2}
	if len(got) != len(want) {
		t.Fatalf("Each: %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Each: %v, want %v", got, want)
		}
	}
	if c.Total() != 6 || c.Load(1209) != 2 {
		t.Errorf("Total %d, Load(1209) %d", c.Total(), c.Load(1209))
	}
	if n := testing.AllocsPerRun(100, func() { c.Add(1301) }); n != 0 {
		t.Errorf("Codes.Add allocates %v", n)
	}
}

// BenchmarkHistogramRecord measures what one ACK-latency measurement costs the state server: it
// records without attributes, because an option argument alone costs an allocation per call.
func BenchmarkHistogramRecord(b *testing.B) {
	tel := newTestTelemetry(b, 0)
	h, err := tel.Meter().Float64Histogram("bench_seconds")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.Record(ctx, 0.001)
		}
	})
}

func BenchmarkStartRootUnsampled(b *testing.B) {
	tr := newTestTelemetry(b, 1e-9).Tracer() // the ratio sampler, nearly never keeping a root
	b.ReportAllocs()
	for b.Loop() {
		if _, sp := tr.StartRoot("plato.signal"); sp != nil {
			sp.End()
		}
	}
}

// A latency observer is resolved once; a measurement on a hot path must then allocate nothing.
func TestLatencyObserverAllocatesNothing(t *testing.T) {
	tel := newTestTelemetry(t, 0)
	l, err := NewLatency(tel.Meter(), "test_latency_seconds", "test")
	if err != nil {
		t.Fatal(err)
	}
	o := l.Observer(attribute.String("app", "demo"), attribute.String("result", "ok"))
	o.Observe(time.Millisecond)
	start := time.Now()
	if n := testing.AllocsPerRun(1000, func() { o.Since(start) }); n != 0 {
		t.Errorf("Observer.Since allocates %v times per measurement, want 0", n)
	}
	var zero Observer
	zero.Observe(time.Second) // records nothing, and does not panic
	if n := testing.AllocsPerRun(100, func() { zero.Observe(time.Second) }); n != 0 {
		t.Errorf("the zero Observer allocates %v", n)
	}
}

// BenchmarkLatencyObserver measures one measurement of a resolved latency series (two attributes),
// as the gateway makes per uplink.
func BenchmarkLatencyObserver(b *testing.B) {
	tel := newTestTelemetry(b, 0)
	l, err := NewLatency(tel.Meter(), "bench_latency_seconds", "bench")
	if err != nil {
		b.Fatal(err)
	}
	o := l.Observer(attribute.String("app", "demo"), attribute.String("result", "ok"))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			o.Observe(time.Millisecond)
		}
	})
}
