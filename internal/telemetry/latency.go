package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// LatencyBuckets are the bounds, in seconds, of Plato's latency histograms: from a loopback RPC
// (a tenth of a millisecond) to a call that ran into its timeout (tens of seconds).
var LatencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Latency is a latency histogram in seconds. Its zero value records nothing.
type Latency struct{ h metric.Float64Histogram }

// NewLatency creates the histogram name on meter (nil: a Latency that records nothing).
func NewLatency(meter metric.Meter, name, desc string) (Latency, error) {
	if meter == nil {
		return Latency{}, nil
	}
	h, err := meter.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
		metric.WithExplicitBucketBoundaries(LatencyBuckets...))
	return Latency{h: h}, err
}

// Observer resolves one series of the histogram, its attributes given once: observing it then
// allocates nothing. Build observers when the label values become known (a declared app, a
// method), never per measurement.
func (l Latency) Observer(attrs ...attribute.KeyValue) Observer {
	if l.h == nil {
		return Observer{}
	}
	// A slice built here and passed with ... is not copied by the call: an option passed as a
	// single variadic argument would cost an allocation per measurement.
	return Observer{h: l.h, opts: []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}}
}

// Observer records into one series of a Latency. Its zero value records nothing.
type Observer struct {
	h    metric.Float64Histogram
	opts []metric.RecordOption
}

// Observe records d.
func (o Observer) Observe(d time.Duration) {
	if o.h == nil {
		return
	}
	o.h.Record(context.Background(), d.Seconds(), o.opts...)
}

// Since records the time since start.
func (o Observer) Since(start time.Time) { o.Observe(time.Since(start)) }
