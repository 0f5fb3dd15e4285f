package stage_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"github.com/platoim/plato/sdk/stage"
	"github.com/platoim/plato/sdk/stage/stagetest"
)

// These tests and benchmarks build internal/testplugin with `go build` and run it as a real
// plugin process, through go-plugin, exactly as the state server does.

const helperEnv = "PLATO_STAGE_TEST_HOST_HELPER" // set: this test binary plays a host (see runHostHelper)

func TestMain(m *testing.M) {
	if bin := os.Getenv(helperEnv); bin != "" {
		runHostHelper(bin)
		return
	}
	// The plugins these tests launch, and the ones they kill, make go-plugin's control sockets in
	// this directory (inherited through the environment) rather than leave them in the system's.
	sockDir, err := os.MkdirTemp("", "stage-test-sock-")
	if err == nil {
		_ = os.Setenv(plugin.EnvUnixSocketDir, sockDir)
	}
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	if sockDir != "" {
		_ = os.RemoveAll(sockDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// pluginBinary builds internal/testplugin once per test binary.
func pluginBinary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "stage-testplugin-"); buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "testplugin")
		cmd := exec.Command("go", "build", "-o", buildBin, "./internal/testplugin")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./internal/testplugin: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return buildBin
}

// lockedBuffer collects the host-side log (where go-plugin relays the plugin's stderr).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type running struct {
	client *plugin.Client
	proc   stage.Processor
	host   *stagetest.Host
	log    *lockedBuffer
}

func clientConfig(bin string, logOut io.Writer) *plugin.ClientConfig {
	return &plugin.ClientConfig{
		HandshakeConfig:  stage.Handshake,
		VersionedPlugins: stage.VersionedPlugins(),
		Cmd:              exec.Command(bin),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         os.Getenv("NOTLS") == "",
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "host", Output: logOut, Level: hclog.Info}),
	}
}

// startPlugin launches the test plugin, dispenses and inits it with a fake Host.
func startPlugin(tb testing.TB) *running {
	tb.Helper()
	return startPluginWith(tb, stage.VersionedPlugins())
}

// startPluginWith is startPlugin with the host side's plugin sets (stage.OldHostPlugins: a host
// without the HostCalls stream) and variables added to the plugin's environment.
func startPluginWith(tb testing.TB, plugins map[int]plugin.PluginSet, env ...string) *running {
	tb.Helper()
	r := &running{host: stagetest.NewHost(), log: &lockedBuffer{}}
	cfg := clientConfig(pluginBinary(tb), r.log)
	cfg.VersionedPlugins = plugins
	cfg.Cmd.Env = append(os.Environ(), env...)
	r.client = plugin.NewClient(cfg)
	tb.Cleanup(r.client.Kill)
	var err error
	if r.proc, err = stage.Dispense(r.client); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.proc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = r.proc.Init(ctx, stage.InitRequest{Pipeline: "demo", Stage: "test", Config: []byte(`{"a":1}`), Host: r.host})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func uplink(did string, seq uint64, payload string) stage.Event {
	return stage.Event{Signal: stage.SignalUplink, Conn: stage.Conn{AppID: "demo", DID: did, ConnID: 1, GatewayID: "gw"},
		Seq: seq, Payload: []byte(payload)}
}

func process(p stage.Processor, timeout time.Duration, events ...stage.Event) ([]stage.Reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	replies := make([]stage.Reply, len(events))
	return replies, p.Process(ctx, events, replies)
}

func TestRealPlugin(t *testing.T) {
	r := startPlugin(t)

	info, sigs, err := r.proc.Describe(context.Background())
	if err != nil || info != (stage.Info{Name: "testplugin", Version: "1.0.0"}) ||
		fmt.Sprint(sigs) != "[login uplink]" {
		t.Fatalf("describe: %+v %v %v", info, sigs, err)
	}

	replies, err := process(r.proc, 5*time.Second, uplink("d1", 1, "hello"), uplink("d1", 2, "reject"), uplink("d1", 3, "host"))
	if err != nil {
		t.Fatal(err)
	}
	if !replies[0].Replace || string(replies[0].Payload) != "hello" {
		t.Errorf("echo: %+v", replies[0])
	}
	if replies[1].Verdict != stage.Reject || replies[1].Code != 2001 {
		t.Errorf("reject: %+v", replies[1])
	}
	if string(replies[2].Payload) != "stored" {
		t.Errorf("host round trip: %+v", replies[2])
	}
	if p := r.host.Pushes(); len(p) != 1 || p[0].DIDs[0] != "d1" || string(p[0].Payload) != "pushed" {
		t.Errorf("pushes: %+v", p)
	}
	if v, ok := r.host.State("demo", "last:d1"); !ok || string(v) != "stored" {
		t.Errorf("state: %q %v", v, ok)
	}

	login := stage.Event{Signal: stage.SignalLogin, Conn: stage.Conn{AppID: "demo", DID: "d1"}, Token: "bad"}
	if replies, err := process(r.proc, 5*time.Second, login); err != nil || replies[0].Code != 2002 {
		t.Errorf("login: %v %+v", err, replies)
	}

	// A panic fails its batch only.
	_, err = process(r.proc, 5*time.Second, uplink("d1", 4, "ok"), uplink("d1", 5, "panic"))
	var be *stage.BatchError
	if !errors.As(err, &be) || !strings.Contains(be.Message, "panic payload") {
		t.Errorf("panic: %v", err)
	}

	// A deadline returns promptly.
	start := time.Now()
	if _, err := process(r.proc, 200*time.Millisecond, uplink("d1", 6, "sleep")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("sleep: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("deadline took %v", d)
	}

	// Printing to stdout after Serve (1 MiB) breaks nothing.
	for i := range 3 {
		if replies, err := process(r.proc, 10*time.Second, uplink("d1", uint64(10+i), "print")); err != nil || string(replies[0].Payload) != "print" {
			t.Fatalf("print %d: %v %+v", i, err, replies)
		}
	}
	if replies, err := process(r.proc, 5*time.Second, uplink("d1", 20, "after")); err != nil || string(replies[0].Payload) != "after" {
		t.Fatalf("after print: %v %+v", err, replies)
	}

	// The plugin's slog line reached the host's log at its level, under the plugin's name.
	if log := r.log.String(); !regexpMatch(`\[INFO\] +host\.testplugin: testplugin initialised: .*pipeline=demo`, log) {
		t.Errorf("plugin log not relayed at INFO; host log:\n%s", log)
	}
	if r.client.Exited() {
		t.Error("plugin exited")
	}
}

// A plugin of this SDK still reaches a host from before the HostCalls stream, by unary calls.
func TestRealPluginOldHost(t *testing.T) {
	r := startPluginWith(t, stage.OldHostPlugins())
	for i := range 3 {
		replies, err := process(r.proc, 5*time.Second, uplink("d1", uint64(i), "host"))
		if err != nil || string(replies[0].Payload) != "stored" {
			t.Fatalf("host round trip %d: %v %+v", i, err, replies)
		}
	}
	if p := r.host.Pushes(); len(p) != 3 {
		t.Errorf("pushes: %+v", p)
	}
}

func TestRealPluginKilledMidStream(t *testing.T) {
	r := startPlugin(t)
	if _, err := process(r.proc, 5*time.Second, uplink("d1", 1, "warm")); err != nil {
		t.Fatal(err)
	}
	const waiters = 8
	errs := make(chan error, waiters)
	for i := range waiters {
		go func() {
			_, err := process(r.proc, 30*time.Second, uplink("d1", uint64(i), "sleep"))
			errs <- err
		}()
	}
	time.Sleep(200 * time.Millisecond) // let the batches reach the plugin
	pid := r.client.ReattachConfig().Pid
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for range waiters {
		select {
		case err := <-errs:
			if err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("waiter: %v, want the broken stream's error", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a Process call hung after the plugin was killed")
		}
	}
	t.Logf("all waiters failed %v after SIGKILL", time.Since(killed))
	start := time.Now()
	if _, err := process(r.proc, 10*time.Second, uplink("d1", 99, "x")); err == nil {
		t.Error("Process succeeded on a dead plugin")
	} else if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Process on a dead plugin took %v: %v", d, err)
	}
}

// TestPluginExitsWhenHostIsKilled starts a host (this test binary, see runHostHelper) that starts
// the plugin, SIGKILLs the host, and expects the orphaned plugin to exit by itself.
func TestPluginExitsWhenHostIsKilled(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("checks processes through /proc")
	}
	bin := pluginBinary(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+bin)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the helper's plugin pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "plugin pid ")))
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if !alive(pid) {
		t.Fatal("plugin not running before the host was killed")
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatal("plugin still running 5s after its host was SIGKILLed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runHostHelper is the host of TestPluginExitsWhenHostIsKilled: it starts the plugin, prints its
// pid, and waits to be killed.
func runHostHelper(bin string) {
	c := plugin.NewClient(clientConfig(bin, os.Stderr))
	p, err := stage.Dispense(c)
	if err == nil {
		_, _, err = p.Describe(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "host helper:", err)
		c.Kill()
		os.Exit(1)
	}
	fmt.Printf("plugin pid %d\n", c.ReattachConfig().Pid)
	select {}
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

// benchStage is BenchmarkProcess's in-process stage: the test plugin's echo path.
type benchStage struct{}

func (benchStage) Info() stage.Info                              { return stage.Info{Name: "bench"} }
func (benchStage) Init(context.Context, stage.InitRequest) error { return nil }
func (benchStage) OnUplink(_ context.Context, ev *stage.UplinkEvent) stage.Reply {
	return stage.Rewrite(ev.Payload)
}

var benchBatches = []int{1, 16, 256}

// benchEvents is a batch of n uplinks of 128-byte payloads from n connections.
func benchEvents(n int) []stage.Event {
	payload := bytes.Repeat([]byte("p"), 128)
	evs := make([]stage.Event, n)
	for i := range evs {
		evs[i] = stage.Event{Signal: stage.SignalUplink, Seq: uint64(i), Payload: payload,
			Conn: stage.Conn{AppID: "demo", DID: fmt.Sprintf("device-%06d", i), UID: "user", ConnID: uint64(i),
				GatewayID: "gw-1", RemoteAddr: "10.0.0.1:50000"},
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	}
	return evs
}

// cpuMeter reports the CPU time the host (this process) and the plugin process spent during a
// benchmark, per message, next to wall time: on a small machine the two processes compete for
// cores, and CPU time is the cost that scales.
type cpuMeter struct {
	pluginPID        int
	host0, plugin0   time.Duration
	hostOK, pluginOK bool
}

func startCPU(pluginPID int) *cpuMeter {
	m := &cpuMeter{pluginPID: pluginPID}
	m.host0, m.hostOK = hostCPU()
	m.plugin0, m.pluginOK = procCPU(pluginPID)
	return m
}

func (m *cpuMeter) report(b *testing.B, msgs int) { m.reportPer(b, msgs, "msg") }

// reportPer reports the CPU time per unit, n units in all: each process's, and their sum.
func (m *cpuMeter) reportPer(b *testing.B, n int, unit string) {
	h, ok := hostCPU()
	if !ok || !m.hostOK {
		return
	}
	host := float64((h - m.host0).Nanoseconds()) / float64(n)
	b.ReportMetric(host, "host-cpu-ns/"+unit)
	if m.pluginPID == 0 {
		b.ReportMetric(host, "cpu-ns/"+unit)
		return
	}
	if p, ok := procCPU(m.pluginPID); ok && m.pluginOK {
		plugin := float64((p - m.plugin0).Nanoseconds()) / float64(n)
		b.ReportMetric(plugin, "plugin-cpu-ns/"+unit)
		b.ReportMetric(host+plugin, "cpu-ns/"+unit)
	}
}

func hostCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// procCPU reads a process's user+system time from /proc (Linux; clock ticks of 10ms).
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, true
}

// BenchmarkProcess measures the per-message cost of Process, one caller at a time, through a real
// plugin process (go-plugin, AutoMTLS control channel) on each data path: "socket" (the data
// socket, raw frames over a unix socket) and "grpc" (the gRPC Process stream, as a plugin without
// the socket gets: PLATO_STAGE_RAW=off), and InProcess. An op is one batch; ns/msg is the wall
// time per message; host-cpu-ns/msg and plugin-cpu-ns/msg are each process's CPU time per message
// (getrusage of this process; /proc/<pid>/stat of the plugin) and cpu-ns/msg their sum; load1 is
// the machine's 1-minute load average when the sub-benchmark ended. allocs/op and B/op count the
// host process only.
func BenchmarkProcess(b *testing.B) {
	var profile []string // PLATO_TESTPLUGIN_CPUPROFILE for the socket's plugin: see internal/testplugin
	if v := os.Getenv("PLATO_TESTPLUGIN_CPUPROFILE"); v != "" {
		profile = append(profile, "PLATO_TESTPLUGIN_CPUPROFILE="+v)
	}
	sock := startPluginWith(b, stage.VersionedPlugins(), append(profile, strings.Fields(os.Getenv("PLATO_BENCH_PLUGIN_ENV"))...)...)
	grpcOnly := startPluginWith(b, stage.VersionedPlugins(), "PLATO_STAGE_RAW=off", "PLATO_TESTPLUGIN_CPUPROFILE=")
	procs := []struct {
		name string
		p    stage.Processor
		pid  int
		path string
	}{
		{"socket", sock.proc, sock.client.ReattachConfig().Pid, stage.PathSocket},
		{"grpc", grpcOnly.proc, grpcOnly.client.ReattachConfig().Pid, stage.PathGRPC},
		{"inprocess", stage.InProcess(benchStage{}), 0, stage.PathInProcess},
	}
	// Batch size outside, path inside: the paths of one size run back to back, under about the
	// same load on a shared machine.
	for _, n := range benchBatches {
		for _, pr := range procs {
			b.Run(fmt.Sprintf("%s/batch=%d", pr.name, n), func(b *testing.B) {
				events, replies := benchEvents(n), make([]stage.Reply, n)
				ctx := context.Background()
				if err := pr.p.Process(ctx, events, replies); err != nil { // opens the stream
					b.Fatal(err)
				}
				if got := stage.DataPath(pr.p); got != pr.path {
					b.Fatalf("data path %q, want %q", got, pr.path)
				}
				b.ReportAllocs()
				b.ResetTimer()
				cpu := startCPU(pr.pid)
				for range b.N {
					if err := pr.p.Process(ctx, events, replies); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
				cpu.report(b, b.N*n)
				reportLoad(b)
			})
		}
	}
}

// reportLoad reports the 1-minute load average, so that a figure carries the machine's state.
func reportLoad(b *testing.B) {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return
	}
	if f := strings.Fields(string(raw)); len(f) > 0 {
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			b.ReportMetric(v, "load1")
		}
	}
}

// BenchmarkProcessParallel is BenchmarkProcess with GOMAXPROCS callers sharing the plugin's one
// stream, as the state server's lanes do: ns/msg is wall time over all messages (throughput).
func BenchmarkProcessParallel(b *testing.B) {
	r := startPlugin(b)
	for _, n := range benchBatches {
		b.Run(fmt.Sprintf("plugin/batch=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU(r.client.ReattachConfig().Pid)
			b.RunParallel(func(pb *testing.PB) {
				events, replies := benchEvents(n), make([]stage.Reply, n)
				for pb.Next() {
					if err := r.proc.Process(context.Background(), events, replies); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
			cpu.report(b, b.N*n)
		})
	}
}

// BenchmarkDescribeRoundTrip is one unary gRPC call to the same plugin process: the machine's
// floor for a host<->plugin round trip, to read BenchmarkProcess's batch=1 against.
func BenchmarkDescribeRoundTrip(b *testing.B) {
	r := startPlugin(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, _, err := r.proc.Describe(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHostCall measures a stage's Host calls through a real plugin process: the plugin's
// handler makes b.N ops against the host's Host within one batch (internal/testplugin,
// "hostbench"), so an op is the Host calls alone. put-get is a Put then a Get of a 64-byte value
// (two calls), set-timer one SetTimer. "unary" is a host without the HostCalls stream (one unary
// gRPC call per Host call, as before the stream), "stream" the stream. callers=8 makes the ops
// from 8 goroutines at once, as concurrent batches do. host-cpu-ns/op and plugin-cpu-ns/op are
// each process's CPU time per op (the host's is the state server's cost); allocs/op and B/op
// count the host process only.
func BenchmarkHostCall(b *testing.B) {
	transports := []struct {
		name string
		r    *running
	}{{"unary", startPluginWith(b, stage.OldHostPlugins())}, {"stream", startPlugin(b)}}
	for _, op := range []string{"put-get", "set-timer"} {
		for _, callers := range []int{1, 8} {
			for _, tr := range transports {
				b.Run(fmt.Sprintf("%s/callers=%d/%s", op, callers, tr.name), func(b *testing.B) {
					hostBench(b, tr.r, op, 16, callers) // the first call opens the stream, or finds none
					b.ReportAllocs()
					b.ResetTimer()
					cpu := startCPU(tr.r.client.ReattachConfig().Pid)
					hostBench(b, tr.r, op, b.N, callers)
					cpu.reportPer(b, b.N, "op")
				})
			}
		}
	}
}

// hostBench has the test plugin make n ops from callers goroutines, in one batch without deadline.
func hostBench(b *testing.B, r *running, op string, n, callers int) {
	b.Helper()
	ev := uplink("bench", 1, fmt.Sprintf("hostbench:%s:%d:%d", op, n, callers))
	replies := make([]stage.Reply, 1)
	if err := r.proc.Process(context.Background(), []stage.Event{ev}, replies); err != nil {
		b.Fatal(err)
	}
	if replies[0].Verdict != stage.Continue || string(replies[0].Payload) != "ok" {
		b.Fatalf("hostbench: %+v", replies[0])
	}
}

// A plugin process runs with the SDK's heap floor (stage.PluginGCHeapFloor): a GOGC over 100 while
// it holds little, and the GOGC of its environment when one is set there.
func TestPluginRunsWithTheHeapFloor(t *testing.T) {
	for _, c := range []struct {
		env  []string
		want func(int) bool
		what string
	}{
		{nil, func(p int) bool { return p > 100 }, "over 100"},
		{[]string{"GOGC=100"}, func(p int) bool { return p == 100 }, "100, as its environment says"},
	} {
		r := startPluginWith(t, stage.VersionedPlugins(), c.env...)
		replies, err := process(r.proc, 10*time.Second, uplink("d1", 1, "gogc"))
		if err != nil {
			t.Fatal(err)
		}
		p, err := strconv.Atoi(string(replies[0].Payload))
		if err != nil || !c.want(p) {
			t.Errorf("with environment %q the plugin runs with GOGC %q, want %s", c.env, replies[0].Payload, c.what)
		}
	}
}
