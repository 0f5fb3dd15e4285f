package gateway

import (
	"time"

	"github.com/platoim/plato/internal/buildinfo"
	"github.com/platoim/plato/internal/overload"
	"github.com/platoim/plato/internal/registry"
)

type rates struct {
	at                time.Time
	bytesIn, bytesOut int64
}

// loadNode is the gateway's registry entry with its live load; ipconf averages it over its window.
// registry.Keep calls it every ReportInterval, from one goroutine.
func (gw *Gateway) loadNode() registry.Node {
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
	// A gateway that reaches no state server would answer every Login 1210 (a fresh one, until its
	// registry watch shows it the state servers; or one that lost them all): it registers without
	// its endpoint then, which ipconf does not hand out.
	endpoint, wsEndpoint := "", ""
	if gw.servable() {
		endpoint, wsEndpoint = gw.Endpoint(), gw.WSEndpoint()
	}
	gw.moves.reports.Add(1)
	return registry.Node{
		ID: gw.cfg.ID, Role: registry.RoleGateway, Endpoint: endpoint, WSEndpoint: wsEndpoint, AdminAddr: gw.cfg.AdminAddr,
		RPCNetwork: network, RPCAddr: gw.RPCAddr(), Version: buildinfo.Get().Short(),
		Load: registry.Load{
			Conns: int64(gw.conns.len()), BytesInPerSec: inPS, BytesOutPerSec: outPS,
			BandwidthBytesPerSec: gw.cfg.Bandwidth,
			Overloaded:           gw.overload.Active(overload.RefuseLogins),
			Draining:             gw.moves.draining.Load(),
		},
		StartedAt: gw.startedAt, UpdatedAt: now,
	}
}
