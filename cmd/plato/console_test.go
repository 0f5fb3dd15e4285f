package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/platoim/plato/core/console"
	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/buildinfo"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
)

const consoleKey = "console-test-ops-key"

// consolePlatform is a fleet of processes for the ops console: a state server running the
// reference auth stage as a plugin process, two gateways and ipconf, each with its own admin
// address; NATS and the business server in this process.
type consolePlatform struct {
	cfg       string
	admin     map[string]string // node ID -> admin address
	ipconfURL string
	plugin    string // the auth plugin's binary
}

func startConsolePlatform(t *testing.T) *consolePlatform {
	t.Helper()
	plugin := platformtest.BuildPlugin(t, "plugins/auth")
	pipes := t.TempDir()
	yaml := fmt.Sprintf("version: 1\nstages:\n  - name: auth\n    plugin: %s\n    signals: [login, uplink]\n    timeout: 5s\n    config: {token_secret_env: PLATO_AUTH__TOKEN_SECRET, deny_dids: [nobody-here]}\n", plugin)
	if err := os.WriteFile(filepath.Join(pipes, "default.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	stAddr := freePort(t)
	cfg, _ := startShared(t, fmt.Sprintf("ops: {key: %q}\npipeline: {dir: %q}\nstate: {addr: %q}\n", consoleKey, pipes, stAddr))
	p := &consolePlatform{cfg: cfg, admin: map[string]string{}, plugin: plugin}
	start := func(id, role string, env ...string) *proc {
		admin := freePort(t)
		p.admin[id] = admin
		return startProcEnv(t, id, append(env, "PLATO_ADMIN__ADDR="+admin), role, "--config", cfg)
	}
	start("state-1", "state", "PLATO_STATE__ID=state-1").waitLine(reRunning)
	start("gw-1", "gateway", "PLATO_GATEWAY__ID=gw-1").waitLine(reGateway)
	start("gw-2", "gateway", "PLATO_GATEWAY__ID=gw-2").waitLine(reGateway)
	p.ipconfURL = start("ipconf", "ipconf").waitLine(reIPConf)
	return p
}

// consoleGet calls path on an admin address with auth ("" sends none) and decodes a 200 answer
// into out; it returns the status.
func consoleGet(t *testing.T, admin, path, auth string, out any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+admin+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, body)
		}
	}
	return resp.StatusCode
}

// authStage is the auth stage of the state server's default chain, nil when not listed.
func authStage(ps console.Pipelines) *console.StageFigures {
	for _, s := range ps.Servers {
		for _, c := range s.Chains {
			for i, st := range c.Stages {
				if s.Node == "state-1" && c.Pipeline == "default" && st.Name == "auth" {
					return &c.Stages[i]
				}
			}
		}
	}
	return nil
}

// TestOpsConsole runs the console against a fleet of processes: the JSON API through real
// sockets (refused without the ops key or with a wrong one; the fleet, apps, pipelines with a
// stage's latency after uplinks, and a plugin crash among the faults), `plato ops fleet`, then the
// page in headless Chromium (sdk/js/test/console.browser.mjs).
func TestOpsConsole(t *testing.T) {
	p := startConsolePlatform(t)
	gw1 := p.admin["gw-1"]
	bearer := "Bearer " + consoleKey

	for _, path := range []string{console.PathFleet, console.PathApps, console.PathPipelines, console.PathFaults, console.PathNode} {
		if code := consoleGet(t, gw1, path, "", nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s without a key: %d, want 401", path, code)
		}
		if code := consoleGet(t, gw1, path, "Bearer not-the-key", nil); code != http.StatusForbidden {
			t.Errorf("GET %s with a wrong key: %d, want 403", path, code)
		}
	}
	page := httpGet(t, "http://"+gw1+"/")
	if !strings.Contains(page, `src="/console/console.js"`) {
		t.Fatalf("GET / on the admin address: not the console page:\n%s", page)
	}

	// The fleet, from any admin address: every process, each with the binary's version.
	out, err := exec.Command(platoBinary(t), "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var bi buildinfo.Info
	if err := json.Unmarshal(out, &bi); err != nil || bi.GoVersion == "" {
		t.Fatalf("plato version --json: %v\n%s", err, out)
	}
	var fleet console.Fleet
	poll.Within(t, 20*time.Second, "the fleet to list ipconf, both gateways and the state server", func() bool {
		if consoleGet(t, p.admin["state-1"], console.PathFleet, bearer, &fleet) != http.StatusOK {
			return false
		}
		roles := map[string]int{}
		for _, n := range fleet.Nodes {
			roles[n.Role]++
		}
		return roles["gateway"] == 2 && roles["state"] == 1 && roles["ipconf"] == 1
	})
	for _, n := range fleet.Nodes {
		if n.Version != bi.Short() || n.AdminAddr == "" || n.StartedAt.IsZero() || n.UptimeSeconds < 0 {
			t.Errorf("fleet node %+v: want version %q, an admin address, a start time", n, bi.Short())
		}
		if want := p.admin[n.ID]; n.Role != "ipconf" && n.AdminAddr != want {
			t.Errorf("%s: admin address %s, want %s", n.ID, n.AdminAddr, want)
		}
		if (n.Role == "gateway") != (n.LoadScore != nil) {
			t.Errorf("%s: load score %v: gateways only", n.ID, n.LoadScore)
		}
	}

	// Devices send uplinks through the auth plugin.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var devices []*client.Client
	for _, did := range []string{"con-a", "con-b", "con-c", "con-d"} {
		var c *client.Client
		poll.Within(t, 20*time.Second, "device "+did+" to log in", func() bool {
			c, err = client.Dial(ctx, client.Config{IPConfURL: p.ipconfURL, AppID: "demo", DID: did, Credential: platformtest.Credential(t, "demo", did, did)})
			return err == nil
		})
		defer c.Close()
		devices = append(devices, c)
	}
	for i := range 10 {
		for _, c := range devices {
			if err := c.Send(ctx, []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
				t.Fatalf("uplink: %v", err)
			}
		}
	}
	var apps console.Apps
	poll.Within(t, 20*time.Second, "the demo app's connections and uplinks", func() bool {
		apps = console.Apps{}
		if consoleGet(t, gw1, console.PathApps, bearer, &apps) != http.StatusOK {
			return false
		}
		i := slices.IndexFunc(apps.Apps, func(a console.AppFigures) bool { return a.App == "demo" })
		return i >= 0 && apps.Apps[i].Connections == 4 && apps.Apps[i].UplinksPerSec > 0 && len(apps.Unreachable) == 0
	})
	var pipes console.Pipelines
	poll.Within(t, 20*time.Second, "the auth stage's latency", func() bool {
		pipes = console.Pipelines{}
		if consoleGet(t, gw1, console.PathPipelines, bearer, &pipes) != http.StatusOK {
			return false
		}
		st := authStage(pipes)
		return st != nil && st.P50Ms != nil && st.P99Ms != nil && st.Calls >= 40
	})
	st := authStage(pipes)
	// Its deny list makes it act on uplinks (without one it would skip them: ActsOn), and the
	// console says so.
	if !st.ActsOnDeclared || !slices.Equal(st.ActsOn, []string{"login", "uplink"}) || !slices.Equal(st.Signals, []string{"login", "uplink"}) {
		t.Errorf("auth stage signals %v, acts on %v (declared %v): want login and uplink, declared", st.Signals, st.ActsOn, st.ActsOnDeclared)
	}
	sum, err := os.ReadFile(p.plugin)
	if err != nil {
		t.Fatal(err)
	}
	if h := sha256.Sum256(sum); st.Plugin != p.plugin || st.SHA256 != hex.EncodeToString(h[:]) || st.Process != "running" || st.PID <= 0 || st.Breaker != "closed" || *st.P50Ms <= 0 || *st.P99Ms < *st.P50Ms {
		t.Fatalf("auth stage %+v (p50 %v p99 %v): want the plugin, its sha256, a running process, latencies", st, *st.P50Ms, *st.P99Ms)
	}
	if pipes.Servers[0].Apps["demo"] != "default" {
		t.Errorf("demo's pipeline: %q, want default", pipes.Servers[0].Apps["demo"])
	}

	// The plugin process dies: a fault, and its supervisor starts it again.
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var faults console.Faults
	poll.Within(t, 20*time.Second, "the plugin crash among the faults", func() bool {
		faults = console.Faults{}
		if consoleGet(t, gw1, console.PathFaults, bearer, &faults) != http.StatusOK {
			return false
		}
		return slices.ContainsFunc(faults.Faults, func(f console.Fault) bool {
			return f.Kind == "plugin_crash" && f.Stage == "auth" && f.App == "default" && strings.Contains(f.Node, "state-1")
		})
	})
	poll.Within(t, 30*time.Second, "the auth plugin to run again", func() bool {
		pipes = console.Pipelines{}
		if consoleGet(t, gw1, console.PathPipelines, bearer, &pipes) != http.StatusOK {
			return false
		}
		s := authStage(pipes)
		return s != nil && s.Process == "running" && s.PID != st.PID && s.Restarts >= 1
	})

	// plato ops fleet: from the registry, with the key; refused without one.
	cmd := exec.Command(platoBinary(t), "ops", "fleet", "--config", p.cfg, "--key", consoleKey)
	cmd.Env = append(os.Environ(), "PLATO_OPS__KEY=")
	out, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("plato ops fleet: %v\n%s", err, out)
	}
	for _, id := range []string{"gw-1", "gw-2", "state-1", "ipconf-"} {
		if !strings.Contains(string(out), id) {
			t.Errorf("plato ops fleet does not list %s:\n%s", id, out)
		}
	}
	cmd = exec.Command(platoBinary(t), "ops", "fleet", "--admin", gw1, "--key", "wrong")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "wrong ops key") {
		t.Errorf("plato ops fleet with a wrong key: %v\n%s", err, out)
	}

	// The page, in headless Chromium.
	dir := jsSDK(t)
	browser := chromiumPath()
	if browser == "" {
		t.Fatal("no Chromium on PATH after scripts/install-js-deps: apt-get install chromium")
	}
	runNodeTests(t, dir, []string{"PLATO_CONSOLE_URL=http://" + gw1 + "/", "PLATO_OPS_KEY=" + consoleKey, "PLATO_CHROMIUM=" + browser,
		"PLATO_CONSOLE_GATEWAYS=gw-1,gw-2"}, 1, "test/console.browser.mjs")
}

// checkUpConsole checks the console of a `plato up`: its gateway, state server and ipconf share
// one admin address, which answers for them once.
func checkUpConsole(t *testing.T, admin, bearer string) {
	t.Helper()
	var fleet console.Fleet
	poll.Within(t, 20*time.Second, "plato up's three roles in the fleet", func() bool {
		fleet = console.Fleet{}
		return consoleGet(t, admin, console.PathFleet, bearer, &fleet) == http.StatusOK && len(fleet.Nodes) == 3
	})
	for _, n := range fleet.Nodes {
		if n.AdminAddr != admin {
			t.Errorf("%s: admin address %s, want %s", n.ID, n.AdminAddr, admin)
		}
	}
	var pipes console.Pipelines
	if code := consoleGet(t, admin, console.PathPipelines, bearer, &pipes); code != http.StatusOK || len(pipes.Servers) != 1 || len(pipes.Servers[0].Chains) != 0 || len(pipes.Unreachable) != 0 {
		t.Errorf("plato up's pipelines: %d %+v, want its one state server, without pipeline.dir", code, pipes)
	}
	var apps console.Apps
	if code := consoleGet(t, admin, console.PathApps, bearer, &apps); code != http.StatusOK || len(apps.Apps) != 2 || len(apps.Unreachable) != 0 {
		t.Errorf("plato up's apps: %d %+v, want demo and bench once each", code, apps)
	}
}
