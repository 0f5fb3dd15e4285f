package state

import (
	"github.com/platoim/plato/internal/overload"
)

// newOverload makes the state server's overload manager (docs/operations.md, "Overload"): the
// heap, and the fullest of its bounded queues: the pipeline lanes, the business links and the
// links to gateways. Logins are refused first, then uplinks, and broadcasts are shed last
// (pipeline.go, broadcast.go).
func (s *Server) newOverload() *overload.Manager {
	return overload.Standard("state", s.log, s.cfg.Overload,
		overload.Resource{Name: "pipeline_queue", Pressure: func() float64 {
			if f, ok := s.pipe.(interface{ Fill() float64 }); ok {
				return f.Fill()
			}
			return 0
		}},
		overload.Resource{Name: "business_queue", Pressure: s.business.fill},
		overload.Resource{Name: "gateway_queue", Pressure: func() float64 {
			return overload.Fullest(s.gateways.List(), func(l *gatewayLink) float64 { return l.batch.Fill() })
		}},
	)
}

// fill is the fullest business link's queue (batch.Batcher.Fill).
func (b *businesses) fill() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	most := 0.0
	for _, l := range b.byApp { // a map: Fullest takes a slice
		most = max(most, l.batch.Fill())
	}
	return most
}
