package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/internal/config"
)

// platoRoleEnv makes the test binary a plato role process (`state --config F`, `gateway --config
// F`), for the failover scenario to start, kill and restart without building cmd/plato.
const platoRoleEnv = "BENCH_TEST_PLATO_ROLE"

// runTestPlato serves os.Args[1] with the config file os.Args[3] until SIGINT, printing where it
// listens the way plato does.
func runTestPlato() int {
	if len(os.Args) != 4 || os.Args[2] != "--config" {
		fmt.Fprintln(os.Stderr, "usage: ROLE --config FILE")
		return 2
	}
	cfg, _, err := config.Load(os.Args[3], os.Environ(), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := platform.Start(ctx, cfg, []string{os.Args[1]}, logger, platform.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("Plato is running:")
	if p.State != nil {
		fmt.Printf("  state     %s  (Kitex RPC)\n", p.State.Addr())
	}
	if p.Gateway != nil {
		fmt.Printf("  gateway   %s  (device TCP)\n", p.Gateway.Addr())
	}
	if p.Admin != nil {
		fmt.Printf("  admin     http://%s  (metrics)\n", p.Admin.Addr())
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil {
		return 1
	}
	return 0
}

func testPlatoCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(withoutPlatoEnv(os.Environ()), platoRoleEnv+"=1")
	return cmd
}

// TestFailoverInProcess runs the whole scenario with the devices in this process (so the race
// detector sees them) and the roles in processes of this test binary. It checks behaviour only.
func TestFailoverInProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s, err := Run(ctx, Options{
		Scenario: ScenarioFailover, Devices: 30, Rate: 300, PushRate: 30,
		Warmup: 500 * time.Millisecond, AfterKill: 2 * time.Second, AfterRestart: time.Second, Drain: 5 * time.Second,
		PlatoCommand: testPlatoCommand,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.JSON()
	t.Logf("%s", b)
	checkFailover(t, s, 30)
	if s.Workers != 0 {
		t.Errorf("workers %d: they ran in this process", s.Workers)
	}
}

// checkFailover asserts what a failover run must show whatever the machine's speed.
func checkFailover(t *testing.T, s *Summary, devices int) {
	t.Helper()
	ff := s.Failover
	if ff == nil {
		t.Fatal("no failover figures")
	}
	if s.Connected != devices || ff.Recovery.All.Devices != devices {
		t.Errorf("%d of %d devices connected, %d counted", s.Connected, devices, ff.Recovery.All.Devices)
	}
	if k := ff.Killed.Devices; k < 1 || k >= devices || ff.Recovery.Killed.Devices != k || ff.Recovery.Others.Devices != devices-k {
		t.Errorf("killed server held %d devices; recovery sets %d and %d", k, ff.Recovery.Killed.Devices, ff.Recovery.Others.Devices)
	}
	if a := ff.Recovery.All; a.Recovered != devices || ff.EveryDeviceWorkingMs < 0 || a.Max != ff.EveryDeviceWorkingMs || a.P50 > a.P99 || a.P99 > a.Max {
		t.Errorf("recovery %+v, every device working %v ms", a, ff.EveryDeviceWorkingMs)
	}
	if r := ff.Relogins; r.Devices != 0 || r.Logins != 0 || r.BusinessConnectedMinusN != 0 {
		t.Errorf("relogins %+v: devices had to log in again", r)
	}
	u := ff.Uplinks
	if u.Acked == 0 || u.AckedIDs == 0 || u.AckedLost != 0 || u.Unanswered != 0 || u.UnknownOnClose != 0 || u.Resent != u.Ack1210 {
		t.Errorf("uplinks %+v", u)
	}
	if u.BusinessReceived < u.AckedIDs {
		t.Errorf("the business received %d uplinks, fewer than the %d ACKed", u.BusinessReceived, u.AckedIDs)
	}
	p := ff.Pushes
	if p.Accepted == 0 || p.Unaccounted != 0 || p.Delivered+p.UndeliveredReported != p.Accepted {
		t.Errorf("pushes %+v", p)
	}
	if nl := ff.Restart.NewLogins; nl.OK == 0 || nl.OnRestarted == 0 {
		t.Errorf("new logins after the restart %+v", nl)
	}
	if len(ff.Phases) != 3 || ff.Phases[0].Sent == 0 || ff.Phases[1].Sent == 0 || ff.Phases[2].Sent == 0 {
		t.Errorf("phases %+v", ff.Phases)
	}
	if g := ff.Gateway; g.StatesLost < 1 || g.ConnectionsMoved < float64(ff.Killed.Devices) {
		t.Errorf("gateway %+v, killed server held %d", g, ff.Killed.Devices)
	}
	if s.LoadAverage == nil || s.LoadAverage.Before == "" || s.LoadAverage.After == "" {
		t.Errorf("load average %+v", s.LoadAverage)
	}
}

func TestFailoverOptions(t *testing.T) {
	cmd := func(...string) *exec.Cmd { return nil }
	o := Options{Scenario: ScenarioFailover, PlatoCommand: cmd}
	o.setDefaults()
	if err := o.validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if o.Devices != DefaultFailoverDevices || o.Rate != 10_000 || o.PushRate != 200 || o.Window != 0 || o.Duration != 0 || o.Warmup != DefaultWarmup {
		t.Errorf("defaults %+v", o)
	}
	for _, tc := range []struct {
		change func(*Options)
		want   string
	}{
		{func(o *Options) { o.Duration = time.Second }, "--warmup, --after-kill and --after-restart"},
		{func(o *Options) { o.Window = 2 }, "--window does not apply"},
		{func(o *Options) { o.Baseline = true }, "--baseline"},
		{func(o *Options) { o.AfterKill = time.Millisecond }, "after-kill 1ms"},
		{func(o *Options) { o.PushRate = -1 }, "push rate -1"},
		{func(o *Options) { o.AppID = "Bad App" }, "app ID"},
		{func(o *Options) { o.PlatoCommand = nil }, "plato binary"},
	} {
		o := Options{Scenario: ScenarioFailover, PlatoCommand: cmd}
		o.setDefaults()
		tc.change(&o)
		if err := o.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error with %q, got %v", tc.want, err)
		}
	}
}

func TestPhaseOf(t *testing.T) {
	for _, tc := range []struct {
		t, kill, restart int64
		want             int
	}{
		{5, 0, 0, phaseWarmup}, {5, 10, 0, phaseWarmup}, {10, 10, 0, phaseAfterKill}, {50, 10, 0, phaseAfterKill},
		{19, 10, 20, phaseAfterKill}, {20, 10, 20, phaseAfterRestart},
	} {
		if got := phaseOf(tc.t, tc.kill, tc.restart); got != tc.want {
			t.Errorf("phaseOf(%d, %d, %d) = %d, want %d", tc.t, tc.kill, tc.restart, got, tc.want)
		}
	}
}

func TestSeenSetRanges(t *testing.T) {
	if r := (&seenSet{}).ranges(); r != nil {
		t.Fatalf("empty set: %v", r)
	}
	for trial := range 200 {
		var s seenSet
		in := map[uint64]bool{}
		n := rand.IntN(400)
		for range n {
			// Runs, so that whole words fill up too.
			lo := uint64(1 + rand.IntN(600))
			for k := range uint64(1 + rand.IntN(130)) {
				s.mark(lo + k)
				in[lo+k] = true
			}
		}
		rs := s.ranges()
		if len(rs)%2 != 0 || !slices.IsSorted(rs) {
			t.Fatalf("trial %d: ranges %v", trial, rs)
		}
		for i := 0; i+2 < len(rs); i += 2 {
			if rs[i+1]+1 >= rs[i+2] {
				t.Fatalf("trial %d: ranges %v not separate", trial, rs)
			}
		}
		for v := uint64(0); v < 800; v++ {
			if inRanges(rs, v) != in[v] || s.has(v) != in[v] {
				t.Fatalf("trial %d: %d: in ranges %v, has %v, want %v", trial, v, inRanges(rs, v), s.has(v), in[v])
			}
		}
	}
}

func TestQuantilesMs(t *testing.T) {
	if q := quantilesMs(nil); q != (Quantiles{}) {
		t.Fatalf("empty: %+v", q)
	}
	var v []int64
	for i := int64(100); i >= 1; i-- {
		v = append(v, i*int64(time.Millisecond))
	}
	if q := quantilesMs(v); q != (Quantiles{P50: 50, P99: 99, Max: 100}) {
		t.Fatalf("1..100 ms: %+v", q)
	}
	if v[0] != 100*int64(time.Millisecond) {
		t.Fatal("quantilesMs sorted its argument")
	}
	if q := quantilesMs([]int64{1_234_567}); q.P50 != 1.235 || q.Max != 1.235 {
		t.Fatalf("one value: %+v", q)
	}
}

func TestComputeFailover(t *testing.T) {
	ms := int64(time.Millisecond)
	runID := "r"
	// Two workers: devices 0-2 and 3-4. Device 4 never logged in; 0 and 3 were on the killed
	// server; 2 never got an uplink through after the kill.
	results := []*FailoverWorkerResult{{
		First:     0,
		Recovered: []int64{300 * ms, 100 * ms, -1},
		FirstTry:  []int64{50 * ms, 90 * ms, 40 * ms},
		Acked:     [][]uint64{{1, 10}, {1, 5, 7, 9}, {1, 2}},
		Relogins:  map[int]int{2: 1},
		Phases: [numPhases]PhaseCounts{
			{Sent: 20, Acked: 20, Pushed: 3, PushAccepted: 3},
			{Sent: 10, Acked: 6, Resent: 2, Codes: map[string]int{"uplink ack 1210": 2, "uplink ack 1303": 1}, Unknown: 1, Dropped: map[string]int{"read: EOF": 1}, Relogins: 1, Pushed: 2, PushAccepted: 1, PushRefused: map[string]int{"push OFFLINE": 1}},
			{Sent: 5, Acked: 5, Codes: map[string]int{"uplink ack 1302": 1}},
		},
		Delivered: 3, Missing: []MissingPush{{DID: "r-1", MsgID: 7}},
	}, {
		First:     3,
		Recovered: []int64{200 * ms, -1},
		FirstTry:  []int64{10 * ms, -1},
		Acked:     [][]uint64{{1, 3}, nil},
		Absent:    []int{4},
		Phases:    [numPhases]PhaseCounts{{Sent: 3, Acked: 3}},
		Missing:   []MissingPush{{DID: "r-3", MsgID: 8}},
	}}
	lostID := map[string]uint64{"r-1": 8} // the business never got device 1's uplink 8
	ff := computeFailover(foInputs{
		runID: runID, results: results, killLag: 10 * ms,
		onVictim:  func(i int) bool { return i == 0 || i == 3 },
		connected: func(did string) int { return map[string]int{"r-0": 1, "r-1": 1, "r-2": 2, "r-3": 1}[did] },
		delivered: func(did string, id uint64) bool { return lostID[did] != id },
		undelivered: func(msgID int64) bool {
			return msgID == 7
		},
	})
	a, k, o := ff.Recovery.All, ff.Recovery.Killed, ff.Recovery.Others
	if a.Devices != 4 || a.Recovered != 3 || k.Devices != 2 || k.Recovered != 2 || o.Devices != 2 || o.Recovered != 1 {
		t.Errorf("recovery sets: all %+v killed %+v others %+v", a, k, o)
	}
	// From the kill (10 ms after the armed instant): 290, 90, 190 ms.
	if a.P50 != 190 || a.Max != 290 || k.Max != 290 || o.Max != 90 || ff.EveryDeviceWorkingMs != -1 {
		t.Errorf("recovery times: all %+v killed %+v others %+v, every device %v", a, k, o, ff.EveryDeviceWorkingMs)
	}
	// From the first try: 250, 10, 190 ms.
	if a.FromFirstTry != (Quantiles{P50: 190, P99: 250, Max: 250}) {
		t.Errorf("from first try %+v", a.FromFirstTry)
	}
	if r := ff.Relogins; r.Devices != 1 || r.Logins != 1 || r.BusinessConnectedMinusN != 1 {
		t.Errorf("relogins %+v", r)
	}
	u := ff.Uplinks
	if u.AckedIDs != 10+8+2+3 || u.AckedLost != 1 || u.Sent != 38 || u.Acked != 34 || u.Ack1210 != 2 || u.Resent != 2 || u.UnknownOnClose != 1 || u.Refused["uplink ack 1303"] != 1 || u.Refused["uplink ack 1302"] != 1 {
		t.Errorf("uplinks %+v", u)
	}
	p := ff.Pushes
	if p.Attempted != 5 || p.Accepted != 4 || p.Delivered != 3 || p.UndeliveredReported != 1 || p.Unaccounted != 1 || p.Refused["push OFFLINE"] != 1 {
		t.Errorf("pushes %+v", p)
	}
	if ff.Restart.Errors != 1 || ff.Restart.ErrorKinds["uplink ack 1302"] != 1 {
		t.Errorf("restart %+v", ff.Restart)
	}
	if len(ff.Phases) != 3 || ff.Phases[1].Name != "after_kill" || ff.Phases[0].Sent != 23 {
		t.Errorf("phases %+v", ff.Phases)
	}
	if g := ff.Goals; g.EveryDeviceUnder1s || g.NoRelogin || g.NoAckedUplinkLost || g.EveryPushAccounted {
		t.Errorf("goals %+v: none is met", g)
	}
	errs := phaseErrors(&results[0].Phases[phaseAfterKill])
	want := map[string]int{"uplink ack 1210": 2, "uplink ack 1303": 1, "connection ended: read: EOF": 1, "push OFFLINE": 1, "uplink outcome unknown (its connection ended)": 1, "device logged in again": 1}
	if fmt.Sprint(errs) != fmt.Sprint(want) {
		t.Errorf("phase errors %v, want %v", errs, want)
	}
}

func TestMetricValue(t *testing.T) {
	text := `# HELP plato_gateway_connections_moved_total Connections moved.
# TYPE plato_gateway_connections_moved_total counter
plato_gateway_connections_moved_total 983
plato_gateway_connections_moved_totally 5
plato_state_connections_moved_total{direction="in"} 3
plato_state_connections_moved_total{direction="out"} 4
`
	for name, want := range map[string]float64{
		"plato_gateway_connections_moved_total": 983, "plato_state_connections_moved_total": 7, "plato_nothing": -1,
	} {
		if got := metricValue(strings.NewReader(text), name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestLogLines(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	l := logLine{at: at, text: `time=2026-11-21T10:00:01.250+00:00 level=WARN msg="state server lost: moving its connections" state=state-1`}
	if got := l.logTime(); !got.Equal(at.Add(1250 * time.Millisecond)) {
		t.Errorf("log time %v", got)
	}
	if got := (logLine{at: at, text: "no time here"}).logTime(); !got.Equal(at) {
		t.Errorf("fallback time %v", got)
	}
	if got := logMessage(l.text); got != `level=WARN msg="state server lost: moving its connections" state=state-1` {
		t.Errorf("message %q", got)
	}
	if got := parseLoadAvg("0.68 0.90 1.06 1/110 2655\n"); got != "0.68 0.90 1.06" {
		t.Errorf("load average %q", got)
	}
	if got := withoutPlatoEnv([]string{"PATH=/bin", "PLATO_AUTH__TOKEN_SECRET=x", "HOME=/h"}); !slices.Equal(got, []string{"PATH=/bin", "HOME=/h"}) {
		t.Errorf("environment %v", got)
	}
}

// TestFoConfigLoads checks the platform's configuration as Plato reads it, with a state server's
// environment overrides.
func TestFoConfigLoads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plato.yaml")
	body := foConfig(dir, "nats://127.0.0.1:4222", randomHex(24), "bench", randomHex(16), randomHex(24), "127.0.0.1:1001")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(path, []string{"PLATO_STATE__ID=state-2", "PLATO_STATE__ADDR=127.0.0.1:1234", "PLATO_APPS__BENCH__BUSINESS=127.0.0.1:1002"}, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	app := cfg.Apps["bench"]
	if cfg.State.ID != "state-2" || cfg.State.Addr != "127.0.0.1:1234" || app.Business != "127.0.0.1:1002" || len(app.Keys) != 1 || !app.Auth.JWT.Configured() {
		t.Errorf("state %+v, app %+v", cfg.State, app)
	}
	if cfg.Registry.TTL != registryTTL || cfg.Admin.Addr != "" || cfg.Pipeline.Dir != "" || cfg.Log.Level != "warn" {
		t.Errorf("registry %+v admin %+v pipeline %+v log %+v", cfg.Registry, cfg.Admin, cfg.Pipeline, cfg.Log)
	}
}
