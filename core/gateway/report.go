package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/platoim/plato/internal/registry"
)

// reportLoop publishes load every ReportInterval; ipconf averages it over its window.
func (gw *Gateway) reportLoop(ctx context.Context) {
	defer gw.done.Done()
	t := time.NewTicker(gw.cfg.ReportInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := gw.report(ctx); err != nil && ctx.Err() == nil {
				gw.log.Warn("reporting load failed", "err", err)
			}
		}
	}
}

type rates struct {
	at                time.Time
	bytesIn, bytesOut int64
}

func (gw *Gateway) report(ctx context.Context) error {
	now := time.Now()
	in, out := gw.metrics.bytesIn.Load(), gw.metrics.bytesOut.Load()
	var inPS, outPS float64
	if prev := gw.lastRates; !prev.at.IsZero() {
		if secs := now.Sub(prev.at).Seconds(); secs > 0 {
			inPS = float64(in-prev.bytesIn) / secs
			outPS = float64(out-prev.bytesOut) / secs
		}
	}
	gw.lastRates = rates{at: now, bytesIn: in, bytesOut: out}
	network := "tcp"
	if gw.rpcLn.Addr().Network() == "unix" {
		network = "unix"
	}
	n := registry.Node{
		ID: gw.cfg.ID, Role: registry.RoleGateway, Endpoint: gw.Endpoint(),
		RPCNetwork: network, RPCAddr: gw.RPCAddr(),
		Load: registry.Load{
			Conns: int64(gw.conns.len()), BytesInPerSec: inPS, BytesOutPerSec: outPS,
			BandwidthBytesPerSec: gw.cfg.Bandwidth,
		},
		StartedAt: gw.startedAt, UpdatedAt: now,
	}
	if err := gw.reg.Put(ctx, n); err != nil {
		return fmt.Errorf("gateway: registering in the registry: %w", err)
	}
	return nil
}
