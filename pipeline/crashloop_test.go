package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/stage"
)

// crashTimeout is the stage timeout of the crash-loop tests: long, so that a signal that waited
// on a dead process instead of getting the failure policy would show.
const crashTimeout = 20 * time.Second

// TestPluginCrashLoop SIGKILLs a stage's plugin 20 times under traffic. Each time it comes back
// and serves; every signal is answered by the stage or, while it is down, by its fail_closed
// policy (1306) without waiting out the stage's timeout; the fifth crash within the window opens
// the breaker, which the log (with the plugin's last stderr lines), the metrics and FailingStages
// show; once a process stays up, the breaker closes; and every killed process was reaped.
func TestPluginCrashLoop(t *testing.T) {
	const kills, crashes = 20, 5
	bin := testPlugin(t)
	dir := t.TempDir()
	writePipeline(t, dir, "chat", fileYAML(stageYAML("tp", bin, "uplink", "timeout: "+crashTimeout.String(), "on_failure: fail_closed")))
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	logs := &logCapture{}
	p, err := New(context.Background(), Config{Dir: dir, Lanes: 4, Breaker: BreakerConfig{
		Crashes: crashes, Window: time.Minute, ProbeInterval: 200 * time.Millisecond, RecoverAfter: 1500 * time.Millisecond,
	}}, nil, slog.New(logs), meter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOK(t, p) })
	in := p.chainOf("chat").steps[0].inst

	tr := startTimedTraffic(t, p, "chat", 4)
	var killed []int
	for i := range kills {
		pid := p.pluginPIDs()[0]
		seen := tr.total()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed = append(killed, pid)
		poll.Until(t, fmt.Sprintf("kill %d: the plugin back", i+1), func() bool {
			pids := p.pluginPIDs()
			return len(pids) == 1 && pids[0] != pid && alive(pids[0])
		})
		poll.Until(t, fmt.Sprintf("kill %d: traffic through the new process", i+1), func() bool { return tr.okSince(seen) })
		if i+1 == crashes {
			poll.Until(t, "the breaker to open", func() bool { return in.breaker.isOpen() })
			f := p.FailingStages()
			if len(f) != 1 || f[0].App != "chat" || f[0].Stage != "tp" || f[0].Crashes < crashes || f[0].RecentCrashes != crashes ||
				f[0].LastReason == "" || f[0].OpenSince.IsZero() {
				t.Errorf("failing stages after %d crashes: %+v", crashes, f)
			}
			if g := gauge(t, reader, "plato_pipeline_stage_breaker_state", "tp"); g < int64(breakerHalfOpen) {
				t.Errorf("breaker gauge after %d crashes: %d", crashes, g)
			}
		}
	}
	tr.stop()
	ok, policy, slowest := tr.result(t)
	if ok == 0 || policy == 0 {
		t.Errorf("%d signals through, %d answered by the policy: the crashes caught none, or nothing got through", ok, policy)
	}
	if slowest >= crashTimeout/4 {
		t.Errorf("a signal caught in a crash waited %v for its answer (stage timeout %v): it waited on a dead process", slowest, crashTimeout)
	}
	t.Logf("%d kills: %d signals through, %d answered 1306 by the policy, the slowest of those in %v", kills, ok, policy, slowest)

	// No kill left a zombie: each process was reaped.
	for _, pid := range killed {
		poll.Until(t, fmt.Sprintf("killed plugin %d to be reaped", pid), func() bool { return !zombieChild(pid) })
	}
	if z := zombieChildren(); len(z) > 0 {
		t.Errorf("zombie children: %v", z)
	}

	// Left alone, the last process stays up and closes the breaker.
	poll.Until(t, "the breaker to close", func() bool { return in.breakerState() == breakerClosed })
	if f := p.FailingStages(); len(f) != 0 {
		t.Errorf("failing stages after recovery: %+v", f)
	}
	if g := gauge(t, reader, "plato_pipeline_stage_breaker_state", "tp"); g != int64(breakerClosed) {
		t.Errorf("breaker gauge after recovery: %d", g)
	}
	got := counters(t, reader)
	total := int64(0)
	for r := range numCrashReasons {
		total += got["plato_pipeline_stage_crashes_total{"+r.String()+"}/tp"]
	}
	if total != kills || got["plato_pipeline_stage_crashes_total{start_failed}/tp"] != 0 || got["plato_pipeline_stage_restarts_total/tp"] != kills {
		t.Errorf("crashes %d (want %d), counters %v", total, kills, got)
	}

	// The log: a line per crash carrying the plugin's last stderr lines (the test plugin logs
	// "testplugin initialised" there at Init), one error when the breaker opened, one line when it
	// closed.
	poll.Until(t, "a log line per crash", func() bool {
		return logs.count(slog.LevelWarn, "stage process crashed")+logs.count(slog.LevelError, "crash-looping") >= kills
	})
	if n := logs.count(slog.LevelError, "crash-looping"); n < 1 {
		t.Error("no error line for the crash loop")
	}
	for _, r := range logs.matching("stage process crashed") {
		if !strings.Contains(r.attrs["stderr"], "testplugin initialised") || r.attrs["exit"] != "signal: killed" || r.attrs["reason"] != "exited" {
			t.Errorf("crash line without the plugin's stderr or exit: %v", r.attrs)
			break
		}
	}
	// The supervisor closes the breaker and then logs it: the line may come a moment after.
	poll.Until(t, "a log line for the recovery", func() bool {
		return logs.count(slog.LevelInfo, "pipeline stage recovered") >= 1
	})
}

// TestPluginCrashLoopWhileDown replaces a stage's binary with one that cannot start, kills its
// plugin, and checks: the failed launches open the breaker with the stage down ("open"), the
// log says why with the binary's stderr, signals get each stage's policy at once (fail_closed:
// 1306, fail_open: skipped), and once the binary is fixed the probes bring it back and the
// breaker closes.
func TestPluginCrashLoopWhileDown(t *testing.T) {
	bin := testPlugin(t)
	path := filepath.Join(t.TempDir(), "tp")
	copyFile(t, bin, path)
	dir := t.TempDir()
	writePipeline(t, dir, "closed", fileYAML(stageYAML("tp", path, "uplink", "timeout: "+crashTimeout.String(), "on_failure: fail_closed")))
	writePipeline(t, dir, "open", fileYAML(
		stageYAML("tp", path, "uplink", "timeout: "+crashTimeout.String(), "on_failure: fail_open"),
		stageYAML("after", "builtin:tag", "uplink"),
	))
	logs := &logCapture{}
	p, err := New(context.Background(), Config{Dir: dir, Builtins: map[string]func() stage.Stage{"tag": builtin("tag", tagStage)},
		Breaker: BreakerConfig{Crashes: 3, Window: time.Minute, ProbeInterval: 100 * time.Millisecond, RecoverAfter: time.Second}},
		nil, slog.New(logs), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOK(t, p) })
	closed, open := p.chainOf("closed").steps[0].inst, p.chainOf("open").steps[0].inst

	broken := filepath.Join(t.TempDir(), "broken")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho 'tp: cannot start: config missing' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, broken, path)
	for _, pid := range p.pluginPIDs() {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, "both breakers open with the stage down", func() bool {
		return closed.breakerState() == breakerOpen && open.breakerState() == breakerOpen
	})
	for i := range 10 {
		start := time.Now()
		o := runWait(t, p, uplink("closed", 1, uint64(i+1), "m"))
		if o.Verdict != stage.Reject || o.Code != CodePipelineFailed || o.Stage != "tp" {
			t.Errorf("fail_closed while down: %+v", o)
		}
		o2 := runWait(t, p, uplink("open", 1, uint64(i+1), "m"))
		if o2.Verdict != stage.Continue || string(o2.Payload) != "m|after" {
			t.Errorf("fail_open while down: %+v %q", o2, o2.Payload)
		}
		if took := time.Since(start); took >= crashTimeout/4 {
			t.Errorf("two signals of a stage that is down took %v", took)
		}
	}
	f := p.FailingStages()
	if len(f) != 2 || f[0].App != "closed" || f[1].App != "open" || f[0].Breaker != "open" || f[0].LastReason != "start_failed" {
		t.Errorf("failing stages: %+v", f)
	}
	poll.Until(t, "the launch failures logged with the binary's stderr", func() bool {
		for _, r := range logs.matching("crash") {
			if r.attrs["reason"] == "start_failed" && strings.Contains(r.attrs["error"], "tp: cannot start: config missing") {
				return true
			}
		}
		return false
	})

	// Fixed: the next probe brings it back, and it stays up.
	copyFile(t, bin, path)
	poll.Until(t, "both breakers closed", func() bool {
		return closed.breakerState() == breakerClosed && open.breakerState() == breakerClosed
	})
	if o := runWait(t, p, uplink("closed", 1, 100, "m")); o.Verdict != stage.Continue || string(o.Payload) != "m" {
		t.Errorf("after the fix: %+v", o)
	}
	if z := zombieChildren(); len(z) > 0 {
		t.Errorf("zombie children: %v", z)
	}
}

// TestPluginPanicIsLogged: a plugin that dies of a panic in a goroutine of its own (which the SDK
// cannot recover) is relaunched, and the log line of its crash carries the panic.
func TestPluginPanicIsLogged(t *testing.T) {
	bin := testPlugin(t)
	dir := t.TempDir()
	writePipeline(t, dir, "chat", fileYAML(stageYAML("tp", bin, "uplink", "timeout: "+crashTimeout.String(), "on_failure: fail_open")))
	logs := &logCapture{}
	p, err := New(context.Background(), Config{Dir: dir}, nil, slog.New(logs), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOK(t, p) })
	in := p.chainOf("chat").steps[0].inst
	start := time.Now()
	if o := runWait(t, p, uplink("chat", 1, 1, "crash")); o.Verdict != stage.Continue || string(o.Payload) != "crash" {
		t.Errorf("the crashing signal, fail_open: %+v %q", o, o.Payload)
	}
	if took := time.Since(start); took >= crashTimeout/4 {
		t.Errorf("the crashing signal was answered after %v", took)
	}
	poll.Until(t, "the relaunch", func() bool { return in.restarts.Load() == 1 && in.cur.Load() != nil })
	if o := runWait(t, p, uplink("chat", 1, 2, "hi")); o.Verdict != stage.Continue || string(o.Payload) != "hi" {
		t.Errorf("after the relaunch: %+v", o)
	}
	poll.Until(t, "the crash logged with its panic", func() bool {
		for _, r := range logs.matching("stage process crashed") {
			if strings.Contains(r.attrs["stderr"], "panic: testplugin: crash payload") && strings.Contains(r.attrs["exit"], "exit status 2") {
				return true
			}
		}
		return false
	})
}

// timedTraffic runs signals through one app from a few connections, each waiting for its answer
// before sending the next, and keeps how each was answered and how long that took.
type timedTraffic struct {
	done    chan struct{}
	wg      sync.WaitGroup
	n       atomic.Int64 // signals answered
	lastOK  atomic.Int64 // n at the latest answer through the stage
	mu      sync.Mutex
	ok      int
	policy  int
	odd     []string
	slowest time.Duration // of the policy answers
}

func startTimedTraffic(t *testing.T, p *Pipelines, app string, conns int) *timedTraffic {
	tr := &timedTraffic{done: make(chan struct{})}
	for c := range conns {
		tr.wg.Go(func() {
			for seq := uint64(1); ; seq++ {
				select {
				case <-tr.done:
					return
				default:
				}
				start := time.Now()
				o := runWait(t, p, uplink(app, uint64(c), seq, "m"))
				took := time.Since(start)
				n := tr.n.Add(1)
				tr.mu.Lock()
				switch {
				case o.Verdict == stage.Continue && string(o.Payload) == "m":
					tr.ok++
					tr.lastOK.Store(n)
				case o.Verdict == stage.Reject && o.Code == CodePipelineFailed && o.Stage == "tp":
					tr.policy++
					tr.slowest = max(tr.slowest, took)
				default:
					tr.odd = append(tr.odd, fmt.Sprintf("conn %d seq %d: %+v", c, seq, o))
				}
				tr.mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		})
	}
	return tr
}

func (tr *timedTraffic) total() int64 { return tr.n.Load() }

// okSince reports whether a signal answered after the first seen went through the stage.
func (tr *timedTraffic) okSince(seen int64) bool { return tr.lastOK.Load() > seen }

func (tr *timedTraffic) stop() {
	close(tr.done)
	tr.wg.Wait()
}

func (tr *timedTraffic) result(t *testing.T) (ok, policy int, slowest time.Duration) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for i, o := range tr.odd {
		if i == 5 {
			break
		}
		t.Errorf("neither the stage's answer nor its policy's: %s", o)
	}
	return tr.ok, tr.policy, tr.slowest
}

// logCapture is a slog.Handler keeping every record, its attributes as text.
type logCapture struct {
	mu   sync.Mutex
	recs []logRec
}

type logRec struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	rec := logRec{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, rec)
	l.mu.Unlock()
	return nil
}

func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCapture) WithGroup(string) slog.Handler      { return l }

func (l *logCapture) matching(substr string) []logRec {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logRec
	for _, r := range l.recs {
		if strings.Contains(r.msg, substr) {
			out = append(out, r)
		}
	}
	return out
}

func (l *logCapture) count(level slog.Level, substr string) int {
	n := 0
	for _, r := range l.matching(substr) {
		if r.level == level {
			n++
		}
	}
	return n
}

// gauge reads an int64 gauge's value for one stage.
func gauge(t *testing.T, r *sdkmetric.ManualReader, name, stageName string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == name {
				for _, dp := range g.DataPoints {
					if v, ok := dp.Attributes.Value("stage"); ok && v.AsString() == stageName {
						return dp.Value
					}
				}
			}
		}
	}
	t.Fatalf("no %s for stage %s", name, stageName)
	return 0
}

// zombieChild reports whether pid is a zombie child of this process: exited and never reaped.
func zombieChild(pid int) bool {
	state, ppid, ok := procStat(pid)
	return ok && state == 'Z' && ppid == os.Getpid()
}

// zombieChildren lists this process's zombie children.
func zombieChildren() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && zombieChild(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// procStat reads the state and parent of pid from /proc/<pid>/stat.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0, 0, false
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0][0], ppid, err == nil
}

// copyFile copies src over dst by rename, as an install would: a running binary is never
// written into (ETXTBSY).
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}
