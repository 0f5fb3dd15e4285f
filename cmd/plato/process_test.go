package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/examples/demo"
	"github.com/platoim/plato/internal/natsd"
	"github.com/platoim/plato/internal/testkit"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// platoBinary builds cmd/plato once per test run.
func platoBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "plato-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "plato")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is a running plato process whose stdout lines are collected.
type proc struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	more  chan struct{}
	exit  chan error
	errb  *strings.Builder
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, name, nil, args...)
}

// startProcEnv is startProc with more environment: processes of one config that differ in a key
// (two state servers: PLATO_STATE__ID=...).
func startProcEnv(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(platoBinary(t), args...)
	// Several processes of one test run side by side: each gets its own admin, WebSocket and HTTP
	// API port.
	cmd.Env = append(append(os.Environ(), "PLATO_LOG__LEVEL=warn", "PLATO_ADMIN__ADDR=127.0.0.1:0", "PLATO_GATEWAY__WS_ADDR=127.0.0.1:0", "PLATO_STATE__HTTP_ADDR=127.0.0.1:0"), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, cmd: cmd, more: make(chan struct{}, 1), exit: make(chan error, 1), errb: &strings.Builder{}}
	cmd.Stderr = &lockedWriter{b: p.errb, mu: &p.mu}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
		}
		p.exit <- cmd.Wait()
		close(p.more)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	return p
}

type lockedWriter struct {
	b  *strings.Builder
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// waitLine returns the first submatch of re in stdout, waiting up to 60s.
func (p *proc) waitLine(re *regexp.Regexp) string {
	p.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if m := re.FindStringSubmatch(l); m != nil {
				p.mu.Unlock()
				return m[len(m)-1]
			}
		}
		p.mu.Unlock()
		select {
		case _, ok := <-p.more:
			if !ok {
				p.t.Fatalf("%s exited before printing %s; stderr:\n%s", p.name, re, p.stderr())
			}
		case <-deadline:
			p.t.Fatalf("%s did not print %s; stderr:\n%s", p.name, re, p.stderr())
		}
	}
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errb.String()
}

// interrupt sends SIGINT and checks a clean exit.
func (p *proc) interrupt() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-p.exit:
		if err != nil {
			p.t.Errorf("%s exited with %v after SIGINT; stderr:\n%s", p.name, err, p.stderr())
		}
	case <-time.After(30 * time.Second):
		p.t.Errorf("%s did not stop within 30s of SIGINT", p.name)
		_ = p.cmd.Process.Kill()
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}

// freePort is a loopback address nothing listens on, for a process started later.
func freePort(t *testing.T) string { return testkit.FreeAddr(t) }

var (
	reIPConf  = regexp.MustCompile(`ipconf\s+(http://\S+)`)
	reGateway = regexp.MustCompile(`gateway\s+(\S+)\s+\(device`)
	reRunning = regexp.MustCompile(`(Plato is running)`)
)

func chatBetween(t *testing.T, ipconfURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var alice, bob *client.Client
	// Gateways appear in ipconf after their first load report.
	poll.Within(t, 20*time.Second, "ipconf to hand out a gateway", func() bool {
		_, err := client.FetchEndpoints(ctx, nil, ipconfURL, "demo", "alice", platformtest.Credential(t, "demo", "alice", "alice"))
		return err == nil
	})
	var err error
	if alice, err = client.Dial(ctx, client.Config{IPConfURL: ipconfURL, AppID: "demo", DID: "alice", Credential: platformtest.Credential(t, "demo", "alice", "alice")}); err != nil {
		t.Fatalf("alice: %v", err)
	}
	defer alice.Close()
	if bob, err = client.Dial(ctx, client.Config{IPConfURL: ipconfURL, AppID: "demo", DID: "bob", Credential: platformtest.Credential(t, "demo", "bob", "bob")}); err != nil {
		t.Fatalf("bob: %v", err)
	}
	defer bob.Close()
	send := func(from *client.Client, to *client.Client, toDID, fromDID, text string) {
		payload, _ := json.Marshal(demo.Message{To: toDID, Text: text})
		if err := from.Send(ctx, payload); err != nil {
			t.Fatalf("%s sending: %v", fromDID, err)
		}
		select {
		case m := <-to.Messages():
			var d demo.Delivered
			if err := json.Unmarshal(m.Payload, &d); err != nil || d.From != fromDID || d.Text != text {
				t.Fatalf("%s got %q, want %s: %s", toDID, m.Payload, fromDID, text)
			}
		case <-ctx.Done():
			t.Fatalf("%s got nothing from %s", toDID, fromDID)
		}
	}
	send(alice, bob, "bob", "alice", "hello bob")
	send(bob, alice, "alice", "bob", "hi alice")
}

// appsYAML declares the test apps demo and bench, their business servers at demoAddr and
// benchAddr, with platformtest's keys and credential secret.
func appsYAML(demoAddr, benchAddr string) string {
	return fmt.Sprintf(`apps:
  demo: {business: %q, keys: {dev: platformtest-key-demo}, auth: {jwt: {secrets: {dev: %q}}}}
  bench:
    business: %q
    keys: {dev: platformtest-key-bench}
    auth: {jwt: {secrets: {dev: %q}}}
    limits: {device_uplinks_per_sec: 1000000, device_uplink_burst: 1000000, device_bytes_per_sec: 1000000000}
`, demoAddr, platformtest.JWTSecret, benchAddr, platformtest.JWTSecret)
}

// embeddedNATS is the nats setting of a process that runs its own NATS, on a free port.
const embeddedNATS = "{embedded: {port: 0}}"

// writeConfig writes a plato.yaml for a test and returns its path: data in a fresh directory, NATS
// as nats says, platformtest's token secret, ipconf and the gateway on free loopback ports (the
// gateway reporting its load every 200ms), then the test's own lines, rest.
func writeConfig(t *testing.T, nats, rest string) string {
	t.Helper()
	body := fmt.Sprintf(`data_dir: %s
nats: %s
auth: {token_secret: %q}
ipconf: {addr: "127.0.0.1:0"}
gateway: {addr: "127.0.0.1:0", report_interval: 200ms}
%s`, t.TempDir(), nats, platformtest.Secret, rest)
	path := filepath.Join(t.TempDir(), "plato.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRolesAsSeparateProcesses(t *testing.T) {
	ctx := context.Background()
	ns, err := natsd.Start(ctx, natsd.Config{Host: "127.0.0.1", Port: 0, StoreDir: t.TempDir()}, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	stateAddr, demoAddr := freePort(t), freePort(t)
	cfg := writeConfig(t, fmt.Sprintf("{url: %q}", ns.ClientURL()), fmt.Sprintf(`registry: {ttl: 3s}
state: {addr: %q}
demo: {addr: %q, login_addr: ""}
%s`, stateAddr, demoAddr, appsYAML(demoAddr, demoAddr)))

	st := startProc(t, "state", "state", "--config", cfg)
	st.waitLine(reRunning)
	dm := startProc(t, "demo", "demo", "--config", cfg)
	dm.waitLine(reRunning)
	gw := startProc(t, "gateway", "gateway", "--config", cfg)
	gw.waitLine(reGateway)
	ip := startProc(t, "ipconf", "ipconf", "--config", cfg)
	chatBetween(t, ip.waitLine(reIPConf))

	for _, p := range []*proc{ip, gw, dm, st} {
		p.interrupt()
	}
}

func TestUp(t *testing.T) {
	cfg := writeConfig(t, embeddedNATS, `state: {addr: "127.0.0.1:0"}
demo: {enabled: true, addr: "127.0.0.1:0", login_addr: "127.0.0.1:0"}
`+appsYAML("127.0.0.1:0", "127.0.0.1:0"))
	up := startProcEnv(t, "up", []string{"PLATO_OPS__KEY=up-ops-key"}, "up", "--config", cfg)
	for _, re := range []string{`nats\s+(nats://\S+)`, `state\s+(\S+)`, `demo\s+(\S+)`} {
		up.waitLine(regexp.MustCompile(re))
	}
	up.waitLine(reGateway)
	ipconfURL := up.waitLine(reIPConf)
	chatBetween(t, ipconfURL)
	// The web chat page is served next to the demo's login endpoint (TestWebChat drives it).
	if page := httpGet(t, up.waitLine(regexp.MustCompile(`web chat\s+(http://\S+)`))); !strings.Contains(page, `src="chat.js"`) {
		t.Errorf("the web chat URL serves no chat page:\n%s", page)
	}

	// The state server's HTTP API is listed with the other addresses, and answers.
	if doc := httpGet(t, up.waitLine(regexp.MustCompile(`http api\s+(http://\S+)`))+"/openapi.json"); !strings.Contains(doc, `"/v1/apps/{app}/push"`) {
		t.Errorf("the HTTP API serves no OpenAPI document:\n%.300s", doc)
	}

	// One admin server for the whole process, with every role's metrics.
	adminURL := up.waitLine(regexp.MustCompile(`admin\s+(http://\S+)`))
	metrics := httpGet(t, adminURL+"/metrics")
	for _, name := range []string{"plato_gateway_connections ", "plato_state_logins_total ", "plato_ipconf_gateways ", "plato_nats_connected 1"} {
		if !strings.Contains(metrics, "\n"+name) {
			t.Errorf("/metrics has no %q line", name)
		}
	}
	// The heap floor (runtime.gc_heap_floor): a process holding this little gets a GOGC over 100
	// once a collection has run, unless GOGC is set in the environment.
	if os.Getenv("GOGC") == "" {
		gogc := regexp.MustCompile(`\ngo_gc_gogc_percent (\d+)`)
		poll.Until(t, "GOGC raised by the heap floor", func() bool {
			m := gogc.FindStringSubmatch(httpGet(t, adminURL+"/metrics"))
			if m == nil {
				return false
			}
			n, err := strconv.Atoi(m[1])
			return err == nil && n > 100
		})
	}

	// The ops console, at the URL printed: one process answers for its three roles once.
	consoleURL := up.waitLine(regexp.MustCompile(`console\s+(http://\S+)`))
	if page := httpGet(t, consoleURL); !strings.Contains(page, "console.js") {
		t.Errorf("the console URL serves no console page:\n%s", page)
	}
	checkUpConsole(t, strings.TrimSuffix(strings.TrimPrefix(consoleURL, "http://"), "/"), "Bearer up-ops-key")

	// A device still connected at Ctrl-C is told to go elsewhere, and the shutdown is clean.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stay, err := client.Dial(ctx, client.Config{IPConfURL: ipconfURL, AppID: "demo", DID: "stays", Credential: platformtest.Credential(t, "demo", "stays", "stays")})
	if err != nil {
		t.Fatal(err)
	}
	up.interrupt()
	select {
	case <-stay.Done():
		if code, _ := protocol.CodeOf(stay.Err()); code != protocol.CodeShuttingDown {
			t.Errorf("device connection ended with %v, want code %d", stay.Err(), protocol.CodeShuttingDown)
		}
	case <-ctx.Done():
		t.Error("device connection still open after shutdown")
	}
	if e := up.stderr(); strings.Contains(e, "level=ERROR") || strings.Contains(e, "[Error]") {
		t.Errorf("shutdown logged errors:\n%s", e)
	}
}

func TestBadConfigIsExplained(t *testing.T) {
	out, err := exec.Command(platoBinary(t), "gateway", "--set", "gateway.max_body=1", "--set", "gateway.addr=nowhere").CombinedOutput()
	if err == nil {
		t.Fatalf("plato gateway with a bad config succeeded:\n%s", out)
	}
	for _, want := range []string{"gateway.max_body", "gateway.addr", `"nowhere"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not name %s:\n%s", want, out)
		}
	}
	out, _ = exec.Command(platoBinary(t), "bogus").CombinedOutput()
	if !strings.Contains(string(out), `unknown command "bogus"`) {
		t.Errorf("unknown command output:\n%s", out)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"up", "--help"}, {"gateway", "--help"}, {"chat", "--help"}, {"nats", "--help"}, {"apps", "--help"}} {
		cmd := exec.Command(platoBinary(t), args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("plato %v: %v\n%s", args, err, out)
		}
		if len(out) == 0 {
			t.Errorf("plato %v printed nothing", args)
		}
	}
}

// TestScaffoldedStageRunsInThePipeline follows docs/plugins.md: `plato plugin new`, build, list it
// in a pipeline YAML, and see it act on real traffic through `plato up`.
func TestScaffoldedStageRunsInThePipeline(t *testing.T) {
	work := t.TempDir()
	repo := platformtest.RepoRoot()
	out, err := exec.Command(platoBinary(t), "plugin", "new", "--dir", work, "--sdk", filepath.Join(repo, "sdk"), "sizelimit").CombinedOutput()
	if err != nil {
		t.Fatalf("plugin new: %v\n%s", err, out)
	}
	dir := filepath.Join(work, "sizelimit")
	for _, args := range [][]string{{"mod", "tidy"}, {"test", "./..."}, {"build", "-o", "sizelimit", "."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %v in the scaffolded plugin: %v\n%s", args, err, b)
		}
	}
	pipes := t.TempDir()
	yaml := fmt.Sprintf("version: 1\nstages:\n  - name: sizelimit\n    plugin: %s\n    signals: [uplink]\n    config: {max_bytes: 8}\n", filepath.Join(dir, "sizelimit"))
	if err := os.WriteFile(filepath.Join(pipes, "default.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, embeddedNATS, fmt.Sprintf(`state: {addr: "127.0.0.1:0"}
pipeline: {dir: %q}
demo: {enabled: true, addr: "127.0.0.1:0", login_addr: ""}
%s`, pipes, appsYAML("127.0.0.1:0", "127.0.0.1:0")))
	up := startProc(t, "up", "up", "--config", cfg)
	ipconfURL := up.waitLine(reIPConf)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	poll.Within(t, 20*time.Second, "ipconf to hand out a gateway", func() bool {
		_, err := client.FetchEndpoints(ctx, nil, ipconfURL, "demo", "gus", platformtest.Credential(t, "demo", "gus", "gus"))
		return err == nil
	})
	c, err := client.Dial(ctx, client.Config{IPConfURL: ipconfURL, AppID: "demo", DID: "gus", Credential: platformtest.Credential(t, "demo", "gus", "gus")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if code, _ := protocol.CodeOf(c.Send(ctx, []byte(`{"to":"gus","text":"far too long for the limit"}`))); code != 2001 {
		t.Fatalf("an uplink over max_bytes got code %d, want 2001 from the scaffolded stage", code)
	}
	c.Close()
	up.interrupt()
}
