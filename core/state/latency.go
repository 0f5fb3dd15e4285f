package state

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/telemetry"
)

// instrumentLatency creates the latency histograms of the state server's calls: to gateways
// (every Gateway method, by a client middleware) and to business servers (Business.Deliver, per
// declared app, observed around the call).
func (s *Server) instrumentLatency(meter metric.Meter) error {
	calls, err := telemetry.NewLatency(meter, "plato_state_gateway_call_seconds",
		"Calls of the state server to gateways (Gateway.Push, Gateway.Sessions), by method and result.")
	if err != nil {
		return err
	}
	s.gatewayCalls = rpc.NewCallLatency(calls, "Push", "Sessions")
	s.businessLatency, err = telemetry.NewLatency(meter, "plato_state_business_call_seconds",
		"Business.Deliver calls carrying uplinks and events to an app's business server, by app and result.")
	return err
}

// businessObservers resolves an app's business-call series, when its link is made: appID is a
// declared app (forApp makes links for those only), so the series are as many as the apps.
func (s *Server) businessObservers(appID string) [2]telemetry.Observer {
	app := attribute.String("app", appID)
	return [2]telemetry.Observer{
		s.businessLatency.Observer(app, attribute.String("result", "ok")),
		s.businessLatency.Observer(app, attribute.String("result", "error")),
	}
}

// observe records a Business.Deliver call that started at start and ended with err.
func (l *businessLink) observe(start time.Time, err error) {
	if err != nil {
		l.latency[1].Since(start)
		return
	}
	l.latency[0].Since(start)
}
