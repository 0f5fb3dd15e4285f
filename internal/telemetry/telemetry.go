package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/platoim/plato/internal/config"
)

// ScopeName is the instrumentation scope of Plato's meters and tracers.
const ScopeName = "github.com/platoim/plato"

// Settings are what New needs: the telemetry section of the configuration and who this process is.
type Settings struct {
	Traces config.Traces
	// Service is the service.name resource attribute. Default "plato".
	Service string
	// Instance is the service.instance.id resource attribute (host and pid, say).
	Instance string
}

// Telemetry is one process's providers. Make it with New; Shutdown flushes and stops them.
type Telemetry struct {
	// Registry holds every metric the MeterProvider exports, plus Go runtime and process metrics.
	Registry *prometheus.Registry
	// MeterProvider records Plato's metrics into Registry.
	MeterProvider *sdkmetric.MeterProvider
	// TracerProvider is nil when telemetry.traces.exporter is none.
	TracerProvider *sdktrace.TracerProvider

	tracer  *Tracer
	closers []func(context.Context) error
}

// New builds the providers. On error nothing is left open.
func New(ctx context.Context, s Settings) (*Telemetry, error) {
	if s.Service == "" {
		s.Service = "plato"
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", s.Service),
		attribute.String("service.instance.id", s.Instance),
	)
	t := &Telemetry{Registry: prometheus.NewRegistry()}
	t.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	exp, err := otelprom.New(
		otelprom.WithRegisterer(t.Registry),
		// Instrument names are already the Prometheus names (plato_..._total, _seconds): no
		// suffixes are added, so the names in code, in docs/observability.md and on /metrics
		// are the same string.
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithoutSuffixes),
		otelprom.WithoutScopeInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("creating the Prometheus exporter: %w", err)
	}
	t.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res),
		// /metrics speaks Prometheus's text format, which carries no exemplars, so keeping
		// them is waste; and the SDK's collection makes room for each series' exemplars at
		// every Gather: an idle `plato up`'s scrape allocated 950 KB with them, 495 KB
		// without (docs/performance.md, "Metrics without exemplars"). The console's sampler
		// gathers every 2 s.
		sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
	t.closers = append(t.closers, t.MeterProvider.Shutdown)

	tp, closeExp, err := newTracerProvider(ctx, s.Traces, res)
	if err != nil {
		_ = t.Shutdown(context.Background())
		return nil, err
	}
	if tp != nil {
		t.TracerProvider = tp
		t.tracer = newTracer(tp.Tracer(ScopeName), s.Traces.Sampling)
		// The provider flushes into the exporter first, then the exporter's file is closed.
		t.closers = append(t.closers, closeExp, tp.Shutdown)
	}
	return t, nil
}

// Meter is Plato's meter on the process's MeterProvider.
func (t *Telemetry) Meter() metric.Meter { return t.MeterProvider.Meter(ScopeName) }

// Tracer is Plato's tracer, or nil when tracing is off.
func (t *Telemetry) Tracer() *Tracer { return t.tracer }

// Shutdown flushes pending spans and stops the providers, in reverse order of creation.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for i := len(t.closers) - 1; i >= 0; i-- {
		if err := t.closers[i](ctx); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	t.closers = nil
	return errors.Join(errs...)
}
