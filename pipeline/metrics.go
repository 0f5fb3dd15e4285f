package pipeline

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// metrics are the pipeline's OpenTelemetry instruments; every measurement carries the attributes
// app (the pipeline: an app ID or "default") and stage.
type metrics struct {
	calls    metric.Int64Counter     // Process calls made (batches)
	failures metric.Int64Counter     // calls that failed, and batches that found the stage down
	skipped  metric.Int64Counter     // signals that skipped a failed fail_open stage
	restarts metric.Int64Counter     // plugin processes restarted by their supervisor
	slows    metric.Int64Counter     // hang checks that found a slow but answering plugin
	latency  metric.Float64Histogram // duration of a Process call
	crashes  metric.Int64Counter     // plugin processes lost, and launches failed, by reason
	// breaker is the crash-loop breaker state of every current instance, read at collection.
	breaker metric.Int64ObservableGauge
}

// instAttrs are an instance's attribute sets, built once so a measurement allocates no attributes.
type instAttrs struct {
	base    metric.MeasurementOption
	reasons [numReasons]metric.MeasurementOption
	crashes [numCrashReasons]metric.MeasurementOption
}

func newInstAttrs(pipeline, stage string) instAttrs {
	app, st := attribute.String("app", pipeline), attribute.String("stage", stage)
	a := instAttrs{base: metric.WithAttributeSet(attribute.NewSet(app, st))}
	for r := range numReasons {
		a.reasons[r] = metric.WithAttributeSet(attribute.NewSet(app, st, attribute.String("reason", r.String())))
	}
	for r := range numCrashReasons {
		a.crashes[r] = metric.WithAttributeSet(attribute.NewSet(app, st, attribute.String("reason", r.String())))
	}
	return a
}

func newMetrics(meter metric.Meter) (*metrics, error) {
	if meter == nil {
		meter = noop.NewMeterProvider().Meter("github.com/platoim/plato/pipeline")
	}
	m := &metrics{}
	var err, e error
	m.calls, e = meter.Int64Counter("plato_pipeline_stage_calls_total",
		metric.WithDescription("Batch calls made to a pipeline stage."), metric.WithUnit("{call}"))
	err = errors.Join(err, e)
	m.failures, e = meter.Int64Counter("plato_pipeline_stage_failures_total",
		metric.WithDescription("Batch calls to a pipeline stage that failed (reason error or timeout) or found its process down (reason down)."),
		metric.WithUnit("{call}"))
	err = errors.Join(err, e)
	m.skipped, e = meter.Int64Counter("plato_pipeline_stage_skipped_total",
		metric.WithDescription("Signals that skipped a failed fail_open pipeline stage."), metric.WithUnit("{signal}"))
	err = errors.Join(err, e)
	m.restarts, e = meter.Int64Counter("plato_pipeline_stage_restarts_total",
		metric.WithDescription("Pipeline stage plugin processes restarted after a crash, a hang or a failed health check."),
		metric.WithUnit("{restart}"))
	err = errors.Join(err, e)
	m.slows, e = meter.Int64Counter("plato_pipeline_stage_slow_total",
		metric.WithDescription("Times a pipeline stage plugin's calls timed out in a row while it kept answering late: slow, so not restarted."),
		metric.WithUnit("{event}"))
	err = errors.Join(err, e)
	m.latency, e = meter.Float64Histogram("plato_pipeline_stage_latency_seconds",
		metric.WithDescription("Duration of one batch call to a pipeline stage."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	err = errors.Join(err, e)
	m.crashes, e = meter.Int64Counter("plato_pipeline_stage_crashes_total",
		metric.WithDescription("Pipeline stage plugin processes lost (reason exited, hung or unhealthy) and launches that failed (reason start_failed)."),
		metric.WithUnit("{crash}"))
	err = errors.Join(err, e)
	m.breaker, e = meter.Int64ObservableGauge("plato_pipeline_stage_breaker_state",
		metric.WithDescription("Crash-loop breaker of a pipeline stage: 0 closed, 1 half-open (a relaunched plugin serves on probation), 2 open (no plugin process: its signals get its on_failure answer)."),
		metric.WithUnit("1"))
	err = errors.Join(err, e)
	return m, err
}

// observeBreakers reports the breaker state of every instance that instances lists, at each
// collection, until the returned registration is unregistered.
func (m *metrics) observeBreakers(meter metric.Meter, instances func() []*instance) (metric.Registration, error) {
	if meter == nil {
		return nil, nil
	}
	return meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, in := range instances() {
			o.ObserveInt64(m.breaker, int64(in.breakerState()), in.attrs.base)
		}
		return nil
	}, m.breaker)
}

// seed reports zero for an instance's counters, so that each series exists (and a rate over it
// starts) from the instance's start rather than from its first failure or restart.
func (m *metrics) seed(in *instance) {
	ctx := context.Background()
	m.calls.Add(ctx, 0, in.attrs.base)
	m.skipped.Add(ctx, 0, in.attrs.base)
	m.restarts.Add(ctx, 0, in.attrs.base)
	m.slows.Add(ctx, 0, in.attrs.base)
	for r := range numReasons {
		m.failures.Add(ctx, 0, in.attrs.reasons[r])
	}
	for r := range numCrashReasons {
		m.crashes.Add(ctx, 0, in.attrs.crashes[r])
	}
}

func (m *metrics) crash(in *instance, r crashReason) {
	m.crashes.Add(context.Background(), 1, in.attrs.crashes[r])
}

func (m *metrics) call(ctx context.Context, in *instance, d time.Duration) {
	m.calls.Add(ctx, 1, in.attrs.base)
	m.latency.Record(ctx, d.Seconds(), in.attrs.base)
}

func (m *metrics) failure(in *instance, r reason) {
	m.failures.Add(context.Background(), 1, in.attrs.reasons[r])
}

func (m *metrics) skip(in *instance, n int) {
	m.skipped.Add(context.Background(), int64(n), in.attrs.base)
}

func (m *metrics) restart(in *instance) {
	m.restarts.Add(context.Background(), 1, in.attrs.base)
}

func (m *metrics) slow(in *instance) {
	m.slows.Add(context.Background(), 1, in.attrs.base)
}
