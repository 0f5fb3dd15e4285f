package main

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform/platformtest"
)

// crashloopSummary is the part of `plato bench crashloop`'s JSON line the test checks.
type crashloopSummary struct {
	benchHeader
	Acked     uint64
	CrashLoop *struct {
		Kills, Recovered int
		RelaunchMs       map[string]float64 `json:"relaunch"`
		PolicyAnswers    uint64             `json:"policy_answers"`
		PolicyLatency    map[string]float64 `json:"policy_answer_latency"`
		ZombiesLeft      int                `json:"zombies_left"`
		Conditions       struct {
			StageTimeoutMs float64 `json:"stage_timeout_ms"`
		}
		Breaker struct {
			MaxState           int     `json:"max_state"`
			DegradedAfterKills int     `json:"degraded_after_kills"`
			DegradedCode       int     `json:"degraded_code"`
			ClosedAfterMs      float64 `json:"closed_after_ms"`
			CrashesTotal       float64 `json:"crashes_total"`
			RestartsTotal      float64 `json:"restarts_total"`
			CrashLines         int     `json:"crash_lines"`
			LoopLines          int     `json:"loop_lines"`
			WithStderr         int     `json:"with_stderr"`
		}
	} `json:"crashloop"`
}

// TestBenchCrashloop runs `plato bench crashloop` as the built binary against the reference auth
// plugin, built as `make plugins` would: 6 kills, the fifth opening the crash-loop breaker. It
// asserts behaviour, and speed only as far as the policy answers not waiting out the stage's
// timeout: the stage came back after every kill, the uplinks caught in the crashes were answered
// 1306 by the policy, the breaker opened (metric, /healthz degraded with 200, one error line) and
// closed again, every crash was counted and logged with the plugin's stderr, and no killed
// process was left a zombie.
func TestBenchCrashloop(t *testing.T) {
	const kills = 6
	plugin := filepath.Join(t.TempDir(), "auth")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", plugin, "./plugins/auth")
	build.Dir = platformtest.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the auth plugin: %v\n%s", err, out)
	}
	var s crashloopSummary
	run := runBenchScenario(t, 2*time.Minute, &s, "crashloop", "--plugin", plugin, "--kills", "6", "--interval", "500ms",
		"--devices", "5", "--rate", "200", "--warmup", "500ms", "--drain", "5s")
	cl := s.CrashLoop
	if s.Scenario != "crashloop" || s.Connected != 5 || s.Acked == 0 || cl == nil {
		run.fatal()
	}
	if cl.Kills != kills || cl.Recovered != kills {
		run.fail("kills %d, recovered after %d", cl.Kills, cl.Recovered)
	}
	if r := cl.RelaunchMs; r["p50_ms"] <= 0 || r["p50_ms"] > r["p99_ms"] || r["p99_ms"] > r["max_ms"] {
		run.fail("relaunch %v", r)
	}
	if cl.PolicyAnswers == 0 || cl.PolicyLatency["max_ms"] >= cl.Conditions.StageTimeoutMs {
		run.fail("%d policy answers, slowest %v ms: an uplink caught in a crash waited out the stage's timeout (%v ms)",
			cl.PolicyAnswers, cl.PolicyLatency["max_ms"], cl.Conditions.StageTimeoutMs)
	}
	if cl.ZombiesLeft != 0 {
		run.fail("%d zombies left", cl.ZombiesLeft)
	}
	b := cl.Breaker
	if b.MaxState < 1 || b.DegradedAfterKills != 5 || b.DegradedCode != 200 || b.ClosedAfterMs < 0 {
		run.fail("breaker %+v: it should open at the fifth crash (metric, /healthz 200 degraded) and close again", b)
	}
	if b.CrashesTotal != kills || b.RestartsTotal != kills {
		run.fail("crashes_total %v, restarts_total %v, want %d", b.CrashesTotal, b.RestartsTotal, kills)
	}
	if b.LoopLines != 1 || b.CrashLines != kills-1 || b.WithStderr != kills {
		run.fail("log lines: %d crashes, %d crash loop, %d with the plugin's stderr", b.CrashLines, b.LoopLines, b.WithStderr)
	}
	if !s.loadAverageNoted() {
		run.fail("no load average")
	}
}
