package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/platoim/plato/core/platform/platformtest"
)

// TestBenchConnectOverSeveralGateways runs `plato bench connect` as docs/performance.md's 50,000
// device figure does, small: the devices spread over several gateway processes (--gateway, one
// endpoint each) from worker processes with source addresses of their own, logins paced
// (--connect-rate) with tokens minted locally, heartbeats flowing; the memory figure is that of
// the gateway processes alone, each found by its port.
func TestBenchConnectOverSeveralGateways(t *testing.T) {
	cfg, _ := startShared(t, "")
	st := startProcEnv(t, "state", []string{"PLATO_STATE__ADDR=" + freePort(t)}, "state", "--config", cfg)
	st.waitLine(reRunning)
	var gws []string
	for _, id := range []string{"gw-a", "gw-b"} {
		gw := startProcEnv(t, id, []string{"PLATO_GATEWAY__ID=" + id, "PLATO_DATA_DIR=" + t.TempDir(),
			"PLATO_ADMIN__ADDR=127.0.0.1:0", "PLATO_GATEWAY__WS_ADDR=127.0.0.1:0"}, "gateway", "--config", cfg)
		gws = append(gws, gw.waitLine(reGateway))
	}
	cmd := exec.Command(platoBinary(t), "bench", "connect", "--gateway", gws[0]+","+gws[1], "--devices", "20",
		"--workers", "2", "--duration", "1s", "--heartbeat", "200ms", "--connect-rate", "100",
		"--token-secret", platformtest.Secret, "--credential-secret", platformtest.JWTSecret)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("plato bench: %v\n%s", err, stderr.String())
	}
	var s struct {
		Devices, Connected, Workers int
		Heartbeats                  struct{ Sent, Acked int }
		Refused                     string `json:"bytes_per_conn_refused"`
		Servers                     []struct {
			Endpoint string
			PIDs     []int
			Devices  int
		}
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &s); err != nil {
		t.Fatalf("stdout is not one JSON line: %v\n%s", err, stdout.String())
	}
	if s.Devices != 20 || s.Connected != 20 || s.Workers != 2 || s.Heartbeats.Sent == 0 || s.Heartbeats.Acked == 0 || s.Refused != "" {
		t.Errorf("summary %+v\n%s", s, stdout.String())
	}
	if len(s.Servers) != 2 {
		t.Fatalf("servers %+v: want one per gateway process\n%s", s.Servers, stdout.String())
	}
	for i, sv := range s.Servers {
		if sv.Endpoint != gws[i] || len(sv.PIDs) != 1 || sv.Devices != 10 {
			t.Errorf("server %d: %+v, want %s with its own process and 10 devices", i, sv, gws[i])
		}
	}
	if s.Servers[0].PIDs[0] == s.Servers[1].PIDs[0] {
		t.Errorf("both gateways measured as process %d", s.Servers[0].PIDs[0])
	}
}
