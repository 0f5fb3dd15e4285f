package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/cloudwego/kitex/pkg/klog"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/tools/bench"
)

const benchUsage = `Usage: plato bench [flags] SCENARIO

Load-tests a running platform (make up, or separate processes) through real sockets on loopback,
or, for failover, a platform it starts itself, then prints one JSON summary line on stdout.
Scenarios:

  connect    N devices log in and stay, heartbeating: connect rate, connect latency, and the
             gateway processes' RSS growth per connection
  uplink     N devices send uplinks for the duration, closed loop (--window per device) or open
             loop (--rate in total): ACKed msgs/s, frame-sent to UplinkAck latency, lost/duplicated
  downlink   the business pushes to each did through Plato.Push (Plato.PushBatch with --batch N):
             push-to-receipt latency
  broadcast  the N devices join one session, and the business broadcasts one message to it per
             --interval (State.Broadcast, fanned out by every gateway): time until the last
             device has it. --baseline pushes to the echo servers' dids instead (they have no
             sessions)
  failover   starts a platform of its own (embedded NATS, two state servers and a gateway as plato
             processes, the bench's business server), loads it with uplinks (--rate) and
             at-least-once pushes (--push-rate), SIGKILLs one state server after --warmup and
             restarts it --after-kill later: time until every device gets an uplink through
             again, devices that had to log in again, ACKed uplinks lost, pushes unaccounted for,
             errors after the restart. Defaults: 2000 devices, 5 uplinks/s and 0.1 pushes/s each
  upgrade    like failover, but upgrades the gateway in place (SIGUSR2 to its process, its
             binary re-executed) after --warmup instead of killing a state server, and goes on
             for --after-kill: connections dropped (goal 0), devices that logged in again, ACKed
             uplinks and pushes lost, the longest gap any device saw between two answers across
             the upgrade, and the handover as the gateway reports it; --gateways N starts N
             gateway processes, spreads the devices over them and upgrades them one after the
             other (per gateway and in total)
  overload   measures the uplink capacity of a running platform (closed loop, --window 8 per
             device), then offers open-loop uplinks at each --factor of it (default 1.5 and 3):
             ACKed msgs/s as a ratio to the capacity, uplinks refused 1303, connections closed
  crashloop  starts a platform of its own (embedded NATS, a state server and a gateway as plato
             processes) whose app pipeline runs one fail_closed stage, --plugin (default
             bin/plugins/auth, built by make plugins), loads it with uplinks (--rate, default 500/s
             from 20 devices) and SIGKILLs the stage's plugin --kills times (50), --interval apart
             (1s): relaunch time (kill to the stage answering again), uplinks answered 1306 by the
             policy meanwhile and how fast, the crash-loop breaker as /metrics and /healthz show it,
             and killed processes left as zombies
  nats-restart
             starts a platform of its own (NATS as a plato nats process with the registry in
             memory, a state server, a gateway and ipconf as plato processes), keeps --devices
             (default 100) sending uplinks, SIGKILLs NATS after --warmup and starts it again
             --after-kill later (default 5s), then starts a second gateway: time from NATS back
             to ipconf answering fresh, every process registered again, the state server seeing
             the new gateway (converged; given up on after --after-restart, default 15s), and
             ipconf's answers (fresh, stale, 503) meanwhile
  apps-live  starts the nats-restart scenario's platform (plato nats, a state server, a gateway and
             ipconf as plato processes), then --changes times (default 20) stores a new app in
             NATS KV as plato apps set does and deletes it: time from the put to ipconf handing
             out endpoints for it, a device of it logging in at the gateway, and the state server
             taking its business key (p50/p99/max), and from the delete to ipconf refusing it
  migrate    starts a platform of its own (embedded NATS, a state server and gateways gw-1 and
             gw-2 as plato processes, the bench's business server), logs --devices (default 1000)
             SDK clients in through gw-1, pushes at-least-once messages at --push-rate (default
             200/s), and after --warmup (2s) has gw-1's ops API migrate all of them to gw-2 at
             --rate Redirects per second (default 500): how long the move took, each device's
             Redirect-to-ResumeAck time (p50/p99/max), pushes lost or received twice, and devices
             that logged in again instead of resuming; --after-restart bounds the wait (60s)
  slow-consumers
             starts a platform of its own (embedded NATS, a state server and a gateway as plato
             processes, the bench's business server), pushes to every device, and after --warmup
             has --stalled of them stop reading while the pushes go on (--stalled-rate pushes of
             --size bytes a second each; --rate in total over the others): how many were closed
             with 1205, time to cut (p50/max), and the healthy devices' push p99 with vs without
             stalled devices. Defaults: 1000 devices, 5% stalled, 1 KB every 250 ms each

Devices above --per-worker (15,000, under a common limit of 20,000 open files per process) are
spread over worker processes, each connecting from its own source address 127.0.0.2, 127.0.0.3...
so that more than 64k connections fit on one box; the gateway side then needs several gateway
processes too (docs/operations.md).
Limits: --devices 200000, --duration 10m, --rate 1000000; loopback targets only.

Flags:
`

// runBench is `plato bench`: the parent, or with --worker one of its worker processes.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plato bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	var o bench.Options
	var gateways, pids listFlag
	fs.StringVar(&o.IPConfURL, "ipconf", bench.DefaultIPConfURL, "ipconf base URL: gateway endpoints, and tokens without --token-secret")
	fs.Var(&gateways, "gateway", "gateway endpoint host:port (ws://host:port/plato with --transport ws) to use instead of ipconf's list (repeatable or comma-separated)")
	fs.StringVar(&o.Transport, "transport", bench.TransportTCP, "how devices connect: tcp, or ws (WebSocket, one frame per binary message, to the URLs ipconf lists with ?transport=ws; connect, uplink, downlink, broadcast)")
	fs.StringVar(&o.StateAddr, "state", bench.DefaultStateAddr, "State service address the business pushes through (downlink, broadcast)")
	fs.StringVar(&o.StateHTTP, "state-http", "", "downlink: push through this state server's HTTP API (state.http_addr, host:port) instead of the Kitex RPC")
	fs.StringVar(&o.AppID, "app", bench.DefaultAppID, "app ID of the simulated devices")
	fs.StringVar(&o.AppKey, "app-key", bench.DefaultAppKey, "the app's business key (apps.<app>.keys), for pushes")
	fs.StringVar(&o.CredentialSecret, "credential-secret", bench.DefaultCredentialSecret, "the app's JWT secret (apps.<app>.auth.jwt.secrets.<kid>): devices get credentials signed with it, as from the app's backend")
	fs.StringVar(&o.CredentialKID, "credential-kid", bench.DefaultCredentialKID, "the kid of --credential-secret")
	fs.IntVar(&o.Devices, "devices", bench.DefaultDevices, "number of devices (at most 200000; failover default 2000)")
	fs.DurationVar(&o.Duration, "duration", bench.DefaultDuration, "length of the measured phase, after every device connected (at most 10m; not failover; slow-consumers: the longest wait for the stalled devices to be closed, default 2m)")
	fs.IntVar(&o.Window, "window", 1, "closed loop: messages in flight per device (uplink, downlink)")
	fs.Float64Var(&o.Rate, "rate", 0, "open loop: messages per second in total, instead of --window (uplink, downlink, failover; at most 1000000; failover default 5 per device); migrate: Redirects per second (default 500)")
	fs.IntVar(&o.Batch, "batch", 0, "downlink: push through PushBatch, up to N pushes per call (each worker keeps 4 calls in flight, each taking the pushes queued when it goes: natural batching); 0: one Push call per push")
	fs.Float64Var(&o.PushRate, "push-rate", 0, "failover: at-least-once pushes per second in total (default 0.1 per device); migrate: default 200")
	fs.DurationVar(&o.Warmup, "warmup", 0, "failover, nats-restart: load before the kill (default 3s); migrate: load before the move (default 2s); crashloop: before the first kill (default 2s); slow-consumers: load before the devices stop reading (default 20s)")
	fs.DurationVar(&o.AfterKill, "after-kill", 0, "failover, nats-restart: load from the kill to the restart (default 5s)")
	fs.DurationVar(&o.AfterRestart, "after-restart", 0, "failover: load after the restart (default 5s); nats-restart: how long to wait for convergence (default 15s); migrate: the longest wait for every device to move (default 60s)")
	fs.DurationVar(&o.Interval, "interval", bench.DefaultInterval, "time between broadcast rounds; crashloop: time between kills")
	fs.IntVar(&o.Changes, "changes", 0, "apps-live: how many apps are set and deleted, one after the other (default 20, at most 500)")
	fs.IntVar(&o.Kills, "kills", 0, "crashloop: how many times the stage's plugin is killed (default 50, at most 1000)")
	fs.StringVar(&o.Plugin, "plugin", "", "crashloop: the plugin binary the stage runs (default "+bench.DefaultCrashloopPlugin+")")
	stalled := fs.String("stalled", "", "slow-consumers: devices that stop reading, a count or a percentage of --devices (default 5%)")
	fs.Float64Var(&o.StalledRate, "stalled-rate", 0, "slow-consumers: pushes per second to each stalled device (default 4)")
	fs.IntVar(&o.PushSize, "size", 0, "slow-consumers: payload bytes of every push (default 1024)")
	fs.IntVar(&o.DeviceRcvbuf, "device-rcvbuf", 0, "slow-consumers: SO_RCVBUF every device sets before connecting (default 65536; -1: the kernel's, which autotunes)")
	fs.IntVar(&o.MaxUnsent, "max-unsent", 0, "slow-consumers: the gateway's gateway.slow_consumer.max_unsent_bytes (default: Plato's)")
	fs.DurationVar(&o.MaxStall, "max-stall", 0, "slow-consumers: the gateway's gateway.slow_consumer.max_stall (default: Plato's)")
	fs.IntVar(&o.SendBuffer, "send-buffer", 0, "slow-consumers: the gateway's gateway.socket_send_buffer (default: Plato's)")
	fs.DurationVar(&o.Heartbeat, "heartbeat", 0, "heartbeat idle devices this often (default: the server's heartbeat_ms)")
	// The default is read after parsing, so --help never prints a secret from the environment.
	fs.StringVar(&o.TokenSecret, "token-secret", "", "mint tokens locally with this secret instead of one ipconf call per device (default $"+platform.TokenSecretEnv+")")
	fs.IntVar(&o.Concurrency, "concurrency", bench.DefaultConcurrency, "logins in flight per worker")
	fs.Float64Var(&o.ConnectRate, "connect-rate", 0, "at most this many logins per second in total (default: unpaced)")
	fs.IntVar(&o.GatewayProcs, "gateways", 0, "upgrade: gateway processes to start, the devices spread over them, and upgrade one after the other (default 1; at most 19000 devices each)")
	fs.IntVar(&o.Workers, "workers", 0, "worker processes carrying the devices (default: one per --per-worker devices)")
	fs.IntVar(&o.PerWorker, "per-worker", bench.DefaultPerWorker, "most devices per worker process")
	fs.BoolVar(&o.Baseline, "baseline", false, "also run against a bare netpoll echo server with the same settings and report ratios")
	fs.Float64Var(&o.BaselineRate, "baseline-rate", 0, "with --baseline and --rate: offer the echo server this many messages per second instead, e.g. one that keeps the machine as busy as Plato's pass did (the summary's note gives both passes' cores), to compare tails at like load (default: --rate)")
	fs.StringVar(&o.Sink, "sink", bench.DefaultSink, `did that uplinks address: payload {"to":"<sink>","text":"<seq>"}`)
	fs.StringVar(&o.Business, "business", "", "serve a business server on this address that accepts every uplink and pushes nothing, instead of the demo's (route the app to it: plato up --set apps.bench.business=ADDR); an http:// URL takes them as webhooks (plato up --set apps.bench.business=URL, and the app's webhook_secret); it runs in the bench's parent process, whose cores the summary reports as bench_parent_cpu_cores")
	fs.StringVar(&o.WebhookSecret, "webhook-secret", "", "with an http:// --business: the app's apps.<app>.webhook_secret (default $PLATO_APPS__<APP>__WEBHOOK_SECRET)")
	fs.Float64Var(&o.BusinessRate, "business-rate", 0, "with --business: the most uplinks per second that business server takes, the rest waiting their turn (a business of known capacity, for overload)")
	fs.DurationVar(&o.Drain, "drain", bench.DefaultDrain, "how long to wait for outstanding answers after the measured phase")
	fs.Var(&pids, "gateway-pid", "pid of a gateway process whose RSS to measure (repeatable; default: found by listening port)")
	var factors listFlag
	fs.Var(&factors, "factor", "overload: offered load as a multiple of the measured capacity (repeatable or comma-separated; default 1.5,3)")
	report := fs.String("report", "", "also write an HTML report with latency and throughput charts to this file")
	worker := fs.Bool("worker", false, "internal: run as a worker process of a parent plato bench (spec on stdin)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Kitex (the State client) logs through its own global logger: warnings only, on stderr.
	klog.SetOutput(stderr)
	klog.SetLevel(klog.LevelWarn)
	if *worker {
		// Not ctx: Ctrl-C is the parent's to handle; a worker ends by command, stdin EOF or its
		// spec's deadline.
		return bench.RunWorker(context.Background(), os.Stdin, stdout)
	}
	// The scenario may come before or after the flags.
	if fs.NArg() > 0 {
		o.Scenario = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("unexpected arguments %q: give one scenario", fs.Args())
		}
	}
	if o.Scenario == "" {
		fs.Usage()
		return errors.New("give a scenario: " + strings.Join(bench.Scenarios, ", "))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.Rate > 0 && !set["window"] {
		o.Window = 0 // --rate alone selects the open loop
	}
	if o.Scenario == bench.ScenarioFailover || o.Scenario == bench.ScenarioCrashloop || o.Scenario == bench.ScenarioNATSRestart || o.Scenario == bench.ScenarioAppsLive || o.Scenario == bench.ScenarioMigrate || o.Scenario == bench.ScenarioUpgrade {
		// Its own defaults, and no window or duration unless asked for (which it refuses).
		if !set["devices"] {
			o.Devices = 0
		}
		if !set["window"] {
			o.Window = 0
		}
		if !set["duration"] {
			o.Duration = 0
		}
	}
	if o.Scenario == bench.ScenarioOverload && !set["window"] {
		o.Window = 0 // its own default
	}
	for _, f := range factors.values {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return fmt.Errorf("--factor %q: not a number", f)
		}
		o.Factors = append(o.Factors, v)
	}
	if o.Scenario == bench.ScenarioSlowConsumers {
		// Its own defaults for what the other scenarios default otherwise.
		for name, zero := range map[string]func(){
			"devices": func() { o.Devices = 0 }, "window": func() { o.Window = 0 },
			"duration": func() { o.Duration = 0 }, "warmup": func() { o.Warmup = 0 },
		} {
			if !set[name] {
				zero()
			}
		}
	}
	if *stalled != "" {
		if err := parseStalled(*stalled, &o); err != nil {
			return err
		}
	}
	if o.TokenSecret == "" {
		o.TokenSecret = os.Getenv(platform.TokenSecretEnv)
	}
	if o.WebhookSecret == "" {
		o.WebhookSecret = os.Getenv("PLATO_APPS__" + strings.ToUpper(o.AppID) + "__WEBHOOK_SECRET")
	}
	o.Gateways = gateways.values
	for _, p := range pids.values {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return fmt.Errorf("--gateway-pid %q: not a pid", p)
		}
		o.GatewayPIDs = append(o.GatewayPIDs, n)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this executable to start workers: %w", err)
	}
	o.WorkerCommand = func() *exec.Cmd { return exec.Command(exe, "bench", "--worker") }
	o.PlatoCommand = func(args ...string) *exec.Cmd { return exec.Command(exe, args...) }
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		o.Progress = stderr
	}
	s, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	line, err := s.JSON()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", line)
	if *report != "" {
		if err := writeBenchReport(*report, s); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "report written to %s\n", *report)
	}
	return nil
}

func writeBenchReport(path string, s *bench.Summary) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	if err := bench.WriteReport(f, s); err != nil {
		f.Close()
		return fmt.Errorf("writing the report: %w", err)
	}
	return f.Close()
}

// parseStalled reads --stalled: a count ("50") or a percentage of the devices ("5%").
func parseStalled(v string, o *bench.Options) error {
	if pct, ok := strings.CutSuffix(v, "%"); ok {
		f, err := strconv.ParseFloat(pct, 64)
		if err != nil || f <= 0 || f >= 100 {
			return fmt.Errorf("--stalled %q: want a count or a percentage above 0%% and below 100%%", v)
		}
		o.StalledPercent = f
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return fmt.Errorf("--stalled %q: want a count of at least 1 or a percentage such as 5%%", v)
	}
	o.Stalled = n
	return nil
}

// isTerminal reports whether f is a character device (a terminal, not a file or pipe).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// listFlag collects a repeatable, comma-separable flag.
type listFlag struct{ values []string }

func (l *listFlag) String() string { return strings.Join(l.values, ",") }

func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			l.values = append(l.values, v)
		}
	}
	return nil
}
