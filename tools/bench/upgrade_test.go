package bench

import (
	"os/exec"
	"strings"
	"testing"
)

// TestUpgradeGatewaysOptions checks --gateways: the devices one gateway process may hold, the
// workers that spread them, and that only the upgrade scenario takes it.
func TestUpgradeGatewaysOptions(t *testing.T) {
	valid := func(mutate func(*Options)) (Options, error) {
		o := Options{Scenario: ScenarioUpgrade, PlatoCommand: func(args ...string) *exec.Cmd { return exec.Command("plato", args...) }}
		mutate(&o)
		o.setDefaults()
		return o, o.validate()
	}
	o, err := valid(func(o *Options) {})
	if err != nil || o.GatewayProcs != 1 || gatewayWorkers(o) != 1 {
		t.Fatalf("defaults: %d gateways, %d workers, %v", o.GatewayProcs, gatewayWorkers(o), err)
	}
	o, err = valid(func(o *Options) { o.Devices, o.GatewayProcs = 100_000, 6 })
	if err != nil {
		t.Fatalf("100,000 devices over 6 gateways: %v", err)
	}
	// 7 workers of at most 15,000 would put two on one gateway (over 19,000): 2 per gateway.
	if w := gatewayWorkers(o); w != 12 {
		t.Fatalf("100,000 devices over 6 gateways: %d workers, want 12", w)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"too many per gateway", func(o *Options) { o.Devices, o.GatewayProcs = 100_000, 5 }, "20000 per gateway: one gateway process holds at most 19000 here (20,000 open files per process); give --gateways 6 or more"},
		{"one gateway, 20,000", func(o *Options) { o.Devices = 20_000 }, "give --gateways 2 or more"},
		{"no gateway", func(o *Options) { o.GatewayProcs = -1 }, "gateways -1: must be 1 to 16"},
		{"too many gateways", func(o *Options) { o.GatewayProcs = MaxGatewayProcs + 1 }, "must be 1 to 16"},
		{"workers not a multiple", func(o *Options) { o.Devices, o.GatewayProcs, o.Workers = 300, 2, 3 }, "give a multiple of 2"},
		{"not upgrade", func(o *Options) { o.Scenario, o.GatewayProcs = ScenarioFailover, 2 }, "upgrade scenario only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := valid(tc.mutate); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
