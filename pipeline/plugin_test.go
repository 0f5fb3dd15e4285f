package pipeline

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/stage"
)

// fakeHost is the state server's side of stage.Host: it records pushes.
type fakeHost struct {
	stage.Host // the rest: not called by these tests
	mu         sync.Mutex
	pushes     []string
}

func (h *fakeHost) Push(_ context.Context, appID string, dids []string, payload []byte) (stage.PushResult, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pushes = append(h.pushes, fmt.Sprintf("%s:%v:%s", appID, dids, payload))
	return stage.PushResult{MsgID: 7}, nil
}

// pluginStage is the test plugin as a stage, with loadedTimeout (stageYAML).
func pluginStage(path string, extra ...string) string {
	return stageYAML("tp", path, "login, uplink", extra...)
}

func startPlugins(t *testing.T, dir string, host stage.Host) *Pipelines {
	t.Helper()
	p, err := New(context.Background(), Config{Dir: dir, Lanes: 8}, host, testLogger(t), nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { closeOK(t, p) })
	return p
}

func fileSum(t *testing.T, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func TestPluginProcess(t *testing.T) {
	bin := testPlugin(t)
	dir := t.TempDir()
	writePipeline(t, dir, "chat", fileYAML(pluginStage(bin, fmt.Sprintf("sha256: %q", fileSum(t, bin)), "config: {x: 1}")))
	host := &fakeHost{}
	p := startPlugins(t, dir, host)
	pids := p.pluginPIDs()
	if len(pids) != 1 || !alive(pids[0]) {
		t.Fatalf("plugin pids %v", pids)
	}

	if o := runWait(t, p, uplink("chat", 1, 1, "hello")); o.Verdict != stage.Continue || string(o.Payload) != "hello" {
		t.Errorf("echo: %+v", o)
	}
	if o := runWait(t, p, uplink("chat", 1, 2, "reject")); o.Verdict != stage.Reject || o.Code != 2001 || o.Stage != "tp" {
		t.Errorf("reject: %+v", o)
	}
	if o := runWait(t, p, uplink("chat", 1, 3, "panic")); o.Verdict != stage.Reject || o.Code != CodePipelineFailed || o.Stage != "tp" {
		t.Errorf("panic: %+v", o)
	}
	// The plugin calls back: Push reaches the state server's host, Put/Get the pipeline's store.
	if o := runWait(t, p, uplink("chat", 1, 4, "host")); o.Verdict != stage.Continue || string(o.Payload) != "stored" {
		t.Errorf("host: %+v %q", o, o.Payload)
	}
	host.mu.Lock()
	if len(host.pushes) != 1 || host.pushes[0] != "chat:[d1]:pushed" {
		t.Errorf("pushes %v", host.pushes)
	}
	host.mu.Unlock()
	if v, ok := p.chainOf("chat").steps[0].inst.scope.kv.get("chat", "last:d1"); !ok || string(v) != "stored" {
		t.Errorf("the plugin's Put: %q %v", v, ok)
	}
	login := stage.Event{Signal: stage.SignalLogin, Conn: stage.Conn{AppID: "chat", ConnID: 2, GatewayID: "gw1"}, Token: "bad"}
	if o := runWait(t, p, login); o.Verdict != stage.Reject || o.Code != 2002 {
		t.Errorf("bad login: %+v", o)
	}

	closeOK(t, p)
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("plugin %d still running after Close", pid)
		}
	}
}

func TestPluginLoadErrors(t *testing.T) {
	bin := testPlugin(t)
	dir := t.TempDir()
	writePipeline(t, dir, "chat", fileYAML(stageYAML("tp", bin, "uplink, downlink")))
	_, err := New(context.Background(), Config{Dir: dir}, nil, testLogger(t), nil)
	if err == nil || !strings.Contains(err.Error(), `stage "tp"`) || !strings.Contains(err.Error(), "[downlink]") {
		t.Errorf("a plugin missing a signal: %v", err)
	}
	// Not a plugin at all: the handshake fails within the start timeout.
	sh := filepath.Join(t.TempDir(), "notaplugin")
	if err := os.WriteFile(sh, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	writePipeline(t, dir, "chat", fileYAML(stageYAML("sh", sh, "uplink")))
	if _, err = New(context.Background(), Config{Dir: dir, StartTimeout: 2 * time.Second}, nil, testLogger(t), nil); err == nil || !strings.Contains(err.Error(), `stage "sh"`) {
		t.Errorf("a binary that is not a plugin: %v", err)
	}
}

// TestPluginKilled kills the plugin with SIGKILL under traffic: every signal still gets its done,
// in order; the ones caught in the crash are rejected with 1306 (fail_closed); the plugin comes
// back and later signals go through.
func TestPluginKilled(t *testing.T) {
	bin := testPlugin(t)
	dir := t.TempDir()
	writePipeline(t, dir, "chat", fileYAML(pluginStage(bin, "on_failure: fail_closed")))
	p := startPlugins(t, dir, nil)
	in := p.chainOf("chat").steps[0].inst
	oldPID := p.pluginPIDs()[0]

	rec := newRecorder()
	stop := make(chan struct{})
	wait := traffic(t, p, "chat", 16, rec, stop)
	poll.Until(t, "some traffic", func() bool { return rec.count() > 500 })
	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the restart", func() bool { return in.restarts.Load() == 1 && in.cur.Load() != nil })
	// Let the new process serve a while under the same traffic.
	seen := rec.count()
	poll.Until(t, "traffic after the restart", func() bool { return rec.count() > seen+500 })
	close(stop)
	runs := wait()
	poll.Until(t, "every done", func() bool { return rec.count() == runs })
	rec.check(t)

	failed, ok := 0, 0
	for c, l := range rec.byConn {
		for _, r := range l {
			switch {
			case r.out.Verdict == stage.Continue && string(r.out.Payload) == "m":
				ok++
			case r.out.Verdict == stage.Reject && r.out.Code == CodePipelineFailed && r.out.Stage == "tp":
				failed++
			default:
				t.Fatalf("conn %d seq %d: %+v", c, r.seq, r.out)
			}
		}
	}
	if failed == 0 {
		t.Error("no signal was caught by the crash")
	}
	t.Logf("%d signals: %d through, %d rejected with 1306 while the plugin was down", runs, ok, failed)
	if o := runWait(t, p, uplink("chat", 1000, 1, "after")); o.Verdict != stage.Continue || string(o.Payload) != "after" {
		t.Errorf("after the restart: %+v", o)
	}
	newPID := p.pluginPIDs()[0]
	if newPID == oldPID || alive(oldPID) || !alive(newPID) {
		t.Errorf("old pid %d (alive %v), new pid %d (alive %v)", oldPID, alive(oldPID), newPID, alive(newPID))
	}
}

// TestPluginHung: three timeouts in a row with no answer at all, and the plugin is killed and
// restarted.
func TestPluginHung(t *testing.T) {
	bin := testPlugin(t)
	dir := t.TempDir()
	writePipeline(t, dir, "chat", fileYAML(stageYAML("tp", bin, "uplink", "timeout: 100ms", "on_failure: fail_open")))
	p := startPlugins(t, dir, nil)
	in := p.chainOf("chat").steps[0].inst
	oldPID := p.pluginPIDs()[0]
	for i := range hangTimeouts {
		if o := runWait(t, p, uplink("chat", 1, uint64(i+1), "hang")); o.Verdict != stage.Continue || string(o.Payload) != "hang" {
			t.Errorf("fail_open timeout: %+v", o)
		}
	}
	poll.Until(t, "the hung plugin to be restarted", func() bool { return in.restarts.Load() == 1 && in.cur.Load() != nil })
	waitGone(t, oldPID)
	if o := runWait(t, p, uplink("chat", 1, 10, "hi")); o.Verdict != stage.Continue || string(o.Payload) != "hi" {
		t.Errorf("after the restart: %+v", o)
	}
}

// TestPluginSlowIsNotRestarted: calls that time out but are answered late mean a slow plugin,
// not a stuck one: it keeps running.
func TestPluginSlowIsNotRestarted(t *testing.T) {
	bin := testPlugin(t)
	dir := t.TempDir()
	writePipeline(t, dir, "chat", fileYAML(stageYAML("tp", bin, "uplink", "timeout: 100ms", "on_failure: fail_open")))
	p := startPlugins(t, dir, nil)
	in := p.chainOf("chat").steps[0].inst
	pid := p.pluginPIDs()[0]
	pr := in.cur.Load()
	for i := range 2 * hangTimeouts {
		answered := pr.answered()
		if o := runWait(t, p, uplink("chat", 1, uint64(i+1), "sleep")); o.Verdict != stage.Continue || string(o.Payload) != "sleep" {
			t.Errorf("fail_open timeout: %+v", o)
		}
		// Its late answer arrives (200ms after the timeout, or later on a loaded machine) before
		// the next call: the plugin is slow, not stuck.
		poll.Until(t, "the late answer", func() bool { return pr.answered() > answered })
	}
	if o := runWait(t, p, uplink("chat", 1, 100, "hi")); o.Verdict != stage.Continue || string(o.Payload) != "hi" {
		t.Errorf("after the slow calls: %+v", o)
	}
	if n := in.restarts.Load(); n != 0 || p.pluginPIDs()[0] != pid {
		t.Fatalf("a slow plugin was restarted %d times (pid %d, now %v)", n, pid, p.pluginPIDs())
	}
}

// TestPluginFailWith: a plugin's FailWith reaches the host and gets the stage's policy.
func TestPluginFailWith(t *testing.T) {
	bin := testPlugin(t)
	dir := t.TempDir()
	writePipeline(t, dir, "chat", fileYAML(stageYAML("tp", bin, "uplink", "on_failure: fail_closed")))
	p := startPlugins(t, dir, nil)
	o := runWait(t, p, uplink("chat", 1, 1, "fail"))
	if o.Verdict != stage.Reject || o.Code != CodePipelineFailed || o.Message != "pipeline stage tp failed: testplugin: asked to fail" {
		t.Errorf("FailWith through a plugin: %+v", o)
	}
	if o := runWait(t, p, uplink("chat", 1, 2, "hi")); o.Verdict != stage.Continue {
		t.Errorf("the next signal: %+v", o)
	}
}

// TestPluginSwap: a reload that only changes the binary swaps the process under traffic, with
// no signal failing.
func TestPluginSwap(t *testing.T) {
	bin := testPlugin(t)
	bin2 := filepath.Join(t.TempDir(), "testplugin2")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin2, data, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writePipeline(t, dir, "chat", fileYAML(pluginStage(bin)))
	p := startPlugins(t, dir, nil)
	in := p.chainOf("chat").steps[0].inst
	oldPID := p.pluginPIDs()[0]

	rec := newRecorder()
	stop := make(chan struct{})
	wait := traffic(t, p, "chat", 16, rec, stop)
	poll.Until(t, "some traffic", func() bool { return rec.count() > 300 })
	writePipeline(t, dir, "chat", fileYAML(pluginStage(bin2)))
	if err := p.Reload("chat"); err != nil {
		t.Fatal(err)
	}
	seen := rec.count()
	poll.Until(t, "traffic after the swap", func() bool { return rec.count() > seen+300 })
	close(stop)
	runs := wait()
	poll.Until(t, "every done", func() bool { return rec.count() == runs })
	rec.check(t)
	for c, l := range rec.byConn {
		for _, r := range l {
			if r.out.Verdict != stage.Continue {
				t.Fatalf("conn %d seq %d failed during the swap: %+v", c, r.seq, r.out)
			}
		}
	}
	if p.chainOf("chat").steps[0].inst != in {
		t.Error("the swap made a new instance")
	}
	if got := in.currentSpec().path; got != bin2 {
		t.Errorf("the instance runs %s", got)
	}
	if newPID := p.pluginPIDs()[0]; newPID == oldPID || alive(oldPID) {
		t.Errorf("old pid %d alive %v, new pid %d", oldPID, alive(oldPID), newPID)
	}

	// The same through instance.swap directly (what an operator's upgrade would call).
	before := p.pluginPIDs()[0]
	spec := in.currentSpec()
	spec.path = bin
	if err := in.swap(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if o := runWait(t, p, uplink("chat", 1, 1, "x")); o.Verdict != stage.Continue {
		t.Errorf("after swap: %+v", o)
	}
	waitGone(t, before)
}

// TestPluginDiesWithHost runs a host in a helper process, SIGKILLs it, and checks its plugin
// does not outlive it.
func TestPluginDiesWithHost(t *testing.T) {
	bin := testPlugin(t)
	dir := t.TempDir()
	writePipeline(t, dir, "chat", fileYAML(pluginStage(bin)))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// A host killed cannot remove its plugins' socket directories: they go under the test's.
	cmd.Env = append(os.Environ(), helperEnv+"="+dir, "TMPDIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	var pids []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if line == "ready" {
			break
		}
		if rest, ok := strings.CutPrefix(line, "pid "); ok {
			pid, _ := strconv.Atoi(rest)
			pids = append(pids, pid)
			continue
		}
		t.Fatalf("helper: %s", line)
	}
	go io.Copy(io.Discard, out)
	if len(pids) != 1 || !alive(pids[0]) {
		t.Fatalf("helper's plugins: %v", pids)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no chance to clean up
		t.Fatal(err)
	}
	_ = cmd.Wait()
	took := waitGone(t, pids[0])
	t.Logf("the plugin exited %v after its host was killed", took.Round(time.Millisecond))
}
