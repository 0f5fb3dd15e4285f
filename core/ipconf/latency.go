package ipconf

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/platoim/plato/internal/telemetry"
)

// routeLatency observes how long ipconf takes to answer, by route: the routes it serves, and
// "other" for whatever else is asked (a 404), so that the label values stay a fixed set.
type routeLatency struct {
	list, health, other telemetry.Observer
}

func (r *routeLatency) init(meter metric.Meter) error {
	l, err := telemetry.NewLatency(meter, "plato_ipconf_request_seconds",
		"HTTP requests, from the request parsed to the answer ready to write, by route (/ip/list, /healthz, other).")
	if err != nil {
		return err
	}
	r.list = l.Observer(attribute.String("route", "/ip/list"))
	r.health = l.Observer(attribute.String("route", "/healthz"))
	r.other = l.Observer(attribute.String("route", "other"))
	return nil
}

// of is the observer of the route a request matched (hertz's FullPath: "" when none did).
func (r *routeLatency) of(route string) telemetry.Observer {
	switch route {
	case "/ip/list":
		return r.list
	case "/healthz":
		return r.health
	}
	return r.other
}
