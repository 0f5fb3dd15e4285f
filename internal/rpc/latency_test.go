package rpc_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cloudwego/kitex/pkg/rpcinfo"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/telemetry"
)

// The middleware observes known methods by method and result, ignores others, and allocates
// nothing per call.
func TestCallLatencyObservesAndAllocatesNothing(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	l, err := telemetry.NewLatency(provider.Meter("test"), "test_call_seconds", "test")
	if err != nil {
		t.Fatal(err)
	}
	mw := rpc.NewCallLatency(l, "Deliver", "Ping").Middleware
	ok := mw(func(context.Context, any, any) error { return nil })
	failing := mw(func(context.Context, any, any) error { return errors.New("down") })
	call := func(method string, ep func(context.Context, any, any) error) {
		ctx := rpcinfo.NewCtxWithRPCInfo(context.Background(), rpcinfo.NewRPCInfo(nil, nil, rpcinfo.NewInvocation("State", method), nil, nil))
		_ = ep(ctx, nil, nil)
	}
	call("Deliver", ok)
	call("Deliver", ok)
	call("Deliver", failing)
	call("Ping", ok)
	call("LocalPush", ok) // not declared: not observed
	_ = ok(context.Background(), nil, nil)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				method, _ := dp.Attributes.Value("method")
				result, _ := dp.Attributes.Value("result")
				got[method.AsString()+"/"+result.AsString()] = dp.Count
			}
		}
	}
	want := map[string]uint64{"deliver/ok": 2, "deliver/error": 1, "ping/ok": 1}
	if len(got) != len(want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("observed %v, want %v", got, want)
		}
	}

	ctx := rpcinfo.NewCtxWithRPCInfo(context.Background(), rpcinfo.NewRPCInfo(nil, nil, rpcinfo.NewInvocation("State", "Deliver"), nil, nil))
	if n := testing.AllocsPerRun(1000, func() { _ = ok(ctx, nil, nil) }); n != 0 && !raceEnabled {
		t.Errorf("the middleware allocates %v times per call, want 0", n)
	}
}
