package telemetry

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Emit reports one value of an observable instrument, with its attributes.
type Emit func(v int64, attrs ...attribute.KeyValue)

// Observables declares a role's observable instruments and reads them all in one callback, run
// only when the metrics are collected (a scrape of /metrics). Declare with Counter and Gauge,
// then Register once; a nil meter makes every call a no-op.
type Observables struct {
	meter metric.Meter
	insts []metric.Observable
	reads []func(metric.Observer)
	err   error
}

// NewObservables starts declaring instruments on meter (nil: none).
func NewObservables(meter metric.Meter) *Observables { return &Observables{meter: meter} }

// Counter declares a monotonic counter; read emits its current totals.
func (o *Observables) Counter(name, unit, desc string, read func(Emit)) {
	if o.meter == nil {
		return
	}
	inst, err := o.meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	o.add(inst, err, func(ob metric.Observer) {
		read(func(v int64, attrs ...attribute.KeyValue) { ob.ObserveInt64(inst, v, metric.WithAttributes(attrs...)) })
	})
}

// Gauge declares a gauge; read emits its current values.
func (o *Observables) Gauge(name, unit, desc string, read func(Emit)) {
	if o.meter == nil {
		return
	}
	inst, err := o.meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
	o.add(inst, err, func(ob metric.Observer) {
		read(func(v int64, attrs ...attribute.KeyValue) { ob.ObserveInt64(inst, v, metric.WithAttributes(attrs...)) })
	})
}

// CounterValue declares a counter without attributes whose total is read().
func (o *Observables) CounterValue(name, unit, desc string, read func() int64) {
	o.Counter(name, unit, desc, func(emit Emit) { emit(read()) })
}

// GaugeValue declares a gauge without attributes whose value is read().
func (o *Observables) GaugeValue(name, unit, desc string, read func() int64) {
	o.Gauge(name, unit, desc, func(emit Emit) { emit(read()) })
}

// CounterByCode declares a counter with one series per code counted in c, under the attribute key.
func (o *Observables) CounterByCode(name, unit, desc, key string, c *Codes) {
	o.Counter(name, unit, desc, func(emit Emit) {
		c.Each(func(_ int, label string, n int64) { emit(n, attribute.String(key, label)) })
	})
}

// CounterBySignal declares a counter with one series per named signal, zeros included so that a
// rate over them starts from the process's start.
func (o *Observables) CounterBySignal(name, unit, desc string, s *Signals, names map[uint8]string) {
	o.Counter(name, unit, desc, func(emit Emit) {
		for sig, label := range names {
			emit(s.Load(sig), attribute.String("signal", label))
		}
	})
}

func (o *Observables) add(inst metric.Observable, err error, read func(metric.Observer)) {
	if err != nil {
		o.err = errors.Join(o.err, err)
		return
	}
	o.insts = append(o.insts, inst)
	o.reads = append(o.reads, read)
}

// Register installs the callback. Unregister the result when the role stops, so a provider that
// outlives it does not keep reading it.
func (o *Observables) Register() (metric.Registration, error) {
	if o.meter == nil || o.err != nil || len(o.insts) == 0 {
		return noRegistration{}, o.err
	}
	reads := o.reads
	return o.meter.RegisterCallback(func(_ context.Context, ob metric.Observer) error {
		for _, r := range reads {
			r(ob)
		}
		return nil
	}, o.insts...)
}

type noRegistration struct{ metric.Registration }

func (noRegistration) Unregister() error { return nil }
