package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/natsd"
	"github.com/platoim/plato/internal/testkit"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

const pyWebhookSecret = "python-example-webhook-secret"

// python3 is the interpreter the example runs on: on PATH, or installed by scripts/install-js-deps
// (Debian's python3) when missing. Never a skip: CI has only Go, and the script installs it.
func python3(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("python3"); err == nil {
		return p
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(root, "scripts/install-js-deps")).CombinedOutput(); err != nil {
		t.Fatalf("no python3, and scripts/install-js-deps could not install it (run as root, or apt-get install python3): %v\n%s", err, out)
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("no python3 on PATH after scripts/install-js-deps: apt-get install python3")
	}
	return p
}

// pyProc is the Python business server, its stdout kept line by line.
type pyProc struct {
	mu    sync.Mutex
	lines []string
	errb  strings.Builder
}

func (p *pyProc) has(re *regexp.Regexp) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if m := re.FindStringSubmatch(l); m != nil {
			return m[len(m)-1]
		}
	}
	return ""
}

func (p *pyProc) wait(t *testing.T, what string, re *regexp.Regexp) string {
	t.Helper()
	var got string
	poll.Within(t, 30*time.Second, what, func() bool {
		got = p.has(re)
		return got != ""
	})
	return got
}

func (p *pyProc) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n") + "\nstderr:\n" + p.errb.String()
}

func startPython(t *testing.T, apiAddr string) *pyProc {
	t.Helper()
	py := python3(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, py, "-u", "-B", "../../examples/python-business/business.py",
		"--listen", "127.0.0.1:0", "--api", "http://"+apiAddr, "--app", "demo", "--room", "lobby")
	cmd.Env = append(os.Environ(), "PLATO_WEBHOOK_SECRET="+pyWebhookSecret, "PLATO_APP_KEY="+platformtest.KeyOf("demo"))
	p := &pyProc{}
	cmd.Stderr = &lockedWriter{b: &p.errb, mu: &p.mu}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", py, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("python business server output:\n%s", p)
		}
	})
	return p
}

// TestPythonWebhookBusiness runs examples/python-business as the demo app's business server,
// reached by webhooks, with the state server, gateway and ipconf as processes of the plato
// binary: a device's uplink is verified and ACKed by the Python server, which echoes it to the
// device and to the room through the HTTP API, and hears CONNECTED and DISCONNECTED.
func TestPythonWebhookBusiness(t *testing.T) {
	// The example's own unit tests first: its signature check against a vector Plato's Go side
	// pins too (internal/bizlink TestSignVector).
	unit := exec.Command(python3(t), "-B", "-m", "unittest", "-v", "test_business.py")
	unit.Dir = "../../examples/python-business"
	if out, err := unit.CombinedOutput(); err != nil || !strings.Contains(string(out), "\nOK") {
		t.Fatalf("python3 -m unittest test_business.py: %v\n%s", err, out)
	}
	ns, err := natsd.Start(context.Background(), natsd.Config{Host: "127.0.0.1", Port: 0, StoreDir: t.TempDir()}, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	stAddr, httpAddr := freePort(t), freePort(t)
	py := startPython(t, httpAddr)
	hook := py.wait(t, "the Python server to listen", regexp.MustCompile(`^listening on (http://\S+)`))
	// The sessionbind stage asks the business which sessions a connection joins: the Python
	// server's sessions webhook puts every device in the room.
	pipes := t.TempDir()
	yaml := fmt.Sprintf(`version: 1
stages:
  - name: sessionbind
    plugin: %s
    signals: [login]
    timeout: 20s
    on_failure: fail_closed
    config: {timeout: 10s, on_failure: refuse}
`, platformtest.BuildPlugin(t, "plugins/sessionbind"))
	if err := os.WriteFile(filepath.Join(pipes, "default.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, fmt.Sprintf("{url: %q}", ns.ClientURL()), fmt.Sprintf(`registry: {ttl: 3s}
state: {addr: %q}
pipeline: {dir: %q}
apps:
  demo:
    business: %q
    webhook_secret: %q
    keys: {dev: %q}
    auth: {jwt: {secrets: {dev: %q}}}
`, stAddr, pipes, hook, pyWebhookSecret, platformtest.KeyOf("demo"), platformtest.JWTSecret))
	st := startProcEnv(t, "state", []string{"PLATO_STATE__HTTP_ADDR=" + httpAddr}, "state", "--config", cfg)
	st.waitLine(reRunning)
	gw := startProc(t, "gateway", "gateway", "--config", cfg)
	gw.waitLine(reGateway)
	ipconf := startProc(t, "ipconf", "ipconf", "--config", cfg).waitLine(reIPConf)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dialDev := func(did string) *client.Client {
		t.Helper()
		var c *client.Client
		poll.Within(t, 30*time.Second, "ipconf to hand out the gateway and "+did+" to log in", func() bool {
			var err error
			c, err = client.Dial(ctx, client.Config{IPConfURL: ipconf, AppID: "demo", DID: did, UID: "u-" + did,
				Credential: platformtest.Credential(t, "demo", did, "u-"+did), DialTimeout: 10 * time.Second, LoginTimeout: 20 * time.Second})
			return err == nil
		})
		t.Cleanup(func() { c.Close() })
		return c
	}
	alice, bob := dialDev("alice"), dialDev("bob")
	py.wait(t, "the sessions callback for alice at the Python server", regexp.MustCompile(`^sessions app=demo did=alice uid=u-alice -> \['lobby'\]`))
	py.wait(t, "CONNECTED of alice at the Python server", regexp.MustCompile(`^event CONNECTED app=demo did=alice uid=u-alice conn_id=\d+`))

	if err := alice.Send(ctx, []byte("hello from Go")); err != nil {
		t.Fatalf("uplink: %v (the Python server answers it)", err)
	}
	py.wait(t, "the uplink at the Python server", regexp.MustCompile(`^uplink app=demo did=alice uid=u-alice seq=\d+ payload=b'hello from Go'`))
	want := map[string][]string{"alice": {"echo: hello from Go", "u-alice: hello from Go"}, "bob": {"u-alice: hello from Go"}}
	for did, c := range map[string]*client.Client{"alice": alice, "bob": bob} {
		var got []string
		for range want[did] {
			select {
			case m := <-c.Messages():
				got = append(got, string(m.Payload))
			case <-ctx.Done():
				t.Fatalf("%s got %q, want %q (the echo and the room push through the HTTP API)", did, got, want[did])
			}
		}
		if strings.Join(sorted(got), "|") != strings.Join(sorted(want[did]), "|") {
			t.Fatalf("%s got %q, want %q", did, got, want[did])
		}
	}

	err = alice.Send(ctx, []byte("refuse this"))
	if code, _ := protocol.CodeOf(err); code != 2001 {
		t.Fatalf("uplink the Python server refuses: %v, want its code 2001", err)
	}

	alice.Close()
	py.wait(t, "DISCONNECTED of alice at the Python server", regexp.MustCompile(`^event DISCONNECTED app=demo did=alice uid=u-alice conn_id=\d+ reason=\d+`))
	if l := py.has(regexp.MustCompile(`^(refused .*)`)); l != "" {
		t.Fatalf("the Python server refused a request of Plato's: %s", l)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
