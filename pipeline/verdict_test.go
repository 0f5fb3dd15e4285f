package pipeline

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/platoim/plato/sdk/stage"
)

func filterStage(_ context.Context, _ *fnStage, ev stage.Event) stage.Reply {
	switch string(ev.Payload) {
	case "reject":
		return stage.RejectWith(2001, "not allowed")
	case "drop":
		return stage.Reply{Verdict: stage.Drop}
	case "weird":
		return stage.Reply{Verdict: 42}
	}
	return stage.Rewrite(bytes.ToUpper(ev.Payload))
}

func TestRejectDropRewrite(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var after []string // what the stage after the filter saw
	seen := func(_ context.Context, st *fnStage, ev stage.Event) stage.Reply {
		mu.Lock()
		after = append(after, string(ev.Signal)+":"+string(ev.Payload))
		mu.Unlock()
		return stage.Reply{}
	}
	writePipeline(t, dir, "chat", fileYAML(
		stageYAML("filter", "builtin:filter", "uplink, downlink"),
		stageYAML("after", "builtin:seen", "uplink, downlink, login"),
	))
	p := start(t, Config{Dir: dir, Builtins: map[string]func() stage.Stage{
		"filter": builtin("filter", filterStage),
		"seen":   builtin("seen", seen),
	}})

	if o := runWait(t, p, uplink("chat", 1, 1, "hello")); o.Verdict != stage.Continue || string(o.Payload) != "HELLO" || o.Stage != "" {
		t.Errorf("rewrite: %+v %q", o, o.Payload)
	}
	o := runWait(t, p, uplink("chat", 1, 2, "reject"))
	if o.Verdict != stage.Reject || o.Code != 2001 || o.Message != "not allowed" || o.Stage != "filter" {
		t.Errorf("reject: %+v", o)
	}
	if o := runWait(t, p, uplink("chat", 1, 3, "drop")); o.Verdict != stage.Drop || o.Stage != "filter" {
		t.Errorf("drop: %+v", o)
	}
	if o := runWait(t, p, uplink("chat", 1, 4, "weird")); o.Verdict != stage.Reject || o.Code != CodePipelineFailed || o.Stage != "filter" {
		t.Errorf("unknown verdict: %+v", o)
	}
	// A login is not the filter's business: it reaches the next stage untouched.
	login := uplink("chat", 1, 5, "")
	login.Signal, login.Payload = stage.SignalLogin, nil
	if o := runWait(t, p, login); o.Verdict != stage.Continue {
		t.Errorf("login: %+v", o)
	}
	// Heartbeats are nobody's business.
	hb := uplink("chat", 1, 6, "")
	hb.Signal = stage.SignalHeartbeat
	if o := runWait(t, p, hb); o.Verdict != stage.Continue {
		t.Errorf("heartbeat: %+v", o)
	}
	mu.Lock()
	defer mu.Unlock()
	if got, want := strings.Join(after, " "), "uplink:HELLO login:"; got != want {
		t.Errorf("the next stage saw %q, want %q", got, want)
	}
}

// TestNoPipeline: an app without a file, and no default.yaml, passes through; so does a Pipelines
// without a directory.
func TestNoPipeline(t *testing.T) {
	dir := t.TempDir()
	writePipeline(t, dir, "chat", fileYAML(stageYAML("filter", "builtin:filter", "uplink")))
	p := start(t, Config{Dir: dir, Builtins: map[string]func() stage.Stage{"filter": builtin("filter", filterStage)}})
	if o := runWait(t, p, uplink("game", 1, 1, "reject")); o.Verdict != stage.Continue || string(o.Payload) != "reject" {
		t.Errorf("app without pipeline: %+v", o)
	}
	q := start(t, Config{})
	if o := runWait(t, q, uplink("game", 1, 1, "x")); o.Verdict != stage.Continue || string(o.Payload) != "x" {
		t.Errorf("no directory: %+v", o)
	}
	if err := q.Run(stage.Event{Signal: stage.SignalTimer}, nil); err == nil {
		t.Error("Run accepted a timer signal")
	}
}

func TestLoadErrors(t *testing.T) {
	uplinkOnly := func() stage.Stage { return &uplinkStage{} }
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown builtin", fileYAML(stageYAML("auth", "builtin:nope", "uplink")), []string{`stage "auth"`, `unknown builtin "nope"`}},
		{"missing signals", fileYAML(stageYAML("auth", "builtin:uponly", "login, uplink, downlink")), []string{`stage "auth"`, "[login downlink]"}},
		{"bad yaml", "version: 1\nstages:\n  - name: x\n    plugin: builtin:uponly\n    signals: [uplink]\n    timeout: soon\n", []string{"chat.yaml:6", "stages[0].timeout"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writePipeline(t, dir, "chat", c.yaml)
			_, err := New(context.Background(), Config{Dir: dir, Builtins: map[string]func() stage.Stage{"uponly": uplinkOnly}}, nil, nil, nil)
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// uplinkStage handles uplinks only.
type uplinkStage struct{}

func (*uplinkStage) Info() stage.Info                                         { return stage.Info{Name: "uponly"} }
func (*uplinkStage) Init(context.Context, stage.InitRequest) error            { return nil }
func (*uplinkStage) OnUplink(context.Context, *stage.UplinkEvent) stage.Reply { return stage.Reply{} }
