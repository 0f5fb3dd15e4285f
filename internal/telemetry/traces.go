package telemetry

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/platoim/plato/internal/config"
)

// tracesSampler is the sampler of every Plato process: a trace is kept for the configured
// fraction of its roots, and a span with a parent follows its parent's decision.
func tracesSampler(fraction float64) sdktrace.Sampler {
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(fraction))
}

// newTracerProvider builds the provider for the configured exporter; nil when it is none. The
// returned closer releases what the exporter opened (the stdout exporter's file).
func newTracerProvider(ctx context.Context, c config.Traces, res *resource.Resource) (*sdktrace.TracerProvider, func(context.Context) error, error) {
	var (
		exp    sdktrace.SpanExporter
		closer = func(context.Context) error { return nil }
	)
	switch c.Exporter {
	case "", config.TraceExporterNone:
		return nil, closer, nil
	case config.TraceExporterStdout:
		f, err := os.OpenFile(c.File, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("telemetry.traces.file: %w", err)
		}
		// Without pretty-printing the exporter writes one JSON object per span and line.
		if exp, err = stdouttrace.New(stdouttrace.WithWriter(f)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("creating the stdout span exporter: %w", err)
		}
		closer = func(context.Context) error { return f.Close() }
	case config.TraceExporterOTLP:
		// The client connects lazily and retries in the background: a collector that is down at
		// start costs dropped spans, never a failed start.
		var err error
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(c.Endpoint), otlptracegrpc.WithInsecure())
		if err != nil {
			return nil, nil, fmt.Errorf("creating the OTLP span exporter for %s: %w", c.Endpoint, err)
		}
	default:
		return nil, nil, fmt.Errorf("telemetry.traces.exporter: unknown exporter %q", c.Exporter)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(tracesSampler(c.Sampling)),
		sdktrace.WithIDGenerator(presetIDs{}),
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
	)
	return tp, closer, nil
}
