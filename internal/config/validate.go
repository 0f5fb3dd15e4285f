package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Validate checks every field a role relies on and names the offending key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	hostPort := func(key, v string, allowEmpty bool) {
		if v == "" {
			if !allowEmpty {
				bad(key, "is required (host:port)")
			}
			return
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			bad(key, "%q is not host:port: %v", v, err)
		}
	}
	addrOrSocket := func(key, v string) {
		if v == "" || strings.Contains(v, "/") {
			return
		}
		hostPort(key, v, true)
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, "must be a positive duration, got %v", d)
		}
	}
	atLeast := func(key string, v, lo int) {
		if v < lo {
			bad(key, "must be at least %d, got %d", lo, v)
		}
	}

	if c.DataDir == "" {
		bad("data_dir", "is required")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	if c.NATS.Embedded.Port < 0 || c.NATS.Embedded.Port > 65535 {
		bad("nats.embedded.port", "%d is not a port", c.NATS.Embedded.Port)
	}
	if c.Registry.Bucket == "" || strings.ContainsAny(c.Registry.Bucket, " .*>") {
		bad("registry.bucket", "%q is not a valid bucket name (letters, digits, - and _)", c.Registry.Bucket)
	}
	if b := c.Registry.AppsBucket; b != "" && (strings.ContainsAny(b, " .*>") || b == c.Registry.Bucket) {
		bad("registry.apps_bucket", "%q is not a valid bucket name of its own (letters, digits, - and _; not registry.bucket)", b)
	}
	if cl := c.NATS.Embedded.Cluster; cl.Name != "" || cl.Addr != "" || cl.Routes != "" {
		switch {
		case cl.Name == "" || strings.ContainsAny(cl.Name, " .*>"):
			bad("nats.embedded.cluster.name", "%q: a cluster needs a name (letters, digits, - and _)", cl.Name)
		case cl.Addr == "":
			bad("nats.embedded.cluster.addr", "is required with a cluster name: where this node listens for the others' routes")
		default:
			hostPort("nats.embedded.cluster.addr", cl.Addr, false)
		}
		for _, r := range strings.Split(cl.Routes, ",") {
			if r = strings.TrimSpace(r); r == "" {
				continue
			}
			if u, err := url.Parse(r); err != nil || u.Scheme != "nats-route" || u.Host == "" {
				bad("nats.embedded.cluster.routes", "%q is not a route URL like nats-route://10.0.0.2:6222", r)
			}
		}
	}
	positive("registry.ttl", c.Registry.TTL)
	if c.Registry.Replicas < 0 || c.Registry.Replicas > 5 {
		bad("registry.replicas", "must be 0 (3 in a cluster, 1 otherwise) to 5, got %d", c.Registry.Replicas)
	}
	if len(c.Auth.TokenSecret) < 16 {
		bad("auth.token_secret", "must be at least 16 bytes (set it in the config file or PLATO_AUTH__TOKEN_SECRET)")
	}
	positive("auth.token_ttl", c.Auth.TokenTTL)

	hostPort("ipconf.addr", c.IPConf.Addr, false)
	atLeast("ipconf.max_endpoints", c.IPConf.MaxEndpoints, 1)
	positive("ipconf.stale_after", c.IPConf.StaleAfter)
	if c.IPConf.KeepStale < 0 {
		bad("ipconf.keep_stale", "must not be negative (0 hands out no stale list), got %v", c.IPConf.KeepStale)
	}

	g := &c.Gateway
	hostPort("gateway.addr", g.Addr, false)
	hostPort("gateway.advertise", g.Advertise, true)
	hostPort("gateway.ws_addr", g.WSAddr, true)
	if u := g.WSAdvertise; strings.HasPrefix(u, "ws://") || strings.HasPrefix(u, "wss://") {
		if p, err := url.Parse(u); err != nil || p.Host == "" {
			bad("gateway.ws_advertise", "%q is not a ws:// or wss:// URL with a host", u)
		}
	} else {
		hostPort("gateway.ws_advertise", u, true)
	}
	addrOrSocket("gateway.rpc_addr", g.RPCAddr)
	if g.MaxBody < 64 || g.MaxBody > 16<<20 {
		bad("gateway.max_body", "must be between 64 and 16777216 bytes, got %d", g.MaxBody)
	}
	positive("gateway.login_timeout", g.LoginTimeout)
	positive("gateway.read_timeout", g.ReadTimeout)
	positive("gateway.write_timeout", g.WriteTimeout)
	atLeast("gateway.write_queue", g.WriteQueue, 1)
	atLeast("gateway.write_queue_bytes", g.WriteQueueBytes, 1024)
	if g.SocketSendBuffer != 0 && (g.SocketSendBuffer < 4096 || g.SocketSendBuffer > 64<<20) {
		bad("gateway.socket_send_buffer", "must be 0 (the kernel's autotuning) or 4096 to 67108864 bytes, got %d", g.SocketSendBuffer)
	}
	atLeast("gateway.slow_consumer.max_unsent_bytes", g.SlowConsumer.MaxUnsentBytes, 1024)
	positive("gateway.slow_consumer.max_stall", g.SlowConsumer.MaxStall)
	positive("gateway.upgrade.ready_timeout", g.Upgrade.ReadyTimeout)
	positive("gateway.upgrade.deadline", g.Upgrade.Deadline)
	if g.Bandwidth <= 0 {
		bad("gateway.bandwidth", "must be positive bytes/s, got %v", g.Bandwidth)
	}
	positive("gateway.report_interval", g.ReportInterval)
	positive("gateway.state_ping_interval", g.StatePingInterval)
	atLeast("gateway.state_pings_lost", g.StatePingsLost, 1)
	c.validateBatch("gateway.batch", g.Batch, bad)
	atLeast("gateway.max_uplinks_in_flight", g.MaxUplinksInFlight, 1)
	validateOverload("gateway.overload", g.Overload, bad)
	atLeast("gateway.drain.rate", g.Drain.Rate, 1)
	if g.Drain.ShutdownTimeout < 0 {
		bad("gateway.drain.shutdown_timeout", "must be 0 (no drain at shutdown) or a positive duration, got %v", g.Drain.ShutdownTimeout)
	}

	s := &c.State
	hostPort("state.addr", s.Addr, false)
	hostPort("state.http_addr", s.HTTPAddr, true)
	hostPort("state.advertise", s.Advertise, true)
	positive("state.heartbeat_interval", s.HeartbeatInterval)
	positive("state.heartbeat_timeout", s.HeartbeatTimeout)
	if s.HeartbeatTimeout > 0 && s.HeartbeatTimeout <= s.HeartbeatInterval {
		bad("state.heartbeat_timeout", "(%v) must be longer than state.heartbeat_interval (%v)", s.HeartbeatTimeout, s.HeartbeatInterval)
	}
	atLeast("state.max_inflight", s.MaxInflight, 1)
	positive("state.push_timeout", s.PushTimeout)
	if s.ReconnectWindow < 0 {
		bad("state.reconnect_window", "must not be negative (0 keeps nothing for a Resume), got %v", s.ReconnectWindow)
	}
	atLeast("state.max_parked", s.MaxParked, 1)
	positive("state.rpc_timeout", s.RPCTimeout)
	if s.UplinkAckWait < 0 || s.UplinkAckWait > time.Second {
		bad("state.uplink_ack_wait", "must be between 0 (answers by Push only) and 1s, got %v", s.UplinkAckWait)
	} else if s.RPCTimeout > 0 && s.UplinkAckWait >= s.RPCTimeout {
		bad("state.uplink_ack_wait", "(%v) must be shorter than state.rpc_timeout (%v), which bounds the gateways' Deliver calls it holds", s.UplinkAckWait, s.RPCTimeout)
	}
	positive("state.business.timeout", s.Business.Timeout)
	c.validateBatch("state.batch", s.Batch, bad)
	validateOverload("state.overload", s.Overload, bad)
	if c.Pipeline.Dir != "" && c.Pipeline.PluginDir == "" {
		bad("pipeline.plugin_dir", "is required when pipeline.dir is set")
	}
	if c.Pipeline.Lanes < 1 || c.Pipeline.Lanes > 4096 {
		bad("pipeline.lanes", "must be between 1 and 4096, got %d", c.Pipeline.Lanes)
	}
	c.validateBreaker(bad)
	c.validateApps(bad)
	hostPort("demo.addr", c.Demo.Addr, !c.Demo.Enabled)
	hostPort("demo.login_addr", c.Demo.LoginAddr, true)
	hostPort("admin.addr", c.Admin.Addr, true)
	c.validateTraces(bad)
	if c.Runtime.GCHeapFloor < 0 {
		bad("runtime.gc_heap_floor", "must not be negative (0: off), got %d", c.Runtime.GCHeapFloor)
	}
	return errors.Join(errs...)
}

func validateOverload(key string, o Overload, bad func(string, string, ...any)) {
	if o.MemoryLimit < 0 {
		bad(key+".memory_limit", "must not be negative (0: Go's memory limit, if set), got %d", o.MemoryLimit)
	}
	for _, t := range []struct {
		name string
		v    float64
	}{{"refuse_logins", o.RefuseLogins}, {"refuse_uplinks", o.RefuseUplinks}, {"shed_broadcasts", o.ShedBroadcasts}} {
		if !(t.v > 0) {
			bad(key+"."+t.name, "must be a positive pressure (1 = a resource at its limit), got %v", t.v)
		}
	}
	if o.Interval <= 0 {
		bad(key+".interval", "must be positive, got %v", o.Interval)
	}
}

func (c *Config) validateBreaker(bad func(string, string, ...any)) {
	b := c.Pipeline.Breaker
	if b.Crashes < 1 || b.Crashes > 1000 {
		bad("pipeline.breaker.crashes", "must be between 1 and 1000, got %d", b.Crashes)
	}
	if b.Window < time.Second || b.Window > 24*time.Hour {
		bad("pipeline.breaker.window", "must be between 1s and 24h, got %v", b.Window)
	}
	if b.ProbeInterval < 10*time.Millisecond || b.ProbeInterval > time.Minute {
		bad("pipeline.breaker.probe_interval", "must be between 10ms and 1m, got %v", b.ProbeInterval)
	}
	if b.RecoverAfter < 100*time.Millisecond || b.RecoverAfter > time.Hour {
		bad("pipeline.breaker.recover_after", "must be between 100ms and 1h, got %v", b.RecoverAfter)
	}
}

func (c *Config) validateBatch(key string, b Batch, bad func(string, string, ...any)) {
	if b.MaxSize < 1 {
		bad(key+".max_size", "must be at least 1, got %d", b.MaxSize)
	}
	if b.MergeWait < 0 {
		bad(key+".merge_wait", "must not be negative, got %v", b.MergeWait)
	}
	if b.MaxDelay < 0 {
		bad(key+".max_delay", "must not be negative, got %v", b.MaxDelay)
	}
	if b.Lanes < 1 || b.Lanes > 256 {
		bad(key+".lanes", "must be between 1 and 256, got %d", b.Lanes)
	}
}

func (c *Config) validateTraces(bad func(string, string, ...any)) {
	t := c.Telemetry.Traces
	switch t.Exporter {
	case TraceExporterNone:
	case TraceExporterStdout:
		if t.File == "" {
			bad("telemetry.traces.file", "is required when telemetry.traces.exporter is stdout")
		}
	case TraceExporterOTLP:
		if _, _, err := net.SplitHostPort(t.Endpoint); err != nil {
			bad("telemetry.traces.endpoint", "%q is not host:port (required when telemetry.traces.exporter is otlp)", t.Endpoint)
		}
	default:
		bad("telemetry.traces.exporter", "%q is not one of none, stdout, otlp", t.Exporter)
	}
	// NaN fails both comparisons, so it is refused too.
	if !(t.Sampling >= 0 && t.Sampling <= 1) {
		bad("telemetry.traces.sampling", "must be between 0 and 1, got %v", t.Sampling)
	}
}

// isSocketPath reports whether an address names a unix socket rather than host:port.
func isSocketPath(addr string) bool { return strings.Contains(addr, "/") }

// checkHostPort says why addr is not host:port.
func checkHostPort(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%q is not host:port: %v", addr, err)
	}
	return nil
}
