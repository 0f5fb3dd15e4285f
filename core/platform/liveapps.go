package platform

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/platoim/plato/internal/appstore"
	"github.com/platoim/plato/internal/telemetry"
)

// liveAppsWait bounds how long a starting role waits for the first read of the apps bucket, so
// that it serves the live apps from its first request; past it the role starts with the file's
// apps and takes the live ones when the read completes.
const liveAppsWait = 15 * time.Second

// startLiveApps follows the apps bucket (registry.apps_bucket) into p.Apps: apps set with
// `plato apps set` are served by every role within a NATS round trip, over the file's apps
// (docs/operations.md, "Apps").
func (p *Platform) startLiveApps(ctx context.Context) error {
	cfg := p.Config.Registry
	if cfg.AppsBucket == "" || p.nc == nil {
		return nil
	}
	js, err := jetstream.New(p.nc)
	if err != nil {
		return fmt.Errorf("live apps: creating the jetstream context: %w", err)
	}
	f := appstore.NewFollower(js, appstore.Config{Bucket: cfg.AppsBucket, Replicas: cfg.Replicas}, p.Apps, p.log)
	fctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(fctx)
	}()
	p.stops = append(p.stops, func(context.Context) error { cancel(); <-done; return nil })
	instruments, err := p.instrumentLiveApps(f)
	if err != nil {
		return fmt.Errorf("creating live apps metrics: %w", err)
	}
	p.stops = append(p.stops, func(context.Context) error { return instruments.Unregister() })
	select {
	case <-f.Loaded():
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(liveAppsWait):
		p.log.Warn("live apps: the apps bucket was not read in time; starting with the file's apps, the live ones follow when it is", "bucket", cfg.AppsBucket, "waited", liveAppsWait)
	}
	return nil
}

func (p *Platform) instrumentLiveApps(f *appstore.Follower) (metric.Registration, error) {
	o := telemetry.NewObservables(p.meter)
	o.Counter("plato_apps_live_changes_total", "{change}",
		"Changes of the live apps (NATS KV, plato apps set|delete) seen by this process: result ok (served), or refused (the value cannot be used; that app kept its last good settings).",
		func(emit telemetry.Emit) {
			s := f.Stats()
			emit(s.Applied, attribute.String("result", "ok"))
			emit(s.Refused, attribute.String("result", "refused"))
		})
	o.GaugeValue("plato_apps_live_up", "1", "1 while the apps bucket is followed, 0 while it cannot be (NATS away): the apps are then the last known.",
		func() int64 {
			if f.Stats().Up {
				return 1
			}
			return 0
		})
	return o.Register()
}
