package ipconf

import (
	"go.opentelemetry.io/otel/metric"

	"github.com/platoim/plato/internal/telemetry"
)

// instrument publishes ipconf's counters as observable instruments (docs/observability.md).
func (s *Server) instrument(meter metric.Meter) (metric.Registration, error) {
	o := telemetry.NewObservables(meter)
	o.CounterByCode("plato_ipconf_requests_total", "{request}", "HTTP requests answered, by status (200, 400, 404, 405, 503 no gateway).", "status", &s.requests)
	o.GaugeValue("plato_ipconf_gateways", "{gateway}", "Gateways ipconf knows from the registry (live or not yet pruned).",
		func() int64 { return int64(s.scorer.Len()) })
	o.CounterValue("plato_registry_watch_restarts_total", "{watch}",
		"Registry watches started again after one broke (ipconf's watch of the gateways).", s.watchRestarts.Load)
	return o.Register()
}
