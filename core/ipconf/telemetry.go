package ipconf

import (
	"go.opentelemetry.io/otel/metric"

	"github.com/platoim/plato/internal/telemetry"
)

// instrument publishes ipconf's counters as observable instruments (docs/observability.md).
func (s *Server) instrument(meter metric.Meter) (metric.Registration, error) {
	if err := s.latency.init(meter); err != nil {
		return nil, err
	}
	o := telemetry.NewObservables(meter)
	o.CounterByCode("plato_ipconf_requests_total", "{request}", "HTTP requests answered, by status (200, 400, 401 credential refused, 403 app not configured, 404, 405, 431 headers too large, 503 no gateway or business unreachable).", "status", &s.requests)
	o.CounterByCode("plato_ipconf_credentials_refused_total", "{request}",
		"Requests refused for their credential or app, by the code answered (1101 invalid, 1102 expired, 1103 another app or device, 1105 app not configured, 1301/1302 business unreachable, 2000-2999 refused by the business).", "code", &s.refused)
	o.GaugeValue("plato_ipconf_gateways", "{gateway}", "Gateways ipconf knows from the registry (live or not yet pruned).",
		func() int64 { return int64(s.scorer.Len()) })
	o.CounterValue("plato_ipconf_stale_answers_total", "{request}",
		"Lists handed out while the registry was unreachable (marked stale): the gateways live when ipconf last heard from it.", s.staleAnswers.Load)
	return o.Register()
}
