package bench

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

func TestCrashloopOptions(t *testing.T) {
	plato := func(...string) *exec.Cmd { return exec.Command("plato") }
	o := Options{Scenario: ScenarioCrashloop, PlatoCommand: plato}
	o.setDefaults()
	if err := o.validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if o.Kills != DefaultCrashloopKills || o.Devices != DefaultCrashloopDevices || o.Rate != DefaultCrashloopRate ||
		o.Interval != time.Second || o.Plugin != DefaultCrashloopPlugin || o.Duration != 0 {
		t.Fatalf("defaults: %+v", o)
	}
	for _, tc := range []struct {
		mutate func(*Options)
		want   string
	}{
		{func(o *Options) { o.Kills = MaxKills + 1 }, "kills 1001"},
		{func(o *Options) { o.Interval = time.Millisecond }, "time between kills"},
		{func(o *Options) { o.Duration = time.Second }, "--duration and --window do not apply"},
		{func(o *Options) { o.Gateways = []string{"127.0.0.1:8900"} }, "starts its own platform"},
		{func(o *Options) { o.PlatoCommand = nil }, "needs the plato binary"},
	} {
		o := Options{Scenario: ScenarioCrashloop, PlatoCommand: plato}
		o.setDefaults()
		tc.mutate(&o)
		if err := o.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("validate: %v, want an error containing %q", err, tc.want)
		}
	}
}

// TestOKAfter: the stage counts as answering again from the first ACK 0 of an uplink sent at or
// after the kill, not of one sent before it, nor a refusal.
func TestOKAfter(t *testing.T) {
	f := &clFleet{answers: []clAnswer{
		{sent: 10, acked: 20, code: protocol.CodeOK},
		{sent: 15, acked: 40, code: protocol.CodeOK}, // sent before the kill at 30
		{sent: 31, acked: 45, code: protocol.CodePipelineFailed},
		{sent: 33, acked: 60, code: protocol.CodeOK},
		{sent: 50, acked: 58, code: protocol.CodeOK},
	}}
	if at, ok := f.okAfter(30); !ok || at != 58 {
		t.Errorf("okAfter(30) = %d %v, want 58", at, ok)
	}
	if _, ok := f.okAfter(61); ok {
		t.Error("okAfter(61) found an answer")
	}
}
