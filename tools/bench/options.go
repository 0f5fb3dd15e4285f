package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/platoim/plato/sdk/business"
	"github.com/platoim/plato/sdk/client"
)

// Scenarios.
const (
	ScenarioConnect   = "connect"
	ScenarioUplink    = "uplink"
	ScenarioDownlink  = "downlink"
	ScenarioBroadcast = "broadcast"
	// ScenarioFailover starts a platform of its own (failover.go), kills a state server under load
	// and restarts it.
	ScenarioFailover = "failover"
	// ScenarioUpgrade starts a platform of its own like failover, and upgrades its gateway in
	// place under load (kill -USR2) instead of killing a state server (upgrade.go).
	ScenarioUpgrade = "upgrade"
	// ScenarioCrashloop starts a platform of its own (crashloop.go) and kills a pipeline stage's
	// plugin process again and again.
	ScenarioCrashloop = "crashloop"
	// ScenarioNATSRestart starts a platform of its own with NATS as a process (natsrestart.go),
	// kills NATS and starts it again, and measures how long the platform takes to converge.
	ScenarioNATSRestart = "nats-restart"
	// ScenarioAppsLive starts the nats-restart scenario's platform and changes apps in NATS KV
	// (appslive.go): how soon each role serves a change.
	ScenarioAppsLive = "apps-live"
	// ScenarioSlowConsumers starts a platform of its own (slow.go) and has some devices stop
	// reading while pushes flood them.
	ScenarioSlowConsumers = "slow-consumers"
	// ScenarioMigrate starts a platform of its own with two gateways (migrate.go) and moves every
	// device from one to the other by Redirect under push load.
	ScenarioMigrate = "migrate"
)

// Scenarios lists every scenario name.
var Scenarios = []string{ScenarioConnect, ScenarioUplink, ScenarioDownlink, ScenarioBroadcast, ScenarioFailover, ScenarioUpgrade, ScenarioOverload, ScenarioCrashloop, ScenarioNATSRestart, ScenarioAppsLive, ScenarioSlowConsumers, ScenarioMigrate}

// Hard limits: a bench is a bounded experiment, never an open-ended load generator.
const (
	MaxDevices  = 200_000
	MaxDuration = 10 * time.Minute
	MaxRate     = 1_000_000
	MaxWindow   = 4096
	// DefaultPerWorker keeps a worker process well under a 20,000 open-file limit (one socket per
	// device plus a few for the worker itself).
	DefaultPerWorker = 15_000
)

// Defaults.
const (
	DefaultIPConfURL = client.DefaultIPConfURL
	DefaultStateAddr = business.DefaultAddr
	DefaultAppID     = "bench"
	DefaultAppKey    = "plato-dev-bench-key-change-me"
	// DefaultCredentialSecret and DefaultCredentialKID sign the devices' credentials: the
	// development JWT secret configs/plato.yaml gives app bench (apps.bench.auth.jwt.secrets.dev).
	DefaultCredentialSecret = "plato-dev-bench-jwt-secret-change-me"
	DefaultCredentialKID    = "dev"
	DefaultDevices          = 100
	DefaultDuration         = 10 * time.Second
	DefaultConcurrency      = 200
	DefaultSink             = "bench-sink"
	DefaultDrain            = 5 * time.Second
	DefaultInterval         = time.Second
	// Failover defaults: a modest fleet, each device sending DefaultFailoverUplinksPerDevice
	// uplinks a second (one every 200 ms, which bounds how finely recovery is seen) and getting
	// DefaultFailoverPushesPerDevice pushes a second.
	DefaultFailoverDevices          = 2000
	DefaultFailoverUplinksPerDevice = 5
	DefaultFailoverPushesPerDevice  = 0.1
	DefaultWarmup                   = 3 * time.Second
	DefaultAfterKill                = 5 * time.Second
	DefaultAfterRestart             = 5 * time.Second
	// openLoopOutstanding bounds unanswered uplinks per connection in open loop; beyond it the
	// bench skips a send (and says so) rather than queueing without bound.
	openLoopOutstanding = 1024
)

// Options configure one bench run. The zero value of each field means its default.
type Options struct {
	// Scenario is connect, uplink, downlink, broadcast or failover.
	Scenario string
	// IPConfURL is where endpoints (and, without TokenSecret, tokens) come from. Default
	// http://127.0.0.1:8080.
	IPConfURL string
	// Gateways, when set, are the device endpoints to use instead of asking ipconf: host:port, or
	// ws://host:port/plato with Transport ws.
	Gateways []string
	// GatewayProcs is how many gateway processes the upgrade scenario starts and upgrades one
	// after the other, the devices spread over them. Default 1.
	GatewayProcs int
	// Transport is how devices connect: tcp (default) or ws, one Plato frame per binary WebSocket
	// message to the URLs ipconf lists with ?transport=ws.
	Transport string
	// StateAddr is the State service the business pushes through (downlink, broadcast). Default
	// 127.0.0.1:8901.
	StateAddr string
	// StateHTTP, when set, is a state server's HTTP API (state.http_addr, host:port): the downlink
	// scenario pushes through it, one POST /v1/apps/<app>/push per push, instead of StateAddr.
	StateHTTP string
	// AppID of every simulated device. Default "bench".
	AppID string
	// AppKey is the app's business key, for pushing through Plato's RPC (downlink, broadcast).
	// Default DefaultAppKey, the development key configs/plato.yaml gives app bench.
	AppKey string
	// Devices is how many devices connect. Default 100, at most MaxDevices.
	Devices int
	// Duration of the measured phase, after every device connected. Default 10s, at most 10m.
	Duration time.Duration
	// Window is the closed loop's messages in flight per device (uplink, downlink). Default 1 when
	// Rate is 0.
	Window int
	// Rate, when set, is the open loop's total messages per second (uplink, downlink).
	Rate float64
	// Batch, when set, makes the downlink scenario push through PushBatch, up to Batch pushes per
	// call (each worker's calls take whatever pushes are queued: natural batching). 0: one Push each.
	Batch int
	// Interval is the time between broadcast rounds. Default 1s.
	Interval time.Duration
	// Heartbeat overrides how often idle devices send a Heartbeat. Default: the server's heartbeat_ms.
	Heartbeat time.Duration
	// TokenSecret, when set, mints gateway tokens locally (sdk/token) instead of one ipconf call
	// per device.
	TokenSecret string
	// CredentialSecret and CredentialKID sign each device's credential (a JWT, as the app's
	// backend would) for ipconf. Defaults DefaultCredentialSecret and DefaultCredentialKID.
	CredentialSecret, CredentialKID string
	// Concurrency is how many logins each worker has in flight. Default 200.
	Concurrency int
	// ConnectRate caps logins per second over all workers. Default 0: as fast as Concurrency allows.
	ConnectRate float64
	// Workers is how many workers carry the devices: processes started with WorkerCommand, or
	// goroutine groups in this process without one. Default 0: ceil(Devices/PerWorker).
	Workers int
	// PerWorker is the most devices one worker may hold. Default 15,000.
	PerWorker int
	// Baseline also runs the same scenario against a bare netpoll echo server and reports ratios.
	Baseline bool
	// BaselineRate, with Baseline and an open loop (Rate), offers the echo server this rate
	// instead of Rate. The echo server does less per message than Plato, so at Plato's rate it
	// leaves more of the machine idle; at a higher rate that keeps the machine as busy as Plato's
	// run did (the summary gives both passes' cores), its latency is what a bare server's tail is
	// at that load. 0: Rate.
	BaselineRate float64
	// Sink is the did uplinks are addressed to. Default bench-sink.
	Sink string
	// Business, when set, is where the bench serves its own business server, which accepts every
	// uplink and pushes nothing (see sinkBusiness). The platform must route AppID to it. A host:port
	// serves the Kitex Business service; an http:// URL (http://127.0.0.1:8950/plato) takes the
	// uplinks as webhooks, verified with WebhookSecret.
	Business string
	// WebhookSecret is the app's apps.<app>.webhook_secret, with a webhook Business. Default
	// $PLATO_APPS__<APP>__WEBHOOK_SECRET, the variable that sets it on the platform.
	WebhookSecret string
	// BusinessRate, with Business, caps the uplinks per second that business server takes (it
	// holds the rest until their turn): a business of known capacity, the bottleneck an overload
	// run then pushes against. Default 0: no cap.
	BusinessRate float64
	// Drain is how long to wait for outstanding answers after the measured phase. Default 5s.
	Drain time.Duration
	// GatewayPIDs are the processes whose RSS is the gateway's; default: found by listening port.
	GatewayPIDs []int
	// WorkerCommand returns a command that runs `plato bench --worker` (RunWorker on its stdin and
	// stdout). Nil runs every worker in this process.
	WorkerCommand func() *exec.Cmd
	// Failover only (the other scenarios ignore these):
	//
	// Warmup is the load before the kill, AfterKill the load from the kill to the restart, and
	// AfterRestart the load after it. Defaults 3s, 5s, 5s. Duration does not apply.
	Warmup, AfterKill, AfterRestart time.Duration
	// PushRate is the business's at-least-once pushes per second over all devices. Default
	// Devices * DefaultFailoverPushesPerDevice. Rate is the devices' uplinks per second in total,
	// default Devices * DefaultFailoverUplinksPerDevice.
	PushRate float64
	// PlatoCommand returns a command that runs the plato binary with args (`state --config F`,
	// `gateway --config F`): failover starts its own state servers and gateway with it. Required
	// for failover.
	PlatoCommand func(args ...string) *exec.Cmd
	// Factors are the overload scenario's offered loads, as multiples of the capacity it measures
	// first. Default 1.5 and 3.
	Factors []float64
	// Crashloop only: Kills is how many times the stage's plugin is killed (default 50), Interval
	// apart (default 1s); Plugin is the plugin binary the stage runs (default
	// DefaultCrashloopPlugin). Devices (default 20) send Rate uplinks per second in total
	// (default 500), from Warmup (default 2s) before the first kill.
	Kills int
	// Apps-live only (appslive.go): Changes is how many apps are set, and deleted, one after the
	// other (default 20).
	Changes int
	Plugin  string
	// Slow consumers only (slow.go); PlatoCommand is required, Warmup is the load before the
	// stalled devices stop reading, Duration the longest the run then waits for them to be closed,
	// and Rate the pushes per second to the healthy devices in total (default one per device):
	//
	// Stalled is how many devices stop reading; 0 takes StalledPercent of Devices (default 5).
	Stalled        int
	StalledPercent float64
	// StalledRate is the pushes per second to each stalled device, before and after it stops
	// reading. Default 4: 1 KB every 250 ms with the default PushSize.
	StalledRate float64
	// PushSize is every push's payload in bytes. Default 1024.
	PushSize int
	// DeviceRcvbuf is the SO_RCVBUF every device sets before it connects. Default 64 KiB; -1
	// keeps the kernel's, which grows as the device reads (up to net.ipv4.tcp_rmem's maximum).
	DeviceRcvbuf int
	// MaxUnsent, MaxStall and SendBuffer set the gateway's gateway.slow_consumer.max_unsent_bytes,
	// gateway.slow_consumer.max_stall and gateway.socket_send_buffer. 0: Plato's defaults.
	MaxUnsent  int
	MaxStall   time.Duration
	SendBuffer int
	// Progress, when set, receives a live progress line (\r-terminated) about twice a second.
	Progress io.Writer
}

func (o *Options) setDefaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&o.IPConfURL, DefaultIPConfURL)
	def(&o.StateAddr, DefaultStateAddr)
	def(&o.AppID, DefaultAppID)
	def(&o.AppKey, DefaultAppKey)
	def(&o.CredentialSecret, DefaultCredentialSecret)
	def(&o.CredentialKID, DefaultCredentialKID)
	def(&o.Sink, DefaultSink)
	switch o.Scenario {
	case ScenarioFailover, ScenarioUpgrade:
		o.setFailoverDefaults()
	case ScenarioCrashloop:
		o.setCrashloopDefaults()
	case ScenarioNATSRestart:
		o.setNATSRestartDefaults()
	case ScenarioAppsLive:
		if o.Changes == 0 {
			o.Changes = DefaultAppsLiveChanges
		}
	case ScenarioMigrate:
		o.setMigrateDefaults()
	case ScenarioSlowConsumers:
		o.setSlowDefaults()
	case ScenarioOverload:
		if len(o.Factors) == 0 {
			o.Factors = DefaultOverloadFactors
		}
		if o.Window == 0 {
			o.Window = DefaultOverloadWindow
		}
	}
	if o.Devices == 0 {
		o.Devices = DefaultDevices
	}
	if o.Duration == 0 && o.Scenario != ScenarioFailover && o.Scenario != ScenarioCrashloop && o.Scenario != ScenarioNATSRestart && o.Scenario != ScenarioSlowConsumers && o.Scenario != ScenarioMigrate && o.Scenario != ScenarioUpgrade {
		o.Duration = DefaultDuration
	}
	if o.Window == 0 && o.Rate == 0 && o.Scenario != ScenarioNATSRestart && o.Scenario != ScenarioMigrate {
		o.Window = 1
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.PerWorker == 0 {
		o.PerWorker = DefaultPerWorker
	}
	if o.Drain == 0 {
		o.Drain = DefaultDrain
	}
}

// validate checks limits and that every target is on loopback.
func (o *Options) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !slices.Contains(Scenarios, o.Scenario) {
		bad("unknown scenario %q (scenarios: %s)", o.Scenario, strings.Join(Scenarios, ", "))
	}
	if o.Scenario == ScenarioNATSRestart {
		errs = append(errs, o.validateNATSRestart()...)
		return errors.Join(errs...)
	}
	if o.Scenario == ScenarioAppsLive {
		errs = append(errs, o.validateAppsLive()...)
		return errors.Join(errs...)
	}
	if o.Scenario == ScenarioMigrate {
		errs = append(errs, o.validateMigrate()...)
		return errors.Join(errs...)
	}
	if o.Scenario == ScenarioFailover || o.Scenario == ScenarioUpgrade {
		errs = append(errs, o.validateFailover()...)
		return errors.Join(errs...)
	}
	if o.Scenario == ScenarioCrashloop {
		errs = append(errs, o.validateCrashloop()...)
		return errors.Join(errs...)
	}
	if o.Scenario == ScenarioSlowConsumers {
		errs = append(errs, o.validateSlow()...)
		return errors.Join(errs...)
	}
	if o.Devices < 1 || o.Devices > MaxDevices {
		bad("devices %d: must be 1 to %d", o.Devices, MaxDevices)
	}
	o.validateTransport(bad)
	for _, f := range o.Factors {
		if !(f > 0 && f <= 20) {
			bad("overload factor %v: must be above 0 and at most 20", f)
		}
	}
	if o.BusinessRate < 0 || (o.BusinessRate > 0 && o.Business == "") {
		bad("business rate %v: give it with --business, as a positive rate", o.BusinessRate)
	}
	if o.Scenario == ScenarioOverload && o.Rate != 0 {
		bad("overload: --rate is not given but derived, as each --factor times the measured capacity")
	}
	if o.Duration <= 0 || o.Duration > MaxDuration {
		bad("duration %v: must be above 0 and at most %v", o.Duration, MaxDuration)
	}
	if o.Rate < 0 || o.Rate > MaxRate {
		bad("rate %v: must be 0 to %d messages per second", o.Rate, MaxRate)
	}
	if o.Window < 0 || o.Window > MaxWindow {
		bad("window %d: must be 1 to %d", o.Window, MaxWindow)
	}
	if o.Batch < 0 || o.Batch > MaxBatch {
		bad("batch %d: must be 0 to %d", o.Batch, MaxBatch)
	}
	if o.Batch > 0 && o.Scenario != ScenarioDownlink {
		bad("--batch is for the downlink scenario")
	}
	if o.Window > 0 && o.Rate > 0 {
		bad("give a window (closed loop) or a rate (open loop), not both")
	}
	if o.BaselineRate != 0 && (!o.Baseline || o.Rate == 0 || o.BaselineRate < 0 || o.BaselineRate > MaxRate) {
		bad("baseline rate %v: give it with --baseline and --rate (an open loop), above 0 and at most %d messages per second", o.BaselineRate, MaxRate)
	}
	if o.Interval < 100*time.Millisecond || o.Interval > time.Minute {
		bad("interval %v: must be 100ms to 1m", o.Interval)
	}
	o.validateDevices(bad)
	if o.ConnectRate < 0 || o.ConnectRate > MaxRate {
		bad("connect rate %v: must be 0 to %d per second", o.ConnectRate, MaxRate)
	}
	if o.Sink == "" || o.AppID == "" {
		bad("app ID and sink must not be empty")
	}
	if err := checkLoopbackURL(o.IPConfURL); err != nil {
		errs = append(errs, err)
	}
	for _, g := range o.Gateways {
		if err := checkLoopbackAddr("gateway", endpointAddr(g)); err != nil {
			errs = append(errs, err)
		}
	}
	if hostPort, ok := webhookHostPort(o.Business); ok {
		if err := checkLoopbackAddr("business", hostPort); err != nil {
			errs = append(errs, err)
		}
		if len(o.WebhookSecret) < 16 {
			errs = append(errs, fmt.Errorf("a webhook business (--business %s) needs the app's webhook secret, at least 16 bytes: --webhook-secret or $%s", o.Business, webhookSecretEnv(o.AppID)))
		}
	} else if o.Business != "" {
		if err := checkLoopbackAddr("business", o.Business); err != nil {
			errs = append(errs, err)
		}
	}
	if o.Scenario == ScenarioDownlink || o.Scenario == ScenarioBroadcast {
		if err := checkLoopbackAddr("state", o.StateAddr); err != nil {
			errs = append(errs, err)
		}
	}
	if o.StateHTTP != "" {
		if o.Scenario != ScenarioDownlink {
			errs = append(errs, fmt.Errorf("--state-http is for the downlink scenario only"))
		} else if err := checkLoopbackAddr("state-http", o.StateHTTP); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// errNotLoopback is wrapped by every refusal of a target outside 127.0.0.0/8 (or ::1).
var errNotLoopback = errors.New("plato bench only generates load on loopback (127.0.0.0/8)")

func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("ipconf URL %q: want http://host:port", raw)
	}
	return checkLoopbackHost("ipconf", u.Hostname())
}

func checkLoopbackAddr(what, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s address %q: want host:port", what, addr)
	}
	return checkLoopbackHost(what, host)
}

// checkLoopbackHost accepts a loopback IP, or a name all of whose addresses are loopback.
func checkLoopbackHost(what, host string) error {
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("refusing %s target %s: %w", what, host, errNotLoopback)
		}
		return nil
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return fmt.Errorf("refusing %s target %s: cannot resolve it to check it is loopback", what, host)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("refusing %s target %s (%s): %w", what, host, ip, errNotLoopback)
		}
	}
	return nil
}

// validateDevices checks what every scenario's devices and workers share.
func (o *Options) validateDevices(bad func(format string, a ...any)) {
	if o.Heartbeat < 0 || (o.Heartbeat > 0 && o.Heartbeat < 100*time.Millisecond) {
		bad("heartbeat %v: must be at least 100ms", o.Heartbeat)
	}
	if o.Concurrency < 1 || o.Concurrency > 10_000 {
		bad("concurrency %d: must be 1 to 10000", o.Concurrency)
	}
	if o.Workers < 0 || o.Workers > 64 {
		bad("workers %d: must be 0 (automatic) to 64", o.Workers)
	}
	if o.PerWorker < 1 || o.PerWorker > 60_000 {
		bad("per-worker %d: must be 1 to 60000", o.PerWorker)
	}
	if o.Workers > 0 && o.Devices > o.Workers*o.PerWorker {
		bad("%d devices do not fit in %d workers of at most %d", o.Devices, o.Workers, o.PerWorker)
	}
	if o.Drain < 0 || o.Drain > time.Minute {
		bad("drain %v: must be 0 to 1m", o.Drain)
	}
}
