package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
)

// TestBenchConnectOverWebSocket runs `plato bench connect --transport ws` as docs/performance.md
// does, against `plato up`: the devices get their WebSocket URLs from ipconf and log in over them,
// and the gateway's RSS per connection is measured.
func TestBenchConnectOverWebSocket(t *testing.T) {
	cfg := writeConfig(t, embeddedNATS, `state: {addr: "127.0.0.1:0"}
demo: {enabled: true, addr: "127.0.0.1:0", login_addr: ""}
`+appsYAML("127.0.0.1:0", "127.0.0.1:0"))
	up := startProc(t, "up", "up", "--config", cfg)
	up.waitLine(reGateway)
	ipconfURL := up.waitLine(reIPConf)
	poll.Within(t, 20*time.Second, "ipconf to hand out a gateway", func() bool {
		l, err := client.FetchEndpoints(context.Background(), nil, ipconfURL, "bench", "probe", platformtest.Credential(t, "bench", "probe", "probe"))
		return err == nil && len(l.Endpoints) > 0
	})
	cmd := exec.Command(platoBinary(t), "bench", "connect", "--transport", "ws", "--ipconf", ipconfURL,
		"--devices", "20", "--duration", "1s", "--credential-secret", platformtest.JWTSecret)
	cmd.Env = append(os.Environ(), platform.TokenSecretEnv+"="+platformtest.Secret)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("plato bench: %v\n%s", err, stderr.String())
	}
	var s struct {
		Devices, Connected int
		Failures           map[string]int
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &s); err != nil {
		t.Fatalf("stdout is not one JSON line: %v\n%s", err, stdout.String())
	}
	if s.Devices != 20 || s.Connected != 20 {
		t.Errorf("summary %+v\n%s", s, stdout.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "over WebSocket") || !strings.Contains(out, "ws://127.0.0.1:") {
		t.Errorf("the summary does not say the devices used WebSocket:\n%s", out)
	}
	if !strings.Contains(out, "resident set of process(es)") {
		t.Errorf("the gateway process was not found for RSS:\n%s", out)
	}
	up.interrupt()
}
