package main

import (
	"testing"
	"time"
)

// migrateSummary is the part of `plato bench migrate`'s JSON line the test checks.
type migrateSummary struct {
	benchHeader
	Migrate *struct {
		Conditions struct {
			Devices      int     `json:"devices"`
			RedirectRate float64 `json:"redirect_rate"`
			PushRate     float64 `json:"push_rate"`
		} `json:"conditions"`
		CallMs     float64 `json:"call_ms"`
		MovedMs    float64 `json:"moved_ms"`
		Redirected int     `json:"redirected"`
		MoveP50Ms  float64 `json:"move_p50_ms"`
		MoveMaxMs  float64 `json:"move_max_ms"`
		Resumed    int     `json:"resumed"`
		NotMoved   int     `json:"not_moved"`
		Relogged   int     `json:"relogged"`
		Pushes     struct {
			Accepted, Lost, Duplicated int
		} `json:"pushes"`
	} `json:"migrate"`
}

// TestBenchMigrate runs `plato bench migrate` as the built binary, which starts its own platform
// (a state server and two gateways re-executed from the binary) and moves every device from one
// gateway to the other under at-least-once pushes. It asserts behaviour, never speed: every
// device was redirected and resumed on the other gateway, none logged in again, and every push
// accepted arrived once.
func TestBenchMigrate(t *testing.T) {
	var s migrateSummary
	run := runBenchScenario(t, 2*time.Minute, &s, "migrate", "--devices", "40", "--rate", "100", "--push-rate", "50", "--warmup", "500ms")
	f := s.Migrate
	if s.Scenario != "migrate" || s.Devices != 40 || s.Connected != 40 || f == nil {
		run.fatal()
	}
	if c := f.Conditions; c.Devices != 40 || c.RedirectRate != 100 || c.PushRate != 50 {
		run.fail("conditions %+v", c)
	}
	if f.Redirected != 40 || f.Resumed != 40 || f.NotMoved != 0 || f.Relogged != 0 || f.MovedMs < f.CallMs || f.MoveMaxMs < f.MoveP50Ms || f.MoveP50Ms <= 0 {
		run.fail("the move: %+v", f)
	}
	if p := f.Pushes; p.Accepted == 0 || p.Lost != 0 || p.Duplicated != 0 {
		run.fail("pushes %+v: want some accepted, none lost or duplicated", p)
	}
	if !s.loadAverageNoted() {
		run.fail("no load average")
	}
}
