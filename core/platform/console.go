package platform

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/platoim/plato/core/console"
	"github.com/platoim/plato/internal/buildinfo"
	"github.com/platoim/plato/internal/registry"
)

// startConsole serves the ops console on the admin address (docs/operations.md, "Ops console"):
// the page, and the fleet, apps, pipelines and faults as JSON behind ops.key. Its sampler reads
// the process's metrics until the platform stops.
func (p *Platform) startConsole() {
	if p.Admin == nil || p.Telemetry == nil {
		return
	}
	cfg := console.Config{
		Key: p.Config.Ops.Key, AdminAddr: p.Admin.Addr(), Registry: p.reg, Gatherer: p.Telemetry.Registry,
		Nodes: func() []string { return append([]string(nil), p.nodeIDs...) }, Log: p.log,
		Pipelines: p.Pipelines, StateID: p.stateID,
	}
	if p.Apps != nil {
		cfg.Apps = p.Apps.IDs
	}
	c := console.New(cfg)
	c.Register(func(pattern string, h http.Handler) { p.Admin.Handle(pattern, h) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	p.stops = append(p.stops, func(context.Context) error { cancel(); <-done; return nil })
}

// registerIPConf puts ipconf in the registry, for the ops console's fleet view only: nothing
// routes by it. It leaves the registry when the platform stops, before ipconf does.
func (p *Platform) registerIPConf(ctx context.Context, id string) error {
	if p.reg == nil {
		return nil
	}
	started := time.Now()
	admin := ""
	if p.Admin != nil {
		admin = p.Admin.Addr()
	}
	node := func() registry.Node {
		return registry.Node{
			ID: id, Role: registry.RoleIPConf, Endpoint: p.IPConf.Addr(), AdminAddr: admin,
			Version: buildinfo.Get().Short(), StartedAt: started, UpdatedAt: time.Now(),
		}
	}
	kctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopped, err := registry.Keep(kctx, p.reg, p.Config.Gateway.ReportInterval, node, p.log.With("role", "ipconf"))
	if err != nil {
		cancel()
		return fmt.Errorf("ipconf: %w", err)
	}
	p.nodeIDs = append(p.nodeIDs, id)
	p.stops = append(p.stops, func(sctx context.Context) error {
		cancel()
		<-stopped // a refresh in flight must not put the entry back after Delete
		dctx, dcancel := context.WithTimeout(sctx, 2*time.Second)
		defer dcancel()
		if err := p.reg.Delete(dctx, registry.RoleIPConf, id); err != nil {
			p.log.Warn("ipconf: leaving the registry failed", "err", err)
		}
		return nil
	})
	return nil
}
