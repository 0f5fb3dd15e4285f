package gateway

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/internal/telemetry"
	"github.com/platoim/plato/sdk/protocol"
)

// An uplink's read time travels from forwarded to its UplinkAck, and the flush's observation of
// the written UplinkAcks allocates nothing: it runs for every uplink.
func TestUplinkLatencyIsObservedAndAllocatesNothing(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	gw := &Gateway{}
	var err error
	if gw.uplinkLatency, err = telemetry.NewLatency(provider.Meter("test"), "plato_gateway_uplink_latency_seconds", "test"); err != nil {
		t.Fatal(err)
	}
	u := gw.appUsage("demo")
	if gw.appUsage("demo") != u || !u.resolved {
		t.Fatal("appUsage made a second usage, or did not resolve the observer")
	}

	c := &conn{gw: gw}
	c.forwarded(7, monoNow())
	c.forwarded(8, 0) // passed by an upgrade: read time unknown
	c.mu.Lock()
	at7 := c.answeredLocked(&fleet.DownFrame{Seq: 7, Body: []byte{0, 0}})
	at8 := c.answeredLocked(&fleet.DownFrame{Seq: 8, Body: []byte{0, 0}})
	c.mu.Unlock()
	if at7 == 0 || at8 != 0 || c.cold != nil || gw.upInFlight.Load() != 0 {
		t.Fatalf("read times %d, %d; cold %v, in flight %d", at7, at8, c.cold, gw.upInFlight.Load())
	}

	q := []outFrame{
		{down: &fleet.DownFrame{Signal: int8(protocol.SigUplinkAck), Seq: 7}, readAt: at7},
		{down: &fleet.DownFrame{Signal: int8(protocol.SigUplinkAck), Seq: 8}},
		{broadcast: []byte("x")},
	}
	observeUplinks(u, q)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	h := rm.ScopeMetrics[0].Metrics[0].Data.(metricdata.Histogram[float64])
	if len(h.DataPoints) != 1 || h.DataPoints[0].Count != 1 {
		t.Fatalf("observed %+v, want one uplink of app demo", h.DataPoints)
	}
	if app, _ := h.DataPoints[0].Attributes.Value("app"); app.AsString() != "demo" {
		t.Errorf("app label %q", app.AsString())
	}
	if n := testing.AllocsPerRun(1000, func() { observeUplinks(u, q) }); n != 0 && !raceEnabled {
		t.Errorf("observing a flush's uplinks allocates %v times, want 0", n)
	}
}
