package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchHeader is the part of every `plato bench` JSON line that the scenario tests check.
type benchHeader struct {
	Scenario    string
	Devices     int
	Connected   int
	LoadAverage *struct{ Before, After string } `json:"load_average"`
	Notes       []string
}

// loadAverageNoted says whether the run printed the load average, as every figure must.
func (h benchHeader) loadAverageNoted() bool {
	return h.LoadAverage != nil && h.LoadAverage.Before != "" && strings.Contains(strings.Join(h.Notes, "\n"), "load average")
}

// benchScenario is one run of `plato bench <scenario>` as the built binary.
type benchScenario struct {
	t      *testing.T
	stdout string
}

// runBenchScenario runs `plato bench args...` within limit and decodes its stdout, one JSON line,
// into summary. A run that fails or prints anything else ends the test.
func runBenchScenario(t *testing.T, limit time.Duration, summary any, args ...string) *benchScenario {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, platoBinary(t), append([]string{"bench"}, args...)...)
	// A bench past its limit is stopped with SIGQUIT, so that its goroutines, printed on stderr,
	// say where it was stuck; SIGKILL follows should that not end it.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("plato bench %s: %v\n%s", args[0], err, stderr.String())
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), summary); err != nil {
		t.Fatalf("stdout is not one JSON line: %v\n%s", err, stdout.String())
	}
	return &benchScenario{t: t, stdout: stdout.String()}
}

// fatal ends the test, showing the summary line.
func (r *benchScenario) fatal() {
	r.t.Helper()
	r.t.Fatalf("summary:\n%s", r.stdout)
}

// fail reports a failed check, with the summary line.
func (r *benchScenario) fail(format string, a ...any) {
	r.t.Helper()
	r.t.Errorf(format+"\n%s", append(a, r.stdout)...)
}
