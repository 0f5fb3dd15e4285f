package bench

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestOptionsDefaultsAndLimits(t *testing.T) {
	o := Options{Scenario: ScenarioUplink}
	o.setDefaults()
	if err := o.validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if o.Devices != DefaultDevices || o.Duration != DefaultDuration || o.Window != 1 || o.IPConfURL != DefaultIPConfURL {
		t.Fatalf("defaults: %+v", o)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"unknown scenario", func(o *Options) { o.Scenario = "flood" }, "unknown scenario"},
		{"too many devices", func(o *Options) { o.Devices = MaxDevices + 1 }, "devices 200001"},
		{"too long", func(o *Options) { o.Duration = 11 * time.Minute }, "duration 11m0s"},
		{"rate too high", func(o *Options) { o.Rate, o.Window = MaxRate+1, 0 }, "rate 1.000001e+06"},
		{"window and rate", func(o *Options) { o.Rate = 10 }, "not both"},
		{"workers too small", func(o *Options) { o.Devices, o.Workers, o.PerWorker = 100, 2, 10 }, "do not fit"},
		{"remote ipconf", func(o *Options) { o.IPConfURL = "http://10.1.2.3:8080" }, "refusing ipconf target 10.1.2.3"},
		{"remote gateway", func(o *Options) { o.Gateways = []string{"192.168.1.5:8900"} }, "refusing gateway target"},
		{"remote state", func(o *Options) { o.Scenario, o.StateAddr = ScenarioDownlink, "8.8.8.8:8901" }, "refusing state target"},
		{"remote state-http", func(o *Options) { o.Scenario, o.StateHTTP = ScenarioDownlink, "8.8.8.8:8081" }, "refusing state-http target"},
		{"state-http beyond downlink", func(o *Options) { o.StateHTTP = "127.0.0.1:8081" }, "downlink scenario only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Scenario: ScenarioUplink}
			o.setDefaults()
			tc.mutate(&o)
			err := o.validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate: %v, want an error containing %q", err, tc.want)
			}
			if strings.HasPrefix(tc.name, "remote") && !errors.Is(err, errNotLoopback) {
				t.Fatalf("a remote target's error does not say loopback only: %v", err)
			}
		})
	}
}

func TestLoopbackChecks(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:1", "127.9.8.7:1", "[::1]:1", "localhost:8900"} {
		if err := checkLoopbackAddr("gateway", ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"10.0.0.1:1", "0.0.0.0:1", "example.invalid:1", "nohostport"} {
		if err := checkLoopbackAddr("gateway", bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if err := checkLoopbackURL("ftp://127.0.0.1/"); err == nil {
		t.Error("a non-HTTP ipconf URL accepted")
	}
}

func TestRunRefusesBadOptions(t *testing.T) {
	_, err := Run(t.Context(), Options{Scenario: ScenarioConnect, IPConfURL: "http://10.0.0.1:8080"})
	if !errors.Is(err, errNotLoopback) {
		t.Fatalf("Run against a remote ipconf: %v", err)
	}
	_, err = Run(t.Context(), Options{Scenario: ScenarioConnect, TokenSecret: "short"})
	if err == nil || !strings.Contains(err.Error(), "token secret") {
		t.Fatalf("Run with a short secret: %v", err)
	}
}

func TestSlowConsumersDefaults(t *testing.T) {
	o := Options{Scenario: ScenarioSlowConsumers, PlatoCommand: func(...string) *exec.Cmd { return nil }}
	o.setDefaults()
	if err := o.validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if o.Devices != DefaultSlowDevices || o.Stalled != 50 || o.StalledRate != DefaultStalledRate || o.PushSize != DefaultPushSize ||
		o.Rate != 950 || o.Warmup != DefaultSlowWarmup || o.Duration != DefaultSlowMaxDuration || o.Window != 0 || o.DeviceRcvbuf != DefaultDeviceRcvbuf {
		t.Fatalf("defaults: %+v", o)
	}
	o = Options{Scenario: ScenarioSlowConsumers, Devices: 40, StalledPercent: 10}
	o.setDefaults()
	if o.Stalled != 4 || o.Rate != 36 {
		t.Fatalf("10%% of 40 devices: %d stalled, healthy rate %v", o.Stalled, o.Rate)
	}
	if err := o.validate(); err == nil || !strings.Contains(err.Error(), "plato binary") {
		t.Fatalf("validate without the plato binary: %v", err)
	}
}
