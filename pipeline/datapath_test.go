package pipeline

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/stage"
)

// These tests run the stage data socket (sdk/stage rawdata.go) through the whole host: a real
// plugin process, its supervisor, and its failure policy.

// startLogged starts the pipelines of dir with env for plugins, logging to a capture.
func startLogged(t *testing.T, dir string, env ...string) (*Pipelines, *logCapture) {
	t.Helper()
	logs := &logCapture{}
	p, err := New(context.Background(), Config{Dir: dir, Env: env}, nil, slog.New(logs), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOK(t, p) })
	return p, logs
}

// dataPath is the data path of app's first stage's current process, after one batch.
func dataPath(t *testing.T, p *Pipelines, app string) string {
	t.Helper()
	pr := p.chainOf(app).steps[0].inst.cur.Load()
	if pr == nil {
		t.Fatal("no process")
	}
	return stage.DataPath(pr.pr)
}

// TestDataSocketCrashMidBatch: a plugin that dies with batches in flight on the data socket gets
// them the stage's failure policy, as on the gRPC stream, and is relaunched on the socket again.
func TestDataSocketCrashMidBatch(t *testing.T) {
	bin := testPlugin(t)
	dir := t.TempDir()
	to := "timeout: " + crashTimeout.String()
	writePipeline(t, dir, "open", fileYAML(stageYAML("tp", bin, "uplink", to, "on_failure: fail_open")))
	writePipeline(t, dir, "closed", fileYAML(stageYAML("tp", bin, "uplink", to, "on_failure: fail_closed")))
	p, logs := startLogged(t, dir)
	for _, app := range []string{"open", "closed"} {
		in := p.chainOf(app).steps[0].inst
		if o := runWait(t, p, uplink(app, 1, 1, "hi")); o.Verdict != stage.Continue || string(o.Payload) != "hi" {
			t.Fatalf("%s: before the crash: %+v", app, o)
		}
		if got := dataPath(t, p, app); got != stage.PathSocket {
			t.Fatalf("%s: data path %q, want %q", app, got, stage.PathSocket)
		}
		// A batch that sleeps in the plugin, in flight when another batch crashes it.
		inflight := make(chan Outcome, 1)
		if err := runRetry(p, uplink(app, 2, 1, "sleep"), func(o Outcome) { inflight <- o }); err != nil {
			t.Fatal(err)
		}
		o := runWait(t, p, uplink(app, 1, 2, "crash"))
		o2 := <-inflight
		for _, o := range []Outcome{o, o2} {
			switch app {
			case "open":
				if o.Verdict != stage.Continue {
					t.Errorf("fail_open after a crash: %+v", o)
				}
			case "closed":
				if o.Verdict != stage.Reject || o.Code != CodePipelineFailed {
					t.Errorf("fail_closed after a crash: %+v", o)
				}
			}
		}
		poll.Until(t, app+": the relaunch", func() bool { return in.restarts.Load() == 1 && in.cur.Load() != nil })
		if o := runWait(t, p, uplink(app, 1, 3, "after")); o.Verdict != stage.Continue || string(o.Payload) != "after" {
			t.Errorf("%s: after the relaunch: %+v", app, o)
		}
		if got := dataPath(t, p, app); got != stage.PathSocket {
			t.Errorf("%s: data path after the relaunch %q", app, got)
		}
	}
	if n := len(logs.matching("stage process crashed")); n != 2 {
		t.Errorf("%d crash lines, want 2", n)
	}
}

// TestDataSocketGarbageIsACrash: a plugin that writes a frame no SDK writes is cut off, its batch
// gets the failure policy, and the supervisor replaces it, saying why in the log.
func TestDataSocketGarbageIsACrash(t *testing.T) {
	bin := testPlugin(t)
	dir := t.TempDir()
	writePipeline(t, dir, "chat", fileYAML(stageYAML("tp", bin, "uplink", "timeout: "+crashTimeout.String(), "on_failure: fail_closed")))
	p, logs := startLogged(t, dir)
	in := p.chainOf("chat").steps[0].inst
	for i, c := range []struct{ payload, detail string }{
		{"garbage-frame", "bad frame on the data socket: frame of 4294967295 bytes, more than the limit"},
		{"garbage-results", "malformed result on the data socket"},
	} {
		pid := p.pluginPIDs()[0]
		o := runWait(t, p, uplink("chat", 1, uint64(10*i+1), c.payload))
		// The device hears only that the stage failed; the reason goes to the log below.
		if o.Verdict != stage.Reject || o.Code != CodePipelineFailed {
			t.Errorf("%s: %+v", c.payload, o)
		}
		poll.Until(t, c.payload+": the relaunch", func() bool { return in.restarts.Load() == int64(i+1) && in.cur.Load() != nil })
		waitGone(t, pid)
		poll.Until(t, c.payload+": the crash logged", func() bool {
			for _, r := range logs.matching("stage process crashed") {
				if r.attrs["reason"] == "unhealthy" && strings.Contains(r.attrs["detail"], c.detail) {
					return true
				}
			}
			return false
		})
		if o := runWait(t, p, uplink("chat", 1, uint64(10*i+2), "hi")); o.Verdict != stage.Continue || string(o.Payload) != "hi" {
			t.Errorf("%s: after the relaunch: %+v", c.payload, o)
		}
	}
}

// TestDataSocketOldPlugin: a plugin without the data socket (built against an older SDK, here
// PLATO_STAGE_RAW=off) keeps working over the gRPC stream, and is not taken for a faulty one.
func TestDataSocketOldPlugin(t *testing.T) {
	bin := testPlugin(t)
	dir := t.TempDir()
	writePipeline(t, dir, "chat", fileYAML(stageYAML("tp", bin, "uplink", "on_failure: fail_closed")))
	p, _ := startLogged(t, dir, "PLATO_STAGE_RAW=off")
	for i := range 5 {
		if o := runWait(t, p, uplink("chat", 1, uint64(i), "hi")); o.Verdict != stage.Continue || string(o.Payload) != "hi" {
			t.Fatalf("%d: %+v", i, o)
		}
	}
	if got := dataPath(t, p, "chat"); got != stage.PathGRPC {
		t.Fatalf("data path %q, want %q", got, stage.PathGRPC)
	}
	if n := p.chainOf("chat").steps[0].inst.restarts.Load(); n != 0 {
		t.Errorf("%d restarts", n)
	}
}
