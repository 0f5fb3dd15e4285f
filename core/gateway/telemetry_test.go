package gateway_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/testkit"
)

// Every instrument of the gateway is in the gateway rows of docs/observability.md with its type
// (core/platform checks the whole table against a scrape; this catches a gateway change early).
func TestMetricsMatchTheDoc(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	gc := config.Default().Gateway
	gc.ID, gc.RPCAddr = "gw-metrics", "127.0.0.1:0"
	if _, err := gateway.New(gateway.Config{Gateway: gc, Meter: provider.Meter("test"), Apps: &apps.Table{}}, nil, nil, testkit.Logger(t)); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	exported := map[string]string{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			kind := "counter"
			switch m.Data.(type) {
			case metricdata.Gauge[int64]:
				kind = "gauge"
			case metricdata.Histogram[float64]:
				kind = "histogram"
			}
			exported[m.Name] = kind
		}
	}

	doc, err := os.ReadFile("../../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `(plato_gateway_[a-z0-9_]+)` \\| (counter|gauge|histogram) \\|")
	documented := map[string]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			documented[m[1]] = m[2]
		}
	}
	// Series by code appear with their first code, so only what is exported is checked against the
	// doc, plus that the session metrics are there from the start.
	for name, kind := range exported {
		if documented[name] != kind {
			t.Errorf("%s is exported as a %s, documented as %q", name, kind, documented[name])
		}
	}
	for _, name := range []string{
		"plato_gateway_broadcasts_total", "plato_gateway_broadcasts_malformed_total", "plato_gateway_broadcasts_lost_total",
		"plato_gateway_broadcast_frames_out_total", "plato_gateway_broadcast_acks_dropped_total",
		"plato_gateway_session_memberships", "plato_gateway_sessions",
	} {
		if _, ok := exported[name]; !ok {
			t.Errorf("%s is not exported", name)
		}
	}
}
