package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/stage"
)

// cfgTagStage appends the "tag" of its YAML config to the uplink payload.
func cfgTagStage(ctx context.Context, st *fnStage, ev stage.Event) stage.Reply {
	if ev.Signal != stage.SignalUplink {
		return stage.Reply{}
	}
	var c struct{ Tag string }
	if err := json.Unmarshal(st.req.Config, &c); err != nil {
		return stage.RejectWith(2999, err.Error())
	}
	sleepy()
	return stage.Rewrite(append(append(append([]byte(nil), ev.Payload...), '|'), c.Tag...))
}

func versioned(tag string) string {
	return fileYAML(
		stageYAML("keep", "builtin:cfgtag", "uplink", "config: {tag: k}"),
		stageYAML("ver", "builtin:cfgtag", "uplink", fmt.Sprintf("config: {tag: %s}", tag)),
	)
}

func reloadConfig(dir string) Config {
	return Config{Dir: dir, Lanes: 8, BatchSize: 16, QueueLimit: 256, Builtins: map[string]func() stage.Stage{"cfgtag": builtin("cfgtag", cfgTagStage)}}
}

func (p *Pipelines) chainOf(app string) *chain { return p.snap.Load().chainFor(app) }

// traffic runs uplinks on conns connections without pause until stop is closed, recording each
// outcome, and returns how many it ran.
func traffic(t *testing.T, p *Pipelines, app string, conns int, rec *recorder, stop chan struct{}) func() int {
	var runs atomic.Int64
	var wg sync.WaitGroup
	for c := range conns {
		wg.Go(func() {
			for seq := uint64(1); ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := runRetry(p, uplink(app, uint64(c), seq, "m"), rec.done(uint64(c), seq)); err != nil {
					t.Error(err)
					return
				}
				runs.Add(1)
				if seq%64 == 0 {
					time.Sleep(100 * time.Microsecond) // let other goroutines in
				}
			}
		})
	}
	return func() int { wg.Wait(); return int(runs.Load()) }
}

func TestHotReloadUnderTraffic(t *testing.T) {
	dir := t.TempDir()
	writePipeline(t, dir, "chat", versioned("v1"))
	p := start(t, reloadConfig(dir))
	keep := p.chainOf("chat").steps[0].inst

	rec := newRecorder()
	stop := make(chan struct{})
	wait := traffic(t, p, "chat", 32, rec, stop)
	time.Sleep(200 * time.Millisecond)

	writePipeline(t, dir, "chat", versioned("v2"))
	if err := p.Reload("chat"); err != nil {
		t.Fatal(err)
	}
	// Everything Run from now on must see v2.
	if o := runWait(t, p, uplink("chat", 999, 1, "m")); string(o.Payload) != "m|k|v2" {
		t.Errorf("after reload: %q", o.Payload)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	runs := wait()
	poll.Until(t, "every done", func() bool { return rec.count() == runs })
	rec.check(t)

	if got := p.chainOf("chat").steps[0].inst; got != keep {
		t.Error("the unchanged stage was not reused")
	}
	if keep.retired.Load() {
		t.Error("the reused stage was retired")
	}
	v1, v2 := 0, 0
	for c, l := range rec.byConn {
		sawV2 := false
		for _, r := range l {
			switch string(r.out.Payload) {
			case "m|k|v1":
				v1++
				if sawV2 {
					t.Fatalf("conn %d: v1 after v2 (seq %d)", c, r.seq)
				}
			case "m|k|v2":
				v2++
				sawV2 = true
			default:
				t.Fatalf("conn %d seq %d: %+v %q", c, r.seq, r.out, r.out.Payload)
			}
		}
	}
	if v1 == 0 || v2 == 0 {
		t.Errorf("v1 %d, v2 %d: the reload did not happen under traffic", v1, v2)
	}
	t.Logf("%d signals: %d on v1, %d on v2", runs, v1, v2)
}

func TestBadReloadKeepsChain(t *testing.T) {
	dir := t.TempDir()
	writePipeline(t, dir, "chat", versioned("v1"))
	p := start(t, reloadConfig(dir))
	before := p.chainOf("chat")

	bad := map[string]struct {
		yaml string
		want string
	}{
		"syntax":          {"version: 1\nstages:\n  - name: ver\n    plugin: builtin:cfgtag\n    signals: [uplink\n", "chat.yaml"},
		"unknown key":     {versioned("v2") + "    colour: blue\n", "stages[1].colour"},
		"unknown builtin": {fileYAML(stageYAML("ver", "builtin:nope", "uplink")), `unknown builtin "nope"`},
	}
	for name, b := range bad {
		writePipeline(t, dir, "chat", b.yaml)
		err := p.Reload("chat")
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: Reload error %v, want one mentioning %q", name, err, b.want)
		}
		if p.chainOf("chat") != before {
			t.Errorf("%s: the chain changed", name)
		}
		if o := runWait(t, p, uplink("chat", 1, 1, "m")); string(o.Payload) != "m|k|v1" {
			t.Errorf("%s: after a bad reload: %q", name, o.Payload)
		}
	}
	for _, s := range before.steps {
		if s.inst.retired.Load() {
			t.Errorf("stage %s was retired by a failed reload", s.name)
		}
	}
}

func TestReloadRemovesAndPrunes(t *testing.T) {
	dir := t.TempDir()
	writePipeline(t, dir, "chat", versioned("v1"))
	writePipeline(t, dir, "default", fileYAML(stageYAML("dflt", "builtin:cfgtag", "uplink", "config: {tag: d}")))
	p := start(t, reloadConfig(dir))
	ver := p.chainOf("chat").steps[1].inst
	if err := ver.host.Put(context.Background(), "chat", "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}

	// Dropping the stage "ver" drops its state; "keep" stays.
	writePipeline(t, dir, "chat", fileYAML(stageYAML("keep", "builtin:cfgtag", "uplink", "config: {tag: k}")))
	if err := p.Reload("chat"); err != nil {
		t.Fatal(err)
	}
	if !ver.retired.Load() {
		t.Error("the removed stage is still running")
	}
	if _, ok := ver.scope.kv.get("chat", "k"); ok {
		t.Error("the removed stage's state survived")
	}
	if o := runWait(t, p, uplink("chat", 1, 1, "m")); string(o.Payload) != "m|k" {
		t.Errorf("after removing a stage: %q", o.Payload)
	}

	// Removing the file sends the app to the default pipeline.
	if err := os.Remove(filepath.Join(dir, "chat.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload("chat"); err != nil {
		t.Fatal(err)
	}
	if o := runWait(t, p, uplink("chat", 1, 2, "m")); string(o.Payload) != "m|d" {
		t.Errorf("after removing the file: %q", o.Payload)
	}
	// An app that had no file gets one.
	writePipeline(t, dir, "game", versioned("g"))
	if err := p.Reload("game"); err != nil {
		t.Fatal(err)
	}
	if o := runWait(t, p, uplink("game", 1, 1, "m")); string(o.Payload) != "m|k|g" {
		t.Errorf("new app: %q", o.Payload)
	}
}

func TestWatchReloads(t *testing.T) {
	dir := t.TempDir()
	writePipeline(t, dir, "chat", versioned("v1"))
	p := start(t, reloadConfig(dir))
	ctx, cancel := context.WithCancel(context.Background())
	watchErr := make(chan error, 1)
	go func() { watchErr <- p.Watch(ctx) }()

	// Watch may not be watching yet when the file is written: write until it is seen.
	var n atomic.Int64
	poll.Until(t, "the watcher to reload", func() bool {
		if n.Add(1)%200 == 1 {
			writePipeline(t, dir, "chat", versioned("v2"))
		}
		return string(runWait(t, p, uplink("chat", 1, uint64(n.Load()), "m")).Payload) == "m|k|v2"
	})
	// A broken edit is refused; the running chain stays.
	before := p.chainOf("chat")
	writePipeline(t, dir, "chat", "version: 2\n")
	time.Sleep(500 * time.Millisecond) // past the watcher's debounce
	if p.chainOf("chat") != before {
		t.Error("a broken file replaced the chain")
	}
	cancel()
	select {
	case err := <-watchErr:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Watch: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Watch did not return after its context ended")
	}
}
