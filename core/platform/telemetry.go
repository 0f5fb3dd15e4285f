package platform

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/telemetry"
)

// startTelemetry builds the process's providers and its admin server before any role, so that a
// port conflict on admin.addr fails the start at once and /healthz answers "starting" meanwhile.
// Both stop after every role (they are the first stops registered): spans ended while the roles
// shut down are still flushed.
func (p *Platform) startTelemetry(ctx context.Context, instance string) error {
	tel, err := telemetry.New(ctx, telemetry.Settings{Traces: p.Config.Telemetry.Traces, Instance: instance})
	if err != nil {
		return fmt.Errorf("starting telemetry: %w", err)
	}
	p.Telemetry = tel
	p.stops = append(p.stops, tel.Shutdown)
	p.meter, p.tracer = p.opts.Meter, telemetry.NewTracer(p.opts.Tracer)
	if p.meter == nil {
		p.meter = tel.Meter()
	}
	if p.tracer == nil {
		p.tracer = tel.Tracer()
	}
	if addr := p.Config.Admin.Addr; addr != "" {
		if ln := p.opts.AdminListener; ln != nil {
			p.Admin = telemetry.ServeAdmin(ln, tel.Registry, p.health, p.log)
		} else if p.Admin, err = telemetry.StartAdmin(addr, tel.Registry, p.health, p.log); err != nil {
			return err
		}
		p.stops = append(p.stops, p.Admin.Shutdown)
	}
	return nil
}

// health is what /healthz reports once the roles started: the process is unhealthy while it
// cannot reach NATS, which every role but the demo needs to find its peers; it is degraded (still
// 200) while a pipeline stage is crash-looping, which is one app's stage failing, not the
// process: its signals get the stage's on_failure answer and the other stages and apps are served,
// so restarting the state server or sending its devices elsewhere would cure nothing.
func (p *Platform) health() error {
	if p.nc != nil && !p.nc.IsConnected() {
		return errors.New("not connected to NATS at " + p.natsURL + " (" + p.nc.Status().String() + ")")
	}
	if p.Pipelines != nil {
		if failing := p.Pipelines.FailingStages(); len(failing) > 0 {
			names := make([]string, len(failing))
			for i, f := range failing {
				names[i] = fmt.Sprintf("%s/%s (%s, %d crashes)", f.App, f.Stage, f.Breaker, f.Crashes)
			}
			return &telemetry.Degraded{
				Message: "pipeline stages crash-looping: " + strings.Join(names, ", "),
				Detail:  map[string]any{"failing_stages": failing},
			}
		}
	}
	return nil
}

// countedRegistry is the registry the roles use, counting failed puts: a role that cannot refresh
// its entry disappears from its peers after registry.ttl.
type countedRegistry struct {
	registry.Registry
	putErrors *atomic.Int64
}

func (r countedRegistry) Put(ctx context.Context, n registry.Node) error {
	err := r.Registry.Put(ctx, n)
	if err != nil {
		r.putErrors.Add(1)
	}
	return err
}

// instrumentNATS publishes the NATS connection's state and the registry's.
func (p *Platform) instrumentNATS(reg *registry.NATS, putErrors *atomic.Int64) (metric.Registration, error) {
	nc := p.nc
	o := telemetry.NewObservables(p.meter)
	o.GaugeValue("plato_nats_connected", "1", "1 while the process's NATS connection is up, 0 while it is reconnecting or closed.",
		func() int64 {
			if nc.IsConnected() {
				return 1
			}
			return 0
		})
	o.CounterValue("plato_nats_reconnects_total", "{reconnect}", "Times the NATS connection was re-established.",
		func() int64 { return int64(nc.Stats().Reconnects) })
	o.CounterValue("plato_registry_put_errors_total", "{put}",
		"Failed registry puts (a gateway's load report, a state server's refresh).", putErrors.Load)
	o.GaugeValue("plato_registry_up", "1", "1 while the registry (NATS and its bucket) answers, 0 during an outage.",
		func() int64 {
			if reg.Health().Up {
				return 1
			}
			return 0
		})
	o.GaugeValue("plato_registry_stale_seconds", "s",
		"How long this process's view of the other roles has been the last known one (the registry went away), in seconds rounded up; 0 while it is current.",
		func() int64 {
			if s := reg.Health().StaleSince; !s.IsZero() {
				return int64((time.Since(s) + time.Second - 1) / time.Second)
			}
			return 0
		})
	o.Gauge("plato_registry_nodes", "{node}", "Nodes in this process's view of the registry, by role watched (what its routing uses; kept while the view is stale).",
		func(emit telemetry.Emit) {
			for role, n := range reg.Health().Nodes {
				emit(int64(n), attribute.String("role", string(role)))
			}
		})
	o.CounterValue("plato_registry_bucket_creates_total", "{create}",
		"Times this process found the registry bucket gone (a NATS server restarted with it in memory) and created it again.",
		func() int64 { return reg.Health().BucketCreates })
	o.CounterValue("plato_registry_watch_restarts_total", "{watch}",
		"Registry watches opened again: after an outage, a re-created bucket, or a watch that broke or fell silent.",
		func() int64 { return reg.Health().WatchReopens })
	return o.Register()
}

// instrumentApps publishes the reloads of the apps section.
func (p *Platform) instrumentApps() (metric.Registration, error) {
	o := telemetry.NewObservables(p.meter)
	o.Counter("plato_apps_reloads_total", "{reload}",
		"Reloads of the apps section after the configuration file changed: result ok, or failed (the file did not load or its apps could not be used; the apps stayed as they were).",
		func(emit telemetry.Emit) {
			ok, failed := p.Apps.Reloads()
			emit(ok, attribute.String("result", "ok"))
			emit(failed, attribute.String("result", "failed"))
		})
	o.Gauge("plato_apps", "{app}", "Apps served: apps in the configuration, and those in NATS KV (plato apps set).",
		func(emit telemetry.Emit) { emit(int64(len(p.Apps.IDs()))) })
	return o.Register()
}

// instrumentLocal publishes the calls the gateway and the state server of this process made to
// each other in-process (state.in_process_link).
func (p *Platform) instrumentLocal() (metric.Registration, error) {
	o := telemetry.NewObservables(p.meter)
	o.Counter("plato_in_process_calls_total", "{call}",
		"Calls between this process's gateway and state server made in-process rather than over Kitex, by method.",
		func(emit telemetry.Emit) {
			for m, n := range p.Local.Calls() {
				emit(n, attribute.String("method", strings.ToLower(m)))
			}
		})
	return o.Register()
}
