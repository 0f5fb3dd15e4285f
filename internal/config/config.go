// Package config is Plato's configuration: one struct for every role, loaded by koanf in the order
// defaults -> YAML file -> environment (PLATO_ prefix) -> command-line overrides, then validated with
// messages that name the field and where it came from.
package config

import (
	"fmt"
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

// Defaults for every field that has one; Default() assembles them.
const (
	DefaultDataDir          = "./data"
	DefaultNATSHost         = "127.0.0.1"
	DefaultNATSPort         = 4222
	DefaultRegistryBucket   = "plato_registry"
	DefaultAppsBucket       = "plato_apps"
	DefaultRegistryTTL      = 5 * time.Second
	DefaultTokenTTL         = 10 * time.Minute
	DefaultIPConfAddr       = "127.0.0.1:8080"
	DefaultMaxEndpoints     = 8
	DefaultStaleAfter       = 5 * time.Second
	DefaultKeepStale        = 5 * time.Minute
	DefaultGatewayAddr      = "127.0.0.1:8900"
	DefaultGatewayWSAddr    = "127.0.0.1:8910"
	DefaultMaxBody          = protocol.DefaultMaxBody
	DefaultLoginTimeout     = 10 * time.Second
	DefaultReadTimeout      = 30 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultWriteQueue       = 1024
	DefaultBandwidth        = 125_000_000 // bytes/s: a 1 Gbit/s NIC
	DefaultReportInterval   = time.Second
	DefaultStateAddr        = "127.0.0.1:8901"
	DefaultStateHTTPAddr    = "127.0.0.1:8081"
	DefaultHeartbeat        = 30 * time.Second
	DefaultHeartbeatTimeout = 90 * time.Second
	DefaultMaxInflight      = 1024
	DefaultReconnectWindow  = 2 * time.Minute
	DefaultStatePing        = 250 * time.Millisecond
	DefaultStatePingsLost   = 3
	DefaultMaxParked        = 1024
	// DefaultUplinkAckWait bounds how long a gateway's Deliver call waits for the answers of its
	// uplinks, to carry them back in its reply (docs/adr/0012-uplink-acks-in-the-deliver-reply.md).
	DefaultUplinkAckWait    = 2 * time.Millisecond
	DefaultUplinksInFlight  = 4096
	DefaultOverloadInterval = 100 * time.Millisecond
	DefaultRefuseLogins     = 0.8
	DefaultRefuseUplinks    = 0.9
	DefaultShedBroadcasts   = 0.95
	DefaultBusinessAddr     = "127.0.0.1:8902"
	DefaultDemoLoginAddr    = "127.0.0.1:8903"
	DefaultBusinessTimeout  = 3 * time.Second
	DefaultPushTimeout      = 5 * time.Second
	DefaultBatchSize        = 128
	DefaultBatchDelay       = time.Duration(0) // natural batching: an idle hop sends at once
	DefaultBatchLanes       = 4
	DefaultBatchMergeWait   = 2 * time.Millisecond // lanes share one call in flight (ADR 0016)
	DefaultRPCTimeout       = 3 * time.Second
	DefaultLogLevel         = "info"
	DefaultLogFormat        = "text"
	DefaultPluginDir        = "bin/plugins"
	DefaultPipelineLanes    = 16
	DefaultAdminAddr        = "127.0.0.1:9464"
	// DefaultDrainRate paces the Redirects of a drain: devices moved per second.
	DefaultDrainRate = 500
	// DefaultDrainShutdownTimeout bounds the drain a gateway does when it is told to stop.
	DefaultDrainShutdownTimeout = 10 * time.Second
	DefaultTraceExporter        = TraceExporterNone
	DefaultTraceSampling        = 0.01
	// DevTokenSecret is the secret the shipped configs use so `make up` works out of the box.
	// Plato logs a warning when it is in use; a fleet must set its own.
	DevTokenSecret = "plato-dev-secret-change-me-please"
	// DevDemoKey is the business key of the demo app in the shipped configs (see DevTokenSecret).
	DevDemoKey = "plato-dev-demo-key-change-me"
	// DevDemoJWTSecret signs the demo app's device credentials in the shipped configs (kid "dev"):
	// the demo business server issues them, and `plato token mint` signs with it by default.
	DevDemoJWTSecret = "plato-dev-demo-jwt-secret-change-me!"
)

// Defaults of the crash-loop breaker of plugin stages (pipeline.breaker, docs/pipeline.md): this
// many crashes of one stage's plugin within the window open it; while it is open, relaunches are
// paced by the probe interval; a relaunched process that stays up RecoverAfter closes it.
const (
	DefaultBreakerCrashes       = 5
	DefaultBreakerWindow        = time.Minute
	DefaultBreakerProbeInterval = time.Second
	DefaultBreakerRecoverAfter  = 10 * time.Second
)

// Defaults of the gateway's bounds on what one device may leave unread (docs/operations.md, "Slow
// consumers").
const (
	// DefaultWriteQueueBytes bounds the bytes a gateway holds for one device (queued plus being
	// written): 16 default-size frames, far above what a device that reads ever leaves waiting.
	DefaultWriteQueueBytes = 1 << 20
	// DefaultSocketSendBuffer is the SO_SNDBUF a gateway sets on each device socket. Linux doubles
	// it for its bookkeeping and then holds at most about 140 KB unsent (measured, docs/operations.md),
	// instead of autotuning up to net.ipv4.tcp_wmem's maximum (4 MB by default) per device.
	DefaultSocketSendBuffer = 64 << 10
	// DefaultSlowMaxUnsent and DefaultSlowMaxStall: a device with more than 64 KiB unsent for more
	// than 5 s is closed with 1205. The kernel's send queue counts bytes sent and not acknowledged
	// yet too: a device that keeps reading stays above 64 KiB only if it receives more than 64 KiB
	// per round trip for 5 s on end (docs/operations.md).
	DefaultSlowMaxUnsent = 64 << 10
	DefaultSlowMaxStall  = 5 * time.Second
	// DefaultUpgradeReadyTimeout and DefaultUpgradeDeadline bound an in-place upgrade of a
	// gateway: its new process must be ready within the first, and the old one passes its
	// connections within the second (what is left is redirected).
	DefaultUpgradeReadyTimeout = 30 * time.Second
	DefaultUpgradeDeadline     = 60 * time.Second
)

// Config is the whole configuration; each role reads its own section plus the shared ones.
type Config struct {
	// DataDir holds the embedded NATS store and the unix sockets of co-located roles. Default ./data.
	DataDir string `koanf:"data_dir"`
	Log     Log    `koanf:"log"`
	NATS    NATS   `koanf:"nats"`
	// Registry is where gateways and state servers announce themselves.
	Registry Registry `koanf:"registry"`
	Auth     Auth     `koanf:"auth"`
	// Apps are the businesses Plato serves, by app ID (apps.go). An app not listed gets nothing.
	Apps     map[string]App `koanf:"apps"`
	IPConf   IPConf         `koanf:"ipconf"`
	Gateway  Gateway        `koanf:"gateway"`
	State    State          `koanf:"state"`
	Pipeline Pipeline       `koanf:"pipeline"`
	Demo     Demo           `koanf:"demo"`
	// Admin is the process's operations HTTP server (/metrics, /healthz, the ops API).
	Admin Admin `koanf:"admin"`
	// Ops authenticates the ops API (docs/operations.md, "Moving devices").
	Ops       Ops       `koanf:"ops"`
	Telemetry Telemetry `koanf:"telemetry"`
	// Runtime tunes the Go runtime of a process serving roles.
	Runtime Runtime `koanf:"runtime"`
}

// Runtime tunes the Go runtime of a process serving roles (plato up and each role's command).
type Runtime struct {
	// GCHeapFloor is the heap, in bytes, that a process may grow to before the collector runs,
	// however little is live (sdk/gcfloor): a small heap that moves many messages is then
	// collected less often. It changes nothing once half of it is live, and nothing when GOGC is
	// set in the environment. Default 64 MiB; 0 turns it off.
	GCHeapFloor int64 `koanf:"gc_heap_floor"`
}

// DefaultGCHeapFloor is runtime.gc_heap_floor's default.
const DefaultGCHeapFloor = 64 << 20

// Ops configures the ops API served on the admin address (`plato ops`, docs/operations.md).
type Ops struct {
	// Key is the bearer key the ops API and the ops console's API require (Authorization:
	// Bearer <key>), and that `plato ops` sends. Empty turns them off: every call is refused.
	// Default empty.
	Key string `koanf:"key"`
}

// Admin configures the one operations HTTP server a process runs, whatever its roles.
type Admin struct {
	// Addr serves GET /metrics (Prometheus text) and GET /healthz. Default 127.0.0.1:9464; empty
	// turns it off; port 0 picks a free one.
	Addr string `koanf:"addr"`
}

// Trace exporters accepted by telemetry.traces.exporter.
const (
	TraceExporterNone   = "none"   // no spans are recorded
	TraceExporterStdout = "stdout" // JSON lines, one span per line, to telemetry.traces.file
	TraceExporterOTLP   = "otlp"   // OTLP over gRPC to telemetry.traces.endpoint
)

// Telemetry configures OpenTelemetry (docs/observability.md). Metrics need no setting: they are
// always recorded and served on admin.addr.
type Telemetry struct {
	Traces Traces `koanf:"traces"`
}

// Traces configures tracing.
type Traces struct {
	// Exporter is none, stdout or otlp. Default none.
	Exporter string `koanf:"exporter"`
	// File receives the stdout exporter's spans (appended). Required with stdout.
	File string `koanf:"file"`
	// Endpoint is the OTLP gRPC collector (host:port, plaintext). Required with otlp.
	Endpoint string `koanf:"endpoint"`
	// Sampling is the fraction of signals traced, 0 to 1. Default 0.01.
	Sampling float64 `koanf:"sampling"`
}

// Pipeline configures the per-app pipelines of stages the state server runs every signal through
// (docs/pipeline.md).
type Pipeline struct {
	// Dir holds one YAML file per app ID (<app_id>.yaml) and default.yaml for the others. Empty: no
	// pipeline; signals go straight to Plato's own handling. configs/plato.yaml sets configs/pipelines.
	Dir string `koanf:"dir"`
	// PluginDir is where relative plugin paths in the YAML resolve. Default bin/plugins.
	PluginDir string `koanf:"plugin_dir"`
	// Lanes are parallel ordered workers; a connection's signals always use the same one. Default 16:
	// more lanes split the same traffic into smaller batches, which costs plugin round trips
	// (docs/performance.md, pipeline lanes).
	Lanes int `koanf:"lanes"`
	// Watch reloads an app's pipeline when its file changes. Default true.
	Watch bool `koanf:"watch"`
	// Breaker marks a plugin stage that keeps crashing as failing (docs/pipeline.md, crash loops).
	Breaker Breaker `koanf:"breaker"`
}

// Breaker is the crash-loop circuit breaker of every plugin stage. A crash is a plugin process
// that exited, was killed as hung, failed its health check, or failed to start. A stage whose
// breaker is open is reported on /healthz and by plato_pipeline_stage_breaker_state; its signals
// get its on_failure answer at once while it has no process, and it is relaunched at the probe
// pace until a process stays up RecoverAfter.
type Breaker struct {
	// Crashes within Window open the breaker. Default 5.
	Crashes int `koanf:"crashes"`
	// Window is how far back crashes count. Default 1m.
	Window time.Duration `koanf:"window"`
	// ProbeInterval spaces relaunches while the breaker is open: each waits a random time between
	// half of it and all of it after the previous launch. Default 1s.
	ProbeInterval time.Duration `koanf:"probe_interval"`
	// RecoverAfter is how long a relaunched process must stay up to close the breaker. Default 10s.
	RecoverAfter time.Duration `koanf:"recover_after"`
}

// Log configures the process logger (log/slog on stderr).
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `koanf:"level"`
	// Format is text or json. Default text.
	Format string `koanf:"format"`
}

// NATS says which NATS the platform uses.
type NATS struct {
	// URL of an external NATS cluster ("nats://host:4222,..."). Empty: `plato up` embeds a server and
	// the other roles connect to the embedded default address.
	URL      string       `koanf:"url"`
	Embedded EmbeddedNATS `koanf:"embedded"`
}

// EmbeddedNATS configures the server `plato up` starts when NATS.URL is empty.
type EmbeddedNATS struct {
	// Host to listen on. Default 127.0.0.1.
	Host string `koanf:"host"`
	// Port to listen on; 0 picks a free one. Default 4222.
	Port int `koanf:"port"`
	// StoreDir is the JetStream directory. Default <data_dir>/nats.
	StoreDir string `koanf:"store_dir"`
	// Cluster makes the embedded server one node of a NATS cluster (`plato nats` on three
	// machines). Empty name: it runs alone.
	Cluster NATSCluster `koanf:"cluster"`
}

// NATSCluster is the embedded server's part in a NATS cluster.
type NATSCluster struct {
	// Name of the cluster, the same on every node. Empty: no cluster.
	Name string `koanf:"name"`
	// Addr is where the node listens for the other nodes' routes, host:port. Required with a name.
	Addr string `koanf:"addr"`
	// Routes are the other nodes' route URLs, comma-separated:
	// "nats-route://10.0.0.2:6222,nats-route://10.0.0.3:6222".
	Routes string `koanf:"routes"`
}

// Registry configures the NATS key-value bucket of live processes.
type Registry struct {
	// Bucket name. Default plato_registry.
	Bucket string `koanf:"bucket"`
	// TTL after which a process that stopped reporting disappears. Default 5s.
	TTL time.Duration `koanf:"ttl"`
	// Replicas is how many servers of a NATS cluster keep the bucket: 0 (the default) picks 3 in
	// a cluster and 1 on a lone server.
	Replicas int `koanf:"replicas"`
	// AppsBucket is the NATS key-value bucket of the apps that change live (`plato apps set`),
	// one key per app ID, overlaid on the file's apps (docs/operations.md, "Apps"). Empty: the
	// roles use the file's apps only. Default plato_apps.
	AppsBucket string `koanf:"apps_bucket"`
}

// Auth configures access tokens, issued by ipconf and verified at login.
type Auth struct {
	// TokenSecret signs tokens (HMAC-SHA256) and proves gateways to state servers; at least 16
	// bytes, the same on every ipconf, gateway and state server.
	TokenSecret string `koanf:"token_secret"`
	// TokenTTL is how long a gateway token stays valid: short, since a device gets a fresh one
	// from ipconf with its business credential whenever it connects. Default 10m.
	TokenTTL time.Duration `koanf:"token_ttl"`
}

// IPConf configures the endpoint dispatch service.
type IPConf struct {
	// Addr is the HTTP listen address. Default 127.0.0.1:8080.
	Addr string `koanf:"addr"`
	// MaxEndpoints is how many ranked endpoints a device gets. Default 8.
	MaxEndpoints int `koanf:"max_endpoints"`
	// StaleAfter drops a gateway whose last load report is older than this. Default 5s.
	StaleAfter time.Duration `koanf:"stale_after"`
	// KeepStale is how long ipconf keeps handing out the gateways it last knew while the registry
	// is unreachable (answers say "stale": true); 0 hands out none then. Default 5m.
	KeepStale time.Duration `koanf:"keep_stale"`
}

// Gateway configures the device-facing TCP server.
type Gateway struct {
	// ID names this gateway in the registry. Default gw-<hostname>-<pid>.
	ID string `koanf:"id"`
	// Addr is the device TCP listen address. Default 127.0.0.1:8900.
	Addr string `koanf:"addr"`
	// Advertise is the "host:port" ipconf hands to devices. Default: the listen address.
	Advertise string `koanf:"advertise"`
	// WSAddr is the device WebSocket listen address (path /plato, one Plato frame per binary
	// message; docs/protocol.md). Empty: no WebSocket listener. Default 127.0.0.1:8910.
	WSAddr string `koanf:"ws_addr"`
	// WSAdvertise is what ipconf hands to WebSocket clients: a "host:port" (the URL is then
	// ws://host:port/plato), or a whole ws:// or wss:// URL, for a TLS proxy in front. Default: the
	// WebSocket listen address.
	WSAdvertise string `koanf:"ws_advertise"`
	// RPCAddr is where the gateway's Kitex service listens for the state server: a unix socket path,
	// or host:port across machines. Default <data_dir>/gateway-<id>.sock.
	RPCAddr string `koanf:"rpc_addr"`
	// MaxBody is the largest frame body accepted from a device. Default 65536.
	MaxBody int `koanf:"max_body"`
	// LoginTimeout closes a connection that has not sent Login by then (code 1206). Default 10s.
	LoginTimeout time.Duration `koanf:"login_timeout"`
	// ReadTimeout bounds how long a partly received frame may take to complete. Default 30s.
	ReadTimeout time.Duration `koanf:"read_timeout"`
	// WriteTimeout bounds a blocked write to a device before it is closed as a slow consumer. Default 10s.
	WriteTimeout time.Duration `koanf:"write_timeout"`
	// WriteQueue is how many frames may wait for a device's socket before it is closed as a slow
	// consumer (code 1205). Default 1024.
	WriteQueue int `koanf:"write_queue"`
	// WriteQueueBytes bounds the bytes the gateway holds for one device, queued or being written to
	// its socket; a frame that would go over it closes the device as a slow consumer (1205). A frame
	// is always taken into an empty queue, however large. Default 1 MiB.
	WriteQueueBytes int `koanf:"write_queue_bytes"`
	// SocketSendBuffer is the SO_SNDBUF set on every device socket when it is accepted, so that one
	// device cannot pin megabytes of kernel memory; 0 leaves the kernel's autotuning. Default 64 KiB.
	SocketSendBuffer int `koanf:"socket_send_buffer"`
	// SlowConsumer closes devices that do not read what is sent to them.
	SlowConsumer SlowConsumer `koanf:"slow_consumer"`
	// Bandwidth is the capacity in bytes/s reported to ipconf for scoring. Default 125000000 (1 Gbit/s).
	Bandwidth float64 `koanf:"bandwidth"`
	// ReportInterval is how often load is published to the registry. Default 1s.
	ReportInterval time.Duration `koanf:"report_interval"`
	// StatePingInterval is how often the gateway asks each state server whether it is alive; one
	// that misses StatePingsLost answers in a row is lost, and its connections move to the others.
	// Default 250ms.
	StatePingInterval time.Duration `koanf:"state_ping_interval"`
	// StatePingsLost is how many pings in a row a state server may miss before it is lost.
	// Default 3.
	StatePingsLost int `koanf:"state_pings_lost"`
	// Batch tunes frames forwarded to the state server.
	Batch Batch `koanf:"batch"`
	// MaxUplinksInFlight bounds the uplinks this gateway has forwarded to state servers and not
	// yet seen answered; an uplink beyond it is answered UplinkAck 1303 (retry later) at once, so
	// an overloaded fleet queues no more than this and answers in time. Default 4096.
	MaxUplinksInFlight int `koanf:"max_uplinks_in_flight"`
	// Overload tunes the gateway's overload manager.
	Overload Overload `koanf:"overload"`
	// Drain paces the moves of devices to other gateways by Redirect (docs/operations.md).
	Drain Drain `koanf:"drain"`
	// Upgrade tunes the in-place upgrade (kill -USR2, plato gateway upgrade).
	Upgrade Upgrade `koanf:"upgrade"`
}

// Drain paces how a gateway moves its devices to other gateways by Redirect: `plato ops drain`
// and the drain a gateway does when it is told to stop while other gateways are live.
type Drain struct {
	// Rate is how many devices per second a drain redirects when `plato ops drain` names no
	// --rate, and the rate of the drain at shutdown. Default 500.
	Rate int `koanf:"rate"`
	// ShutdownTimeout bounds the drain a gateway does when it is stopped (SIGTERM, Ctrl-C) while
	// other gateways are live; the devices still on it then get Close 1204. 0 skips that drain:
	// every device gets Close 1204 at once. Default 10s.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
}

// Upgrade tunes a gateway's in-place upgrade (docs/operations.md, "Upgrading a gateway").
type Upgrade struct {
	// ControlDir holds each gateway process's control socket, gateway-<pid>.ctl, which `plato
	// gateway upgrade` talks to. Default: data_dir.
	ControlDir string `koanf:"control_dir"`
	// ReadyTimeout is how long the new process has to report ready. Default 30s.
	ReadyTimeout time.Duration `koanf:"ready_timeout"`
	// Deadline bounds passing the connections; those left are redirected. Default 60s.
	Deadline time.Duration `koanf:"deadline"`
}

// Overload tunes a role's overload manager (docs/operations.md, "Overload"): resources (the heap,
// the queues) report how close they are to their limit, 1 meaning at it, and each action starts
// when the highest of them reaches its threshold.
type Overload struct {
	// MemoryLimit is the heap, in bytes, that counts as full. 0: Go's memory limit (GOMEMLIMIT)
	// when one is set, else the heap is not watched. Default 0.
	MemoryLimit int64 `koanf:"memory_limit"`
	// RefuseLogins is the pressure at which Logins and Resumes are refused (1303) and the gateway
	// tells ipconf to send devices elsewhere. Default 0.8.
	RefuseLogins float64 `koanf:"refuse_logins"`
	// RefuseUplinks is the pressure at which uplinks are refused (UplinkAck 1303). Default 0.9.
	RefuseUplinks float64 `koanf:"refuse_uplinks"`
	// ShedBroadcasts is the pressure at which session broadcasts are dropped. Default 0.95.
	ShedBroadcasts float64 `koanf:"shed_broadcasts"`
	// Interval is how often the resources are sampled. Default 100ms.
	Interval time.Duration `koanf:"interval"`
}

// SlowConsumer closes a device whose unsent bytes (the kernel's send queue, SIOCOUTQ, plus what
// the gateway holds for it) stay above MaxUnsentBytes for longer than MaxStall, with Close 1205.
type SlowConsumer struct {
	// MaxUnsentBytes is the threshold. Default 64 KiB.
	MaxUnsentBytes int `koanf:"max_unsent_bytes"`
	// MaxStall is how long a device may stay above it. Default 5s.
	MaxStall time.Duration `koanf:"max_stall"`
}

// State configures the state server.
type State struct {
	// ID names this state server in the registry. Default state-<hostname>-<pid>.
	ID string `koanf:"id"`
	// Addr is the Kitex listen address for gateways and business servers. Default 127.0.0.1:8901.
	Addr string `koanf:"addr"`
	// HTTPAddr serves Plato's business API as HTTP/JSON (the same calls as the Kitex one, for
	// business servers in any language; docs/business.md). Default 127.0.0.1:8081; empty turns
	// it off.
	HTTPAddr string `koanf:"http_addr"`
	// Advertise is the address gateways dial. Default: the listen address.
	Advertise string `koanf:"advertise"`
	// HeartbeatInterval is told to devices at login. Default 30s.
	HeartbeatInterval time.Duration `koanf:"heartbeat_interval"`
	// HeartbeatTimeout closes a connection silent for this long (code 1201). Default 90s.
	HeartbeatTimeout time.Duration `koanf:"heartbeat_timeout"`
	// MaxInflight bounds the downlinks per connection waiting for the device's ACK. Default 1024.
	MaxInflight int `koanf:"max_inflight"`
	// PushTimeout is the longest a business Push with wait_ack waits. Default 5s.
	PushTimeout time.Duration `koanf:"push_timeout"`
	// ReconnectWindow is how long a connection that dropped without a Close is kept for the device
	// to Resume it (docs/protocol.md §11.1). 0 keeps nothing: every drop ends the connection.
	// Default 2m.
	ReconnectWindow time.Duration `koanf:"reconnect_window"`
	// MaxParked bounds the pushes kept for one dropped connection until it resumes; beyond it the
	// oldest are given up on (reported undelivered when at least once). Default 1024.
	MaxParked int `koanf:"max_parked"`
	// RPCTimeout bounds each call to a gateway. Default 3s.
	RPCTimeout time.Duration `koanf:"rpc_timeout"`
	// UplinkAckWait is how long the state server holds a gateway's Deliver call for the answers of
	// the uplinks in it, to return them in the reply rather than by a Push call of their own; the
	// answers not ready by then go by Push. 0 sends every answer by Push. Default 2ms.
	UplinkAckWait time.Duration `koanf:"uplink_ack_wait"`
	Business      Business      `koanf:"business"`
	// Batch tunes frames pushed to gateways and events delivered to business servers.
	Batch Batch `koanf:"batch"`
	// Overload tunes the state server's overload manager.
	Overload Overload `koanf:"overload"`
	// InProcessLink has a gateway and this state server, when one process runs both, call each
	// other's service directly instead of over loopback Kitex, with the wire's guarantees kept
	// (docs/adr/0015-in-process-link.md). false: over Kitex as between processes. Default true.
	InProcessLink bool `koanf:"in_process_link"`
}

// DefaultInProcessLink has a gateway and a state server of one process call each other directly
// rather than over loopback Kitex (docs/adr/0015-in-process-link.md).
const DefaultInProcessLink = true

// Business tunes how state servers reach business servers (each app's address and keys are in
// apps).
type Business struct {
	// Timeout bounds each delivery call, and each connect callback ipconf makes. Default 3s.
	Timeout time.Duration `koanf:"timeout"`
}

// Batch tunes micro-batching on one hop.
type Batch struct {
	// MaxSize is the most items per RPC. Default 128.
	MaxSize int `koanf:"max_size"`
	// MaxDelay is how long the first item of a batch waits for company on an idle lane. Default 0:
	// natural batching, an idle lane sends at once and a busy one sends what arrived during the
	// call in flight as soon as it returns (docs/adr/0010-natural-batching.md). A positive value
	// lingers, for deployments that want fewer, bigger calls at low rates more than latency.
	MaxDelay time.Duration `koanf:"max_delay"`
	// Lanes are independent ordered streams (a connection always uses the same one). Default 4.
	Lanes int `koanf:"lanes"`
	// MergeWait merges the lanes' calls: while a call to a peer is in flight, the other lanes'
	// items wait for it and go out together in one call when it returns, at most this long; a
	// lane with a full batch, or whose items waited this long, calls on its own. Default 2ms;
	// 0 lets every lane call on its own (docs/adr/0016-merged-lanes.md).
	MergeWait time.Duration `koanf:"merge_wait"`
}

// Demo configures the demo chat business server `plato up` starts.
type Demo struct {
	// Enabled starts it with `plato up`. Default true in configs/plato.yaml.
	Enabled bool `koanf:"enabled"`
	// Addr is its Kitex listen address. Default 127.0.0.1:8902.
	Addr string `koanf:"addr"`
	// LoginAddr is its HTTP login endpoint (GET /login?did=D): it issues device credentials
	// signed with each app's first JWT secret, as an app's backend would. Default
	// 127.0.0.1:8903; empty turns it off.
	LoginAddr string `koanf:"login_addr"`
}

// Default returns the configuration with every default filled in.
func Default() Config {
	b := Batch{MaxSize: DefaultBatchSize, MaxDelay: DefaultBatchDelay, Lanes: DefaultBatchLanes, MergeWait: DefaultBatchMergeWait}
	o := Overload{
		RefuseLogins: DefaultRefuseLogins, RefuseUplinks: DefaultRefuseUplinks,
		ShedBroadcasts: DefaultShedBroadcasts, Interval: DefaultOverloadInterval,
	}
	breaker := Breaker{
		Crashes: DefaultBreakerCrashes, Window: DefaultBreakerWindow,
		ProbeInterval: DefaultBreakerProbeInterval, RecoverAfter: DefaultBreakerRecoverAfter,
	}
	return Config{
		DataDir:  DefaultDataDir,
		Log:      Log{Level: DefaultLogLevel, Format: DefaultLogFormat},
		NATS:     NATS{Embedded: EmbeddedNATS{Host: DefaultNATSHost, Port: DefaultNATSPort}},
		Registry: Registry{Bucket: DefaultRegistryBucket, TTL: DefaultRegistryTTL, AppsBucket: DefaultAppsBucket},
		Auth:     Auth{TokenTTL: DefaultTokenTTL},
		IPConf:   IPConf{Addr: DefaultIPConfAddr, MaxEndpoints: DefaultMaxEndpoints, StaleAfter: DefaultStaleAfter, KeepStale: DefaultKeepStale},
		Gateway: Gateway{
			Addr: DefaultGatewayAddr, WSAddr: DefaultGatewayWSAddr, MaxBody: DefaultMaxBody, LoginTimeout: DefaultLoginTimeout,
			ReadTimeout: DefaultReadTimeout, WriteTimeout: DefaultWriteTimeout, WriteQueue: DefaultWriteQueue,
			WriteQueueBytes: DefaultWriteQueueBytes, SocketSendBuffer: DefaultSocketSendBuffer,
			SlowConsumer: SlowConsumer{MaxUnsentBytes: DefaultSlowMaxUnsent, MaxStall: DefaultSlowMaxStall},
			Bandwidth:    DefaultBandwidth, ReportInterval: DefaultReportInterval, Batch: b,
			StatePingInterval: DefaultStatePing, StatePingsLost: DefaultStatePingsLost,
			MaxUplinksInFlight: DefaultUplinksInFlight, Overload: o,
			Drain:   Drain{Rate: DefaultDrainRate, ShutdownTimeout: DefaultDrainShutdownTimeout},
			Upgrade: Upgrade{ReadyTimeout: DefaultUpgradeReadyTimeout, Deadline: DefaultUpgradeDeadline},
		},
		State: State{
			Addr: DefaultStateAddr, HTTPAddr: DefaultStateHTTPAddr, HeartbeatInterval: DefaultHeartbeat, HeartbeatTimeout: DefaultHeartbeatTimeout,
			MaxInflight: DefaultMaxInflight, PushTimeout: DefaultPushTimeout, RPCTimeout: DefaultRPCTimeout,
			ReconnectWindow: DefaultReconnectWindow, MaxParked: DefaultMaxParked, UplinkAckWait: DefaultUplinkAckWait,
			Business: Business{Timeout: DefaultBusinessTimeout}, Batch: b, Overload: o, InProcessLink: DefaultInProcessLink,
		},
		Pipeline: Pipeline{PluginDir: DefaultPluginDir, Lanes: DefaultPipelineLanes, Watch: true, Breaker: breaker},
		Demo:     Demo{Addr: DefaultBusinessAddr, LoginAddr: DefaultDemoLoginAddr},
		Admin:    Admin{Addr: DefaultAdminAddr},
		Runtime:  Runtime{GCHeapFloor: DefaultGCHeapFloor},
		Telemetry: Telemetry{Traces: Traces{
			Exporter: DefaultTraceExporter, Sampling: DefaultTraceSampling,
		}},
	}
}

// NATSURL is the URL roles connect to: the external one, or the embedded server's default address.
func (c *Config) NATSURL() string {
	if c.NATS.URL != "" {
		return c.NATS.URL
	}
	return fmt.Sprintf("nats://%s:%d", c.NATS.Embedded.Host, c.NATS.Embedded.Port)
}
