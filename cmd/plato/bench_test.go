package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
)

func TestBenchFlags(t *testing.T) {
	t.Setenv(platform.TokenSecretEnv, "secret-from-the-environment")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bench", "--help"}, 0, "broadcast"},
		{[]string{"bench"}, 1, "give a scenario"},
		{[]string{"bench", "--devices", "300000", "uplink"}, 1, "devices 300000: must be 1 to 200000"},
		{[]string{"bench", "uplink", "--duration", "11m"}, 1, "at most 10m0s"},
		{[]string{"bench", "uplink", "--rate", "2000000"}, 1, "rate 2e+06"},
		{[]string{"bench", "uplink", "--rate", "10", "--window", "2"}, 1, "not both"},
		{[]string{"bench", "uplink", "--rate", "10", "--baseline-rate", "20"}, 1, "give it with --baseline and --rate"},
		{[]string{"bench", "uplink", "--window", "1", "--baseline", "--baseline-rate", "20"}, 1, "baseline rate 20"},
		{[]string{"bench", "connect", "--ipconf", "http://10.0.0.1:8080"}, 1, "loopback"},
		{[]string{"bench", "connect", "--gateway-pid", "x"}, 1, "not a pid"},
		{[]string{"bench", "connect", "extra"}, 1, "give one scenario"},
		{[]string{"bench", "--help"}, 0, "failover"},
		{[]string{"bench", "failover", "--duration", "5s"}, 1, "--warmup, --after-kill and --after-restart"},
		{[]string{"bench", "failover", "--window", "2"}, 1, "--window does not apply"},
		{[]string{"bench", "failover", "--baseline"}, 1, "--baseline"},
		{[]string{"bench", "failover", "--after-kill", "10ms"}, 1, "after-kill 10ms"},
		{[]string{"bench", "failover", "--app", "Not Valid"}, 1, "app ID"},
		{[]string{"bench", "--help"}, 0, "overload"},
		{[]string{"bench", "overload", "--factor", "0"}, 1, "overload factor 0"},
		{[]string{"bench", "overload", "--factor", "x"}, 1, "not a number"},
		{[]string{"bench", "overload", "--rate", "10"}, 1, "derived"},
		{[]string{"bench", "overload", "--business-rate", "100"}, 1, "give it with --business"},
		{[]string{"bench", "uplink", "--business", "http://127.0.0.1:1/plato"}, 1, "PLATO_APPS__BENCH__WEBHOOK_SECRET"},
		{[]string{"bench", "uplink", "--business", "http://127.0.0.1:1/plato", "--webhook-secret", "short"}, 1, "at least 16 bytes"},
		{[]string{"bench", "uplink", "--business", "http://10.0.0.1:1/plato", "--webhook-secret", "a-webhook-secret-of-16"}, 1, "loopback"},
		{[]string{"bench", "--help"}, 0, "slow-consumers"},
		{[]string{"bench", "slow-consumers", "--stalled", "100%"}, 1, "--stalled \"100%\""},
		{[]string{"bench", "slow-consumers", "--stalled", "x"}, 1, "--stalled \"x\""},
		{[]string{"bench", "slow-consumers", "--devices", "10", "--stalled", "10"}, 1, "at least one left healthy"},
		{[]string{"bench", "slow-consumers", "--stalled-rate", "5000"}, 1, "stalled rate 5000"},
		{[]string{"bench", "slow-consumers", "--size", "10"}, 1, "size 10"},
		{[]string{"bench", "slow-consumers", "--send-buffer", "100"}, 1, "send buffer 100"},
		{[]string{"bench", "slow-consumers", "--window", "2"}, 1, "--window does not apply"},
		{[]string{"bench", "slow-consumers", "--baseline"}, 1, "--baseline"},
		{[]string{"bench", "downlink", "--batch", "1001"}, 1, "batch 1001: must be 0 to 1000"},
		{[]string{"bench", "uplink", "--batch", "8"}, 1, "--batch is for the downlink scenario"},
		{[]string{"bench", "--help"}, 0, "apps-live"},
		{[]string{"bench", "apps-live", "--changes", "501"}, 1, "changes 501: must be 1 to 500"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.want) {
			t.Errorf("plato %v: exit %d, want %d with %q; output:\n%s%s", tc.args, code, tc.code, tc.want, out.String(), errb.String())
		}
		if strings.Contains(out.String()+errb.String(), "secret-from-the-environment") {
			t.Errorf("plato %v printed the token secret", tc.args)
		}
	}
}

// TestBenchAgainstUp runs the built binary the way docs/performance.md does: `plato up` in one
// process, `plato bench` with two worker processes (re-executing itself with --worker) in others.
// The bench serves the app's uplinks itself (--business), as the uplink runs there do: the demo
// business server answers "busy" when a loaded machine slows it down.
func TestBenchAgainstUp(t *testing.T) {
	sink := freePort(t)
	cfg := writeConfig(t, embeddedNATS, `state: {addr: "127.0.0.1:0"}
demo: {enabled: true, addr: "127.0.0.1:0", login_addr: ""}
`+appsYAML("127.0.0.1:0", sink))
	up := startProc(t, "up", "up", "--config", cfg)
	stateAddr := up.waitLine(regexp.MustCompile(`state\s+(\S+)`))
	up.waitLine(reGateway)
	ipconfURL := up.waitLine(reIPConf)
	poll.Within(t, 20*time.Second, "ipconf to hand out a gateway", func() bool {
		l, err := client.FetchEndpoints(context.Background(), nil, ipconfURL, "bench", "probe", platformtest.Credential(t, "bench", "probe", "probe"))
		return err == nil && len(l.Endpoints) > 0
	})
	report := filepath.Join(t.TempDir(), "bench.html")
	cmd := exec.Command(platoBinary(t), "bench", "uplink", "--ipconf", ipconfURL, "--state", stateAddr,
		"--devices", "8", "--workers", "2", "--duration", "1s", "--window", "2", "--report", report, "--business", sink,
		"--credential-secret", platformtest.JWTSecret)
	cmd.Env = append(os.Environ(), platform.TokenSecretEnv+"="+platformtest.Secret)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("plato bench: %v\n%s", err, stderr.String())
	}
	var s struct {
		Devices, Connected, Workers            int
		Sent, Acked, Lost, Duplicated, Refused uint64
		BytesPerConn                           float64                    `json:"bytes_per_conn"`
		ParentCPU                              float64                    `json:"bench_parent_cpu_cores"`
		Latency                                struct{ P50, P99 float64 } `json:"latency_us"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &s); err != nil {
		t.Fatalf("stdout is not one JSON line: %v\n%s", err, stdout.String())
	}
	// The business server answering every uplink runs in the bench's parent process, apart from
	// the device workers: its cores are reported on their own.
	if s.ParentCPU <= 0 || !strings.Contains(stdout.String(), "its CPU is in bench_parent_cpu_cores") {
		t.Errorf("bench_parent_cpu_cores %v, or the business server's note does not point to it:\n%s", s.ParentCPU, stdout.String())
	}
	if s.Workers != 2 || s.Connected != 8 || s.Acked == 0 || s.Acked != s.Sent || s.Lost != 0 || s.Duplicated != 0 || s.Refused != 0 {
		t.Errorf("summary %+v\n%s", s, stdout.String())
	}
	if s.Latency.P50 <= 0 || s.Latency.P99 < s.Latency.P50 {
		t.Errorf("latency %+v", s.Latency)
	}
	// The gateway is another process here: its RSS was found by its listening port.
	if !strings.Contains(stdout.String(), "resident set of process(es)") {
		t.Errorf("the gateway process was not found for RSS:\n%s", stdout.String())
	}
	page, err := os.ReadFile(report)
	if err != nil || !bytes.Contains(page, []byte("<svg")) {
		t.Errorf("report: %v", err)
	}
	up.interrupt()
}

// TestBenchDownlinkOverHTTP runs `plato bench downlink --state-http` against `plato up`, as
// docs/performance.md does: the business pushes through the state server's HTTP API.
func TestBenchDownlinkOverHTTP(t *testing.T) {
	cfg := writeConfig(t, embeddedNATS, `state: {addr: "127.0.0.1:0"}
demo: {enabled: true, addr: "127.0.0.1:0", login_addr: ""}
`+appsYAML("127.0.0.1:0", "127.0.0.1:0"))
	up := startProc(t, "up", "up", "--config", cfg)
	httpAddr := strings.TrimPrefix(up.waitLine(regexp.MustCompile(`http api\s+(\S+)`)), "http://")
	up.waitLine(reGateway)
	ipconfURL := up.waitLine(reIPConf)
	poll.Within(t, 20*time.Second, "ipconf to hand out a gateway", func() bool {
		l, err := client.FetchEndpoints(context.Background(), nil, ipconfURL, "bench", "probe", platformtest.Credential(t, "bench", "probe", "probe"))
		return err == nil && len(l.Endpoints) > 0
	})
	// The Kitex address points at nothing: what arrives went over HTTP.
	cmd := exec.Command(platoBinary(t), "bench", "downlink", "--ipconf", ipconfURL, "--state", "127.0.0.1:1", "--state-http", httpAddr,
		"--app-key", platformtest.KeyOf("bench"), "--devices", "8", "--workers", "1", "--duration", "1s", "--credential-secret", platformtest.JWTSecret)
	cmd.Env = append(os.Environ(), platform.TokenSecretEnv+"="+platformtest.Secret)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("plato bench: %v\n%s", err, stderr.String())
	}
	var s struct {
		Connected                     int
		Sent, Acked, Lost, Duplicated uint64
		Notes                         []string
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &s); err != nil {
		t.Fatalf("stdout is not one JSON line: %v\n%s", err, stdout.String())
	}
	if s.Connected != 8 || s.Acked == 0 || s.Acked != s.Sent || s.Lost != 0 || s.Duplicated != 0 {
		t.Errorf("summary %+v\n%s", s, stdout.String())
	}
	if !strings.Contains(strings.Join(s.Notes, "\n"), "POST /v1/apps/bench/push") {
		t.Errorf("the notes do not say the pushes went over HTTP: %q", s.Notes)
	}
	up.interrupt()
}

// TestBenchDownlinkBatch runs `plato bench downlink --batch N --baseline` as docs/performance.md
// does, against `plato up`: every push goes through PushBatch and arrives.
func TestBenchDownlinkBatch(t *testing.T) {
	cfg := writeConfig(t, embeddedNATS, `state: {addr: "127.0.0.1:0"}
admin: {addr: "127.0.0.1:0"}
demo: {enabled: true, addr: "127.0.0.1:0", login_addr: ""}
`+appsYAML("127.0.0.1:0", "127.0.0.1:1"))
	up := startProc(t, "up", "up", "--config", cfg)
	stateAddr := up.waitLine(regexp.MustCompile(`state\s+(\S+)`))
	admin := up.waitLine(regexp.MustCompile(`admin\s+(http://\S+)`))
	up.waitLine(reGateway)
	ipconfURL := up.waitLine(reIPConf)
	poll.Within(t, 20*time.Second, "ipconf to hand out a gateway", func() bool {
		l, err := client.FetchEndpoints(context.Background(), nil, ipconfURL, "bench", "probe", platformtest.Credential(t, "bench", "probe", "probe"))
		return err == nil && len(l.Endpoints) > 0
	})
	cmd := exec.Command(platoBinary(t), "bench", "downlink", "--ipconf", ipconfURL, "--state", stateAddr,
		"--devices", "20", "--duration", "1s", "--window", "2", "--batch", "8", "--baseline",
		"--credential-secret", platformtest.JWTSecret, "--app-key", platformtest.KeyOf("bench"))
	cmd.Env = append(os.Environ(), platform.TokenSecretEnv+"="+platformtest.Secret)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("plato bench: %v\n%s", err, stderr.String())
	}
	var s struct {
		Connected                              int
		Sent, Acked, Lost, Duplicated, Refused uint64
		Baseline                               *struct{ Acked uint64 }
		LoadAverage                            struct{ Before, After string } `json:"load_average"`
		PushBatchCalls                         uint64                         `json:"push_batch_calls"`
		PushesPerCall                          float64                        `json:"pushes_per_call"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &s); err != nil {
		t.Fatalf("stdout is not one JSON line: %v\n%s", err, stdout.String())
	}
	if s.Connected != 20 || s.Acked == 0 || s.Acked != s.Sent || s.Lost != 0 || s.Duplicated != 0 || s.Refused != 0 || s.Baseline == nil || s.Baseline.Acked == 0 || s.LoadAverage.Before == "" {
		t.Errorf("summary %+v\n%s", s, stdout.String())
	}
	if s.PushBatchCalls == 0 || s.PushesPerCall < 1 || s.PushesPerCall > 8 {
		t.Errorf("%d PushBatch calls, %v pushes per call: want some, 1 to 8 each", s.PushBatchCalls, s.PushesPerCall)
	}
	if !strings.Contains(stdout.String(), "through PushBatch: up to 8 pushes per call") {
		t.Errorf("the notes do not say the pushes were batched:\n%s", stdout.String())
	}
	// The pushes really went as PushBatch calls, none as Push.
	metrics := httpGet(t, admin+"/metrics")
	if !regexp.MustCompile(`plato_state_api_calls_total\{[^}]*method="pushbatch"[^}]*result="ok"[^}]*\} [1-9]`).MatchString(metrics) {
		t.Errorf("no PushBatch call counted:\n%s", grepLines(metrics, "plato_state_api_calls_total"))
	}
	if regexp.MustCompile(`plato_state_api_calls_total\{[^}]*method="push"[^}]*\} [1-9]`).MatchString(metrics) {
		t.Errorf("Push calls counted with --batch:\n%s", grepLines(metrics, "plato_state_api_calls_total"))
	}
	up.interrupt()
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
