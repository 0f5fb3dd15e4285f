package bench

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/examples/demo"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/testkit"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
)

// workerEnv makes the test binary a bench worker: the worker-process path runs without building
// plato, the way `plato bench --worker` does.
const workerEnv = "PLATO_BENCH_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(platoRoleEnv) == "1" {
		os.Exit(runTestPlato())
	}
	if os.Getenv(workerEnv) == "1" {
		if err := RunWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testWorkerCommand re-executes this test binary as a worker.
func testWorkerCommand() *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerEnv+"=1")
	return cmd
}

// testPlatform runs NATS, state, gateway, ipconf and the demo business server in-process, as
// `plato up` does, on free ports. sink, when set, is where app "bench" is routed instead of the
// demo: the bench's own business server (Options.Business).
func testPlatform(t *testing.T, sink string, mutate ...func(*config.Config)) *platform.Platform {
	t.Helper()
	cfg := platformtest.Config(t)
	for _, m := range mutate {
		m(&cfg)
	}
	platformtest.SetBusiness(&cfg, cfg.Demo.Addr) // the demo's actual address once it listens
	if sink != "" {
		a := cfg.Apps[DefaultAppID]
		a.Business = sink
		cfg.Apps[DefaultAppID] = a
	}
	demoServer := func(c platform.BusinessConfig, logger *slog.Logger) platform.Business {
		keys := map[string]string{}
		for id, a := range c.Apps {
			keys[id] = a.Keys["dev"]
		}
		return demo.New(demo.Config{Addr: c.Addr, Keys: keys, StateAddr: c.StateAddr}, logger)
	}
	p := platformtest.StartWith(t, cfg, platform.Options{Demo: demoServer}, platform.RoleNATS, platform.RoleState, platform.RoleGateway, platform.RoleIPConf, platform.RoleDemo)
	poll.Within(t, 10*time.Second, "ipconf to list the gateway", func() bool {
		l, err := client.FetchEndpoints(context.Background(), nil, "http://"+p.IPConf.Addr(), "bench", "probe", platformtest.Credential(t, "bench", "probe", "probe"))
		return err == nil && len(l.Endpoints) > 0
	})
	return p
}

func tinyOptions(p *platform.Platform, scenario string) Options {
	return Options{
		Scenario:         scenario,
		IPConfURL:        "http://" + p.IPConf.Addr(),
		StateAddr:        p.State.Addr(),
		Devices:          10,
		Duration:         time.Second,
		TokenSecret:      platformtest.Secret,
		CredentialSecret: platformtest.JWTSecret,
		AppKey:           platformtest.KeyOf(DefaultAppID),
		Drain:            3 * time.Second,
	}
}

func runTiny(t *testing.T, o Options) *Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("bench %s: %v", o.Scenario, err)
	}
	b, _ := s.JSON()
	t.Logf("%s", b)
	return s
}

// checkClean asserts every device connected and nothing was lost, duplicated or refused.
func checkClean(t *testing.T, what string, f *Figures, devices int) {
	t.Helper()
	if f.Connected != devices {
		t.Errorf("%s: %d of %d devices connected (failures %v)", what, f.Connected, devices, f.ConnectFailures)
	}
	if f.Lost != 0 || f.Duplicated != 0 || f.Refused != 0 || f.Unexpected != 0 {
		t.Errorf("%s: lost %d duplicated %d refused %d unexpected %d (codes %v, dropped %v)", what, f.Lost, f.Duplicated, f.Refused, f.Unexpected, f.Codes, f.Dropped)
	}
	if f.Acked == 0 || f.Acked != f.Sent-f.Refused-f.Lost {
		t.Errorf("%s: sent %d acked %d", what, f.Sent, f.Acked)
	}
	if f.Latency.P50 <= 0 || f.Latency.P50 > f.Latency.P99 || f.Latency.P99 > f.Latency.Max || f.Latency.Max > 10e6 {
		t.Errorf("%s: latency %+v is not sane", what, f.Latency)
	}
	if f.ConnectRate <= 0 {
		t.Errorf("%s: connect rate %v", what, f.ConnectRate)
	}
}

// freeAddr is a loopback address nothing listens on, for a server started later.
func freeAddr(t *testing.T) string { return testkit.FreeAddr(t) }

// TestUplinkClosedLoopWithBaseline answers uplinks with the bench's own business server: at full
// speed the demo's push queue overflows and it refuses with 2002 (what TestUplinkOpenLoop avoids by
// a rate the demo keeps up with).
func TestUplinkClosedLoopWithBaseline(t *testing.T) {
	sink := freeAddr(t)
	p := testPlatform(t, sink)
	o := tinyOptions(p, ScenarioUplink)
	o.Window = 2
	o.Business = sink
	o.Baseline = true
	o.WorkerCommand = testWorkerCommand // the echo server in a process of its own
	s := runTiny(t, o)
	checkClean(t, "plato", &s.Figures, o.Devices)
	if s.ServerCPUPerMsg <= 0 {
		t.Errorf("server CPU per message %v with %d acked", s.ServerCPUPerMsg, s.Acked)
	}
	if s.Mode != "closed" || s.Window != 2 || s.MsgsPerSec <= 0 {
		t.Errorf("mode %q window %d msgs/s %v", s.Mode, s.Window, s.MsgsPerSec)
	}
	// An ACK means the business has the message: it got each acked uplink exactly once.
	if s.Business == nil || s.Business.Received != s.Acked || s.Business.Duplicated != 0 {
		t.Errorf("business figures %+v, acked %d", s.Business, s.Acked)
	}
	if s.Baseline == nil {
		t.Fatal("no baseline figures")
	}
	checkClean(t, "baseline", s.Baseline, o.Devices)
	if s.Ratios["msgs_per_sec"] <= 0 || s.Ratios["latency_p50"] <= 0 {
		t.Errorf("ratios %v", s.Ratios)
	}
	if s.Baseline.BytesPerConn <= 0 {
		t.Errorf("baseline bytes per connection %v: the echo process's RSS was not measured", s.Baseline.BytesPerConn)
	}
}

// TestUplinkOpenLoop goes through the demo business server, as against `make up`, at a rate it
// sustains.
func TestUplinkOpenLoop(t *testing.T) {
	p := testPlatform(t, "")
	o := tinyOptions(p, ScenarioUplink)
	o.Rate = 200
	s := runTiny(t, o)
	checkClean(t, "plato", &s.Figures, o.Devices)
	// 200/s for a second, give or take the pacer's first and last millisecond.
	if s.Mode != "open" || s.Sent < 150 || s.Sent > 220 {
		t.Errorf("open loop at 200/s for 1s: mode %q sent %d", s.Mode, s.Sent)
	}
}

// TestUplinkBaselineAtItsOwnRate offers the echo server another rate than Plato (--baseline-rate):
// the baseline pass sends at its rate, and the summary drops the throughput ratio, which two rates
// would make meaningless, and says what each pass kept busy.
func TestUplinkBaselineAtItsOwnRate(t *testing.T) {
	p := testPlatform(t, "")
	o := tinyOptions(p, ScenarioUplink)
	o.Rate, o.Baseline, o.BaselineRate = 100, true, 400
	o.WorkerCommand = testWorkerCommand
	s := runTiny(t, o)
	checkClean(t, "plato", &s.Figures, o.Devices)
	checkClean(t, "baseline", s.Baseline, o.Devices)
	// A second at each rate: four times as many to the echo server, give or take the pacer's
	// first and last millisecond.
	if s.Sent > 120 || s.Baseline.Sent < 2*s.Sent || s.Baseline.Sent > 440 {
		t.Errorf("sent %d to Plato at 100/s and %d to the echo server at 400/s, over about 1s", s.Sent, s.Baseline.Sent)
	}
	if s.BaselineRate != 400 || s.Rate != 100 {
		t.Errorf("rate %v, baseline rate %v", s.Rate, s.BaselineRate)
	}
	if _, ok := s.Ratios["msgs_per_sec"]; ok || s.Ratios["latency_p99"] <= 0 {
		t.Errorf("ratios %v: want latency ratios and no throughput ratio", s.Ratios)
	}
	if !slices.ContainsFunc(s.Notes, func(n string) bool {
		return strings.Contains(n, "the echo server was offered 400 messages/s, Plato 100")
	}) {
		t.Errorf("no note on the baseline's rate: %q", s.Notes)
	}
}

// TestOverload measures a capacity and offers 1.5 and 3 times it: each run is accounted, no
// connection is closed, and whatever is not ACKed is refused 1303, never lost or failed otherwise.
func TestOverload(t *testing.T) {
	sink := freeAddr(t)
	// A business of 1,000 uplinks a second is the bottleneck, and the gateway holds at most 200 in
	// flight, so that the excess is refused within the tiny runs.
	p := testPlatform(t, sink, func(c *config.Config) { c.Gateway.MaxUplinksInFlight = 200 })
	o := tinyOptions(p, ScenarioOverload)
	o.Business, o.BusinessRate = sink, 1000
	s := runTiny(t, o)
	ov := s.Overload
	if ov == nil || ov.Capacity <= 0 || ov.CapacityWindow != DefaultOverloadWindow || len(ov.Runs) != 2 {
		t.Fatalf("overload figures %+v", ov)
	}
	for i, r := range ov.Runs {
		if r.Factor != DefaultOverloadFactors[i] || r.Offered != round3(r.Factor*ov.Capacity) || r.AckedPerSec <= 0 {
			t.Errorf("run %d: %+v", i, r)
		}
		if r.Refused == 0 {
			t.Errorf("run at %.1fx the capacity of a paced business: nothing refused 1303", r.Factor)
		}
		if r.ConnectionsClosed != 0 || r.Lost != 0 || len(r.OtherCodes) != 0 {
			t.Errorf("run at %.1fx: %d connections closed (%v), %d lost, other codes %v", r.Factor, r.ConnectionsClosed, r.Closes, r.Lost, r.OtherCodes)
		}
	}
	if s.LoadAverage == nil || s.LoadAverage.Before == "" {
		t.Errorf("no load average: %+v", s.LoadAverage)
	}
}

func TestDownlink(t *testing.T) {
	p := testPlatform(t, "")
	o := tinyOptions(p, ScenarioDownlink)
	o.Baseline = true
	o.WorkerCommand = testWorkerCommand
	s := runTiny(t, o)
	checkClean(t, "plato", &s.Figures, o.Devices)
	checkClean(t, "baseline", s.Baseline, o.Devices)
}

// TestDownlinkOverHTTP pushes through the state server's HTTP API (--state-http). The Kitex address
// points at nothing, so every push that arrives went over HTTP.
func TestDownlinkOverHTTP(t *testing.T) {
	p := testPlatform(t, "")
	o := tinyOptions(p, ScenarioDownlink)
	o.StateAddr = "127.0.0.1:1"
	o.StateHTTP = p.State.HTTPAddr()
	o.WorkerCommand = testWorkerCommand
	s := runTiny(t, o)
	checkClean(t, "plato", &s.Figures, o.Devices)
	if !slices.ContainsFunc(s.Notes, func(n string) bool { return strings.Contains(n, "POST /v1/apps/bench/push") }) {
		t.Errorf("the notes do not say the pushes went over HTTP: %q", s.Notes)
	}
}

func TestBroadcast(t *testing.T) {
	p := testPlatform(t, "")
	o := tinyOptions(p, ScenarioBroadcast)
	o.Interval = 250 * time.Millisecond
	s := runTiny(t, o)
	checkClean(t, "plato", &s.Figures, o.Devices)
	b := s.Broadcast
	if b == nil || b.Rounds != 4 || b.Complete != 4 || b.Targets != o.Devices || b.LastDevice.Max <= 0 {
		t.Fatalf("broadcast figures %+v", b)
	}
	if s.Sent != uint64(b.Rounds*o.Devices) {
		t.Errorf("sent %d, want %d rounds x %d devices", s.Sent, b.Rounds, o.Devices)
	}
}

// TestBroadcastWithBaseline runs the echo baseline next to Plato: its pusher fans one frame out to
// the dids itself (the echo servers have no sessions).
func TestBroadcastWithBaseline(t *testing.T) {
	p := testPlatform(t, "")
	o := tinyOptions(p, ScenarioBroadcast)
	o.Interval = 250 * time.Millisecond
	o.Baseline = true
	o.WorkerCommand = testWorkerCommand
	s := runTiny(t, o)
	checkClean(t, "plato", &s.Figures, o.Devices)
	checkClean(t, "baseline", s.Baseline, o.Devices)
	if s.Baseline == nil || s.Baseline.Broadcast == nil || s.Baseline.Broadcast.Complete == 0 {
		t.Fatalf("baseline broadcast figures %+v", s.Baseline)
	}
}

func TestConnectThroughWorkerProcesses(t *testing.T) {
	p := testPlatform(t, "")
	o := tinyOptions(p, ScenarioConnect)
	o.Devices = 20
	o.Workers = 2
	o.Heartbeat = 200 * time.Millisecond // so a one-second hold heartbeats
	o.WorkerCommand = testWorkerCommand
	o.Baseline = true
	s := runTiny(t, o)
	checkClean(t, "plato", &s.Figures, o.Devices)
	if s.Workers != 2 {
		t.Errorf("workers %d, want 2", s.Workers)
	}
	if s.Heartbeats.Sent == 0 || s.Heartbeats.Acked != s.Heartbeats.Sent {
		t.Errorf("heartbeats %+v", s.Heartbeats)
	}
	if h := s.Heartbeats; h.AckedMeasured == 0 || h.AckedMeasured > h.Acked || s.ServerCPUPerHeartbeat <= 0 {
		t.Errorf("heartbeats acked in the measured phase %d of %d, server CPU per heartbeat %v µs", h.AckedMeasured, h.Acked, s.ServerCPUPerHeartbeat)
	}
	// The gateway runs in this test process, whose RSS hardly moves for 20 connections; the
	// workers are fresh processes whose growth is all connection handling.
	if s.BytesPerConn < 0 || s.ClientBytesPerConn <= 0 {
		t.Errorf("bytes per connection: server %v client %v", s.BytesPerConn, s.ClientBytesPerConn)
	}
	checkClean(t, "baseline", s.Baseline, o.Devices)
}

// TestConnectWithoutHeartbeatsRefusesTheMemoryFigure: a hold shorter than the heartbeat interval
// measures connections that never heartbeat, so the connect scenario refuses their memory figure.
func TestConnectWithoutHeartbeatsRefusesTheMemoryFigure(t *testing.T) {
	p := testPlatform(t, "")
	o := tinyOptions(p, ScenarioConnect)
	o.Heartbeat = time.Minute
	s := runTiny(t, o)
	checkClean(t, "plato", &s.Figures, o.Devices)
	if s.Heartbeats.Sent != 0 || s.BytesPerConn != 0 || !strings.Contains(s.BytesPerConnRefused, "no heartbeat") {
		t.Fatalf("heartbeats %+v, bytes per connection %v, refused %q", s.Heartbeats, s.BytesPerConn, s.BytesPerConnRefused)
	}
}
