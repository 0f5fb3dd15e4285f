package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// Generous: these tests check behaviour, not speed, and must pass on a loaded CI box.
const waitLimit = 10 * time.Second

// fnStage is an in-process test stage: it handles every signal through fn.
type fnStage struct {
	name string
	fn   func(ctx context.Context, st *fnStage, ev stage.Event) stage.Reply
	// Set by Init.
	req stage.InitRequest
}

func (s *fnStage) Info() stage.Info { return stage.Info{Name: s.name, Version: "test"} }

func (s *fnStage) Init(_ context.Context, req stage.InitRequest) error {
	s.req = req
	return nil
}

func (s *fnStage) handle(ctx context.Context, ev stage.Event) stage.Reply {
	if s.fn == nil {
		return stage.Reply{}
	}
	return s.fn(ctx, s, ev)
}

func (s *fnStage) OnLogin(ctx context.Context, ev *stage.LoginEvent) stage.Reply {
	return s.handle(ctx, stage.Event{Signal: stage.SignalLogin, Conn: ev.Conn, Seq: ev.Seq, Token: ev.Token})
}

func (s *fnStage) OnUplink(ctx context.Context, ev *stage.UplinkEvent) stage.Reply {
	return s.handle(ctx, stage.Event{Signal: stage.SignalUplink, Conn: ev.Conn, Seq: ev.Seq, Payload: ev.Payload})
}

func (s *fnStage) OnDownlink(ctx context.Context, ev *stage.DownlinkEvent) stage.Reply {
	return s.handle(ctx, stage.Event{Signal: stage.SignalDownlink, Conn: ev.Conn, Seq: ev.Seq, MsgID: ev.MsgID, Payload: ev.Payload})
}

func (s *fnStage) OnDownlinkAck(ctx context.Context, ev *stage.DownlinkAckEvent) stage.Reply {
	return s.handle(ctx, stage.Event{Signal: stage.SignalDownlinkAck, Conn: ev.Conn, Seq: ev.Seq, MsgID: ev.MsgID})
}

func (s *fnStage) OnHeartbeat(ctx context.Context, ev *stage.HeartbeatEvent) stage.Reply {
	return s.handle(ctx, stage.Event{Signal: stage.SignalHeartbeat, Conn: ev.Conn, Seq: ev.Seq})
}

func (s *fnStage) OnDisconnect(ctx context.Context, ev *stage.DisconnectEvent) stage.Reply {
	return s.handle(ctx, stage.Event{Signal: stage.SignalDisconnect, Conn: ev.Conn, Reason: ev.Reason})
}

func (s *fnStage) OnRetransmit(ctx context.Context, ev *stage.RetransmitEvent) stage.Reply {
	return s.handle(ctx, stage.Event{Signal: stage.SignalRetransmit, Conn: ev.Conn, Seq: ev.Seq, MsgID: ev.MsgID, QoS: ev.QoS, Attempts: ev.Attempts})
}

func (s *fnStage) OnTimer(ctx context.Context, ev *stage.TimerEvent) stage.Reply {
	return s.handle(ctx, stage.Event{Signal: stage.SignalTimer, Conn: stage.Conn{AppID: ev.AppID}, TimerKey: ev.Key, TimerData: ev.Data})
}

// builtin returns a Builtins factory of fnStages running fn.
func builtin(name string, fn func(ctx context.Context, st *fnStage, ev stage.Event) stage.Reply) func() stage.Stage {
	return func() stage.Stage { return &fnStage{name: name, fn: fn} }
}

// tagStage appends "<stage name>" (from Init) to the uplink payload: a visible trace of the stages
// a signal went through.
func tagStage(ctx context.Context, st *fnStage, ev stage.Event) stage.Reply {
	if ev.Signal != stage.SignalUplink {
		return stage.Reply{}
	}
	out := append([]byte(nil), ev.Payload...)
	out = append(out, '|')
	out = append(out, st.req.Stage...)
	return stage.Rewrite(out)
}

// writePipeline writes dir/<app>.yaml.
func writePipeline(t testing.TB, dir, app, body string) {
	t.Helper()
	path := filepath.Join(dir, app+".yaml")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	// Rename, as editors do, so a watcher never sees half a file.
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// loadedTimeout is the stage timeout of every test stage whose test is not about timeouts. A stage
// call is timed by the wall clock, and on a loaded machine the whole test process stops for long
// stretches: at load average ~17 on 2 cores each of a GC cycle's two stop-the-world phases took
// 40-140 ms (waiting for a descheduled thread to reach a safe point), a cycle came every ~0.5 s,
// and every lane's in-flight call ended at the same instant 200-680 ms after it started. The
// default timeout (500ms) then failed calls of in-process stages that do microseconds of work.
// Tests about timeouts set their own, with stages that are late by construction.
const loadedTimeout = "timeout: 30s"

// stageYAML renders one stage entry; without a timeout in extra, it gets loadedTimeout.
func stageYAML(name, plugin, signals string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - name: %s\n    plugin: %s\n    signals: [%s]\n", name, plugin, signals)
	timed := false
	for _, e := range extra {
		fmt.Fprintf(&b, "    %s\n", e)
		timed = timed || strings.HasPrefix(e, "timeout:")
	}
	if !timed {
		fmt.Fprintf(&b, "    %s\n", loadedTimeout)
	}
	return b.String()
}

func fileYAML(stages ...string) string {
	if len(stages) == 0 {
		return "version: 1\nstages: []\n"
	}
	return "version: 1\nstages:\n" + strings.Join(stages, "")
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// start makes a Pipelines over dir and closes it when the test ends.
func start(t testing.TB, cfg Config) *Pipelines {
	t.Helper()
	p, err := New(context.Background(), cfg, nil, testLogger(t), nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { closeOK(t, p) })
	return p
}

func closeOK(t testing.TB, p *Pipelines) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// runWait runs ev and waits for its outcome.
func runWait(t testing.TB, p *Pipelines, ev stage.Event) Outcome {
	t.Helper()
	ch := make(chan Outcome, 1)
	if err := runRetry(p, ev, func(o Outcome) { ch <- o }); err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case o := <-ch:
		return o
	case <-time.After(waitLimit):
		t.Fatal("no outcome")
		return Outcome{}
	}
}

// runRetry runs ev, retrying while its lane is full.
func runRetry(p *Pipelines, ev stage.Event, done func(Outcome)) error {
	for {
		err := p.Run(ev, done)
		if !errors.Is(err, ErrBackpressure) {
			return err
		}
		runtime.Gosched()
	}
}

func uplink(app string, conn uint64, seq uint64, payload string) stage.Event {
	return stage.Event{
		Signal:  stage.SignalUplink,
		Conn:    stage.Conn{AppID: app, DID: fmt.Sprintf("d%d", conn), ConnID: conn, GatewayID: "gw1"},
		Seq:     seq,
		Payload: []byte(payload),
	}
}

// recorder collects outcomes per connection in the order done was called, and checks each
// connection's sequence numbers come back in Run order.
type recorder struct {
	mu      sync.Mutex
	byConn  map[uint64][]rec
	total   int
	errs    []string
	started map[uint64]uint64 // last seq Run per conn
}

type rec struct {
	seq uint64
	out Outcome
}

func newRecorder() *recorder {
	return &recorder{byConn: map[uint64][]rec{}, started: map[uint64]uint64{}}
}

// done returns the callback for the signal (conn, seq).
func (r *recorder) done(conn, seq uint64) func(Outcome) {
	return func(o Outcome) {
		r.mu.Lock()
		defer r.mu.Unlock()
		l := r.byConn[conn]
		if n := len(l); n > 0 && l[n-1].seq >= seq {
			r.errs = append(r.errs, fmt.Sprintf("conn %d: seq %d done after %d", conn, seq, l[n-1].seq))
		}
		r.byConn[conn] = append(l, rec{seq, o})
		r.total++
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

func (r *recorder) check(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range r.errs {
		if i == 10 {
			t.Errorf("... and %d more", len(r.errs)-10)
			break
		}
		t.Error(e)
	}
}
