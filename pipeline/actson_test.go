package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/stage"
)

// gateStage refuses every signal it is called for with 2001, and counts the calls per signal.
// With config {"acts_on": [...]} it declares those signals (stage.SignalSelector); its twin
// plainGate declares nothing.
type gateStage struct {
	fnStage
	calls  *[numSignalsForTest]atomic.Int64
	actsOn []stage.Signal
}

const numSignalsForTest = 8

func sigIndex(s stage.Signal) int { return slices.Index(stage.Signals, s) }

func newGate(calls *[numSignalsForTest]atomic.Int64) *gateStage {
	g := &gateStage{calls: calls}
	g.fnStage = fnStage{name: "gate", fn: func(_ context.Context, _ *fnStage, ev stage.Event) stage.Reply {
		g.calls[sigIndex(ev.Signal)].Add(1)
		return stage.RejectWith(2001, "gate")
	}}
	return g
}

func (g *gateStage) Init(ctx context.Context, req stage.InitRequest) error {
	var c struct {
		ActsOn []stage.Signal `json:"acts_on"`
	}
	if err := json.Unmarshal(req.Config, &c); err != nil {
		return err
	}
	g.actsOn = c.ActsOn
	return g.fnStage.Init(ctx, req)
}

func (g *gateStage) ActsOn() []stage.Signal { return g.actsOn }

// plainGate is gateStage without ActsOn: a stage from before SignalSelector.
type plainGate struct{ fnStage }

func gateConfig(calls *[numSignalsForTest]atomic.Int64) Config {
	return Config{Lanes: 2, BatchSize: 16, QueueLimit: 64, Builtins: map[string]func() stage.Stage{
		"gate": func() stage.Stage { return newGate(calls) },
		"plaingate": func() stage.Stage {
			g := newGate(calls)
			return &plainGate{fnStage: g.fnStage}
		},
		"tag": builtin("tag", tagStage),
	}}
}

func gateFile(plugin, actsOn string) string {
	return fileYAML(
		stageYAML("gate", plugin, "login, uplink", "config: {acts_on: ["+actsOn+"]}"),
		stageYAML("after", "builtin:tag", "uplink"),
	)
}

func loginEv(app string, conn uint64) stage.Event {
	return stage.Event{Signal: stage.SignalLogin, Conn: stage.Conn{AppID: app, DID: fmt.Sprintf("d%d", conn), ConnID: conn, GatewayID: "gw1"}}
}

func stageStatus(t *testing.T, p *Pipelines, app, name string) StageStatus {
	t.Helper()
	for _, c := range p.Chains() {
		if c.Pipeline != app {
			continue
		}
		for _, s := range c.Stages {
			if s.Name == name {
				return s
			}
		}
	}
	t.Fatalf("no stage %s in %s", name, app)
	return StageStatus{}
}

// A stage that declares it acts on login only is not called for the uplinks its YAML lists: they
// continue past it, unchanged, to the next stage; its logins still reach it. A config reload that
// widens the declaration applies from then on, and narrowing it again too.
func TestStageNotCalledForSignalsItDoesNotActOn(t *testing.T) {
	dir := t.TempDir()
	var calls [numSignalsForTest]atomic.Int64
	writePipeline(t, dir, "chat", gateFile("builtin:gate", "login"))
	cfg := gateConfig(&calls)
	cfg.Dir = dir
	p := start(t, cfg)

	if o := runWait(t, p, loginEv("chat", 1)); o.Verdict != stage.Reject || o.Code != 2001 {
		t.Fatalf("login: %+v; want the gate's 2001", o)
	}
	for seq := uint64(1); seq <= 5; seq++ {
		if o := runWait(t, p, uplink("chat", 1, seq, "m")); o.Verdict != stage.Continue || string(o.Payload) != "m|after" {
			t.Fatalf("uplink %d: %+v; want it past the gate, tagged by the next stage", seq, o)
		}
	}
	if n := calls[sigIndex(stage.SignalUplink)].Load(); n != 0 {
		t.Fatalf("the gate was called for %d uplinks; it declared login only", n)
	}
	if n := calls[sigIndex(stage.SignalLogin)].Load(); n != 1 {
		t.Fatalf("the gate was called for %d logins, want 1", n)
	}
	st := stageStatus(t, p, "chat", "gate")
	if !st.ActsOnDeclared || !slices.Equal(st.ActsOn, []string{"login"}) || !slices.Equal(st.Signals, []string{"login", "uplink"}) {
		t.Fatalf("status: %+v", st)
	}

	// Reload with a config that makes it act on uplinks: they are refused from then on.
	writePipeline(t, dir, "chat", gateFile("builtin:gate", "login, uplink"))
	if err := p.Reload("chat"); err != nil {
		t.Fatal(err)
	}
	if o := runWait(t, p, uplink("chat", 1, 6, "m")); o.Verdict != stage.Reject || o.Code != 2001 || o.Stage != "gate" {
		t.Fatalf("uplink after widening: %+v", o)
	}
	if st := stageStatus(t, p, "chat", "gate"); !slices.Equal(st.ActsOn, []string{"login", "uplink"}) {
		t.Fatalf("status after widening: %+v", st)
	}
	// And back.
	writePipeline(t, dir, "chat", gateFile("builtin:gate", "login"))
	if err := p.Reload("chat"); err != nil {
		t.Fatal(err)
	}
	before := calls[sigIndex(stage.SignalUplink)].Load()
	if o := runWait(t, p, uplink("chat", 1, 7, "m")); o.Verdict != stage.Continue || string(o.Payload) != "m|after" {
		t.Fatalf("uplink after narrowing: %+v", o)
	}
	if calls[sigIndex(stage.SignalUplink)].Load() != before {
		t.Fatal("the gate was called for an uplink after narrowing")
	}
}

// A stage that declares nothing (no ActsOn: a stage from before SignalSelector) is called for
// every signal listed, and a stage that declares a signal its YAML does not list is not sent it.
func TestStageDeclaringNothingOrUnlistedSignals(t *testing.T) {
	dir := t.TempDir()
	var calls [numSignalsForTest]atomic.Int64
	writePipeline(t, dir, "old", gateFile("builtin:plaingate", "login"))
	writePipeline(t, dir, "wide", fileYAML(stageYAML("gate", "builtin:gate", "login", "config: {acts_on: [login, uplink, heartbeat]}")))
	writePipeline(t, dir, "none", fileYAML(stageYAML("gate", "builtin:gate", "login, uplink", "config: {acts_on: []}")))
	cfg := gateConfig(&calls)
	cfg.Dir = dir
	p := start(t, cfg)

	if o := runWait(t, p, uplink("old", 1, 1, "m")); o.Verdict != stage.Reject || o.Code != 2001 {
		t.Fatalf("uplink through a stage that declares nothing: %+v; want it called", o)
	}
	if st := stageStatus(t, p, "old", "gate"); st.ActsOnDeclared || !slices.Equal(st.ActsOn, st.Signals) {
		t.Fatalf("status of a stage that declares nothing: %+v", st)
	}

	before := calls[sigIndex(stage.SignalUplink)].Load()
	if o := runWait(t, p, uplink("wide", 2, 1, "m")); o.Verdict != stage.Continue {
		t.Fatalf("uplink not listed for the stage: %+v", o)
	}
	if calls[sigIndex(stage.SignalUplink)].Load() != before {
		t.Fatal("a stage was sent an uplink its YAML does not list")
	}
	st := stageStatus(t, p, "wide", "gate")
	if !slices.Equal(st.ActsOn, []string{"login"}) || !slices.Equal(st.Unlisted, []string{"uplink", "heartbeat"}) {
		t.Fatalf("status of a stage declaring unlisted signals: %+v", st)
	}

	// Declaring none: loaded, never called by signal, and nobody listens.
	if o := runWait(t, p, loginEv("none", 3)); o.Verdict != stage.Continue {
		t.Fatalf("login through a stage acting on nothing: %+v", o)
	}
	if p.Listens("none", stage.SignalUplink) || !p.Listens("old", stage.SignalUplink) {
		t.Fatal("Listens does not follow the declarations")
	}
	if st := stageStatus(t, p, "none", "gate"); !st.ActsOnDeclared || len(st.ActsOn) != 0 || st.ActsOn == nil {
		t.Fatalf("status of a stage acting on nothing: %+v", st)
	}
}

// The declaration comes from the plugin process over the wire, and a crash-restart applies the
// restarted process's declaration: uplinks skip the plugin before and after it is SIGKILLed.
func TestPluginDeclarationSurvivesARestart(t *testing.T) {
	bin := testPlugin(t)
	dir := t.TempDir()
	// testplugin rejects an uplink "reject" with 2001 when it is called.
	writePipeline(t, dir, "skip", fileYAML(stageYAML("tp", bin, "login, uplink", "config: {acts_on: [login]}")))
	writePipeline(t, dir, "call", fileYAML(stageYAML("tp", bin, "login, uplink", "config: {acts_on: [login, uplink]}")))
	p := start(t, Config{Dir: dir, Lanes: 2})
	check := func(when string) {
		t.Helper()
		if o := runWait(t, p, uplink("skip", 1, 1, "reject")); o.Verdict != stage.Continue || string(o.Payload) != "reject" {
			t.Fatalf("%s: uplink of app skip: %+v; want it past the plugin", when, o)
		}
		if o := runWait(t, p, uplink("call", 2, 1, "reject")); o.Verdict != stage.Reject || o.Code != 2001 {
			t.Fatalf("%s: uplink of app call: %+v; want the plugin's 2001", when, o)
		}
	}
	check("at start")
	in := p.chainOf("skip").steps[0].inst
	pid := in.cur.Load().pid
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the plugin back", func() bool {
		pr := in.cur.Load()
		return pr != nil && pr.pid != pid && in.restarts.Load() == 1
	})
	check("after a restart")
	if st := stageStatus(t, p, "skip", "tp"); !st.ActsOnDeclared || !slices.Equal(st.ActsOn, []string{"login"}) {
		t.Fatalf("status after a restart: %+v", st)
	}
}

// A blue/green swap (same name, signals and config; another binary) applies the new binary's
// declaration: the test plugin built to declare login only by default stops receiving uplinks.
func TestSwapAppliesTheNewBinarysDeclaration(t *testing.T) {
	callsAll := testPlugin(t) // declares login and uplink without acts_on in its config
	loginOnly := filepath.Join(t.TempDir(), "testplugin-login")
	cmd := exec.Command("go", "build", "-ldflags", "-X main.defaultActsOn=login", "-o", loginOnly, "./internal/testplugin")
	_, file, _, _ := runtime.Caller(0)
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "sdk", "stage")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the login-only test plugin: %v\n%s", err, out)
	}
	dir := t.TempDir()
	writePipeline(t, dir, "chat", fileYAML(stageYAML("tp", callsAll, "login, uplink")))
	p := start(t, Config{Dir: dir, Lanes: 2})
	in := p.chainOf("chat").steps[0].inst
	if o := runWait(t, p, uplink("chat", 1, 1, "reject")); o.Verdict != stage.Reject || o.Code != 2001 {
		t.Fatalf("before the swap: %+v; want the plugin's 2001", o)
	}
	writePipeline(t, dir, "chat", fileYAML(stageYAML("tp", loginOnly, "login, uplink")))
	if err := p.Reload("chat"); err != nil {
		t.Fatal(err)
	}
	if p.chainOf("chat").steps[0].inst != in {
		t.Fatal("the reload started a new instance; want a blue/green swap of the running one")
	}
	if o := runWait(t, p, uplink("chat", 1, 2, "reject")); o.Verdict != stage.Continue || string(o.Payload) != "reject" {
		t.Fatalf("after the swap: %+v; want it past the plugin", o)
	}
	if st := stageStatus(t, p, "chat", "tp"); !slices.Equal(st.ActsOn, []string{"login"}) {
		t.Fatalf("status after the swap: %+v", st)
	}
}
