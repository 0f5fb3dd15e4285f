// Package platform starts any set of Plato's roles in one process with one configuration: all of
// them for `plato up`, one for `plato gateway` and the other role commands, and any mix for tests.
package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/core/ipconf"
	"github.com/platoim/plato/core/state"
	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/internal/colocal"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/natsd"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/telemetry"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/stage"
	"github.com/platoim/plato/sdk/token"
)

// Role names accepted by Start.
const (
	RoleNATS    = "nats"
	RoleIPConf  = "ipconf"
	RoleState   = "state"
	RoleGateway = "gateway"
	RoleDemo    = "demo"
)

// TokenSecretEnv is the environment variable of auth.token_secret; plugin processes get it too.
const TokenSecretEnv = "PLATO_AUTH__TOKEN_SECRET"

// AllRoles is what `plato up` runs, in start order.
var AllRoles = []string{RoleNATS, RoleDemo, RoleState, RoleGateway, RoleIPConf}

// Options are what a process adds to the configuration.
type Options struct {
	// Builtins are the trusted stages a pipeline YAML may run in-process as "builtin:<name>".
	Builtins map[string]func() stage.Stage
	// Meter records the platform's metrics. Nil: the process's own MeterProvider
	// (internal/telemetry), served on admin.addr as /metrics; with a Meter from elsewhere, /metrics
	// serves only the Go runtime and process metrics.
	Meter metric.Meter
	// Tracer starts the platform's spans. Nil: the process's own TracerProvider, built from
	// telemetry.traces (exporter none: no spans).
	Tracer trace.Tracer
	// Demo builds the business server the demo role runs (cmd/plato hands in the demo chat of
	// examples/demo). The platform runs it like any business server, over RPC; it never imports
	// one. Required when the demo role is started.
	Demo func(BusinessConfig, *slog.Logger) Business
	// ConfigFile and Reload, when both are set, make the platform watch the file and take the apps
	// section from Reload (the whole configuration read again) each time it changes: apps are
	// added, removed, and their keys rotated without a restart. Without them the apps are fixed.
	ConfigFile string
	Reload     func() (config.Config, error)
	// Inherit, in a gateway process started by an upgrade, takes over the old process's gateway
	// (gateway.InheritFromEnv); AdminListener is the admin socket it passed, served instead of
	// listening on admin.addr.
	Inherit       *gateway.Inheritance
	AdminListener net.Listener
}

// Business is a business server started in the platform's process, as `plato up` does with the
// demo chat.
type Business interface {
	Start(ctx context.Context) error
	Shutdown(ctx context.Context) error
	// Addr is where it listens once started.
	Addr() string
}

// BusinessConfig is what the platform tells the business server it starts.
type BusinessConfig struct {
	// Addr is its listen address (demo.addr).
	Addr string
	// LoginAddr is where the demo issues device credentials (demo.login_addr).
	LoginAddr string
	// Apps are the declared apps (apps in Plato's configuration): their keys for Plato's RPC,
	// and the secrets their device credentials are signed with, which the demo's own login
	// endpoint uses as a real backend would.
	Apps map[string]config.App
	// StateAddr is where Plato's RPC is; it is known only once the state server listens.
	StateAddr func() string
}

// Platform is a set of running roles.
type Platform struct {
	Config  config.Config
	NATS    *natsd.Server
	IPConf  *ipconf.Server
	State   *state.Server
	Gateway *gateway.Gateway
	Demo    Business
	// Apps are the apps served, shared by every role of the process and reloaded in place.
	Apps *apps.Table
	// Pipelines runs the state server's per-app stages (nil without a state role or pipeline.dir).
	Pipelines *pipeline.Pipelines
	// Telemetry holds the process's OTel providers; Admin serves /metrics and /healthz (nil when
	// admin.addr is empty).
	Telemetry *telemetry.Telemetry
	Admin     *telemetry.Admin
	// Local is the in-process link between this process's gateway and state server (nil when the
	// process does not run both, or state.in_process_link is off).
	Local *colocal.Dir

	opts    Options
	meter   metric.Meter
	tracer  *telemetry.Tracer
	natsURL string
	nc      *nats.Conn
	reg     registry.Registry
	nodeIDs []string // the registry IDs of the roles this process runs, for the ops console
	stateID string
	log     *slog.Logger
	stops   []func(context.Context) error
}

// ParseRoles splits "nats,state" and checks each name.
func ParseRoles(s string) ([]string, error) {
	var out []string
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if !slices.Contains(AllRoles, r) {
			return nil, fmt.Errorf("unknown role %q (roles: %s)", r, strings.Join(AllRoles, ", "))
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, errors.New("no role given")
	}
	return out, nil
}

// Start runs roles (in AllRoles order, whatever order they are given in) and returns once each is
// listening. On error everything already started is stopped.
func Start(ctx context.Context, cfg config.Config, roles []string, logger *slog.Logger, opts Options) (*Platform, error) {
	p := &Platform{Config: cfg, log: logger, opts: opts}
	if err := p.start(ctx, roles); err != nil {
		_ = p.Shutdown(context.Background())
		return nil, err
	}
	if p.Admin != nil {
		p.Admin.SetReady()
	}
	return p, nil
}

func (p *Platform) start(ctx context.Context, roles []string) error {
	cfg := &p.Config
	has := func(r string) bool { return slices.Contains(roles, r) }
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("resolving data_dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("creating data_dir: %w", err)
	}
	host, _ := os.Hostname()
	pid := os.Getpid()
	if err := p.startTelemetry(ctx, fmt.Sprintf("%s-%d", sanitize(host), pid)); err != nil {
		return err
	}

	p.natsURL = cfg.NATSURL()
	if has(RoleNATS) {
		if cfg.NATS.URL != "" {
			return fmt.Errorf("nats.url is %q: an external NATS is configured, so the nats role must not run", cfg.NATS.URL)
		}
		store := cfg.NATS.Embedded.StoreDir
		if store == "" {
			store = filepath.Join(dataDir, "nats")
		}
		p.NATS, err = natsd.Start(ctx, embeddedNATS(cfg.NATS.Embedded, store, host), p.log)
		if err != nil {
			return fmt.Errorf("starting embedded NATS: %w", err)
		}
		p.stops = append(p.stops, func(context.Context) error { p.NATS.Shutdown(); return nil })
		p.natsURL = p.NATS.ClientURL()
	}
	needRegistry := has(RoleState) || has(RoleGateway) || has(RoleIPConf)
	var reg registry.Registry
	if needRegistry {
		nc, js, err := registry.Connect(ctx, p.natsURL, "plato", p.log)
		if err != nil {
			return fmt.Errorf("connecting to NATS at %s: %w", p.natsURL, err)
		}
		p.nc = nc
		p.stops = append(p.stops, func(context.Context) error { nc.Close(); return nil })
		kv, err := registry.NewNATS(ctx, js, registry.NATSConfig{
			Bucket: cfg.Registry.Bucket, TTL: cfg.Registry.TTL, Replicas: cfg.Registry.Replicas, Log: p.log,
		})
		if err != nil {
			return fmt.Errorf("opening the registry: %w", err)
		}
		p.stops = append(p.stops, func(context.Context) error { kv.Close(); return nil })
		putErrors := new(atomic.Int64)
		reg = countedRegistry{Registry: kv, putErrors: putErrors}
		p.reg = reg
		instruments, err := p.instrumentNATS(kv, putErrors)
		if err != nil {
			return fmt.Errorf("creating NATS metrics: %w", err)
		}
		p.stops = append(p.stops, func(context.Context) error { return instruments.Unregister() })
	}
	if has(RoleGateway) || has(RoleIPConf) || has(RoleState) {
		appOpts := apps.Options{CallbackTimeout: cfg.State.Business.Timeout}
		if p.Apps, err = apps.New(cfg.Apps, appOpts); err != nil {
			return fmt.Errorf("apps: %w", err)
		}
		instruments, err := p.instrumentApps()
		if err != nil {
			return fmt.Errorf("creating apps metrics: %w", err)
		}
		p.stops = append(p.stops, func(context.Context) error { return instruments.Unregister() })
		if p.opts.ConfigFile != "" && p.opts.Reload != nil {
			wctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				p.Apps.Watch(wctx, p.opts.ConfigFile, p.opts.Reload, appOpts, p.log)
			}()
			p.stops = append(p.stops, func(context.Context) error { cancel(); <-done; return nil })
		}
		if err := p.startLiveApps(ctx); err != nil {
			return err
		}
		if len(p.Apps.IDs()) == 0 {
			p.log.Warn("no app is configured (apps, or plato apps set): every device and business server will be refused")
		}
	}
	var signer *token.Signer
	if has(RoleGateway) || has(RoleIPConf) || has(RoleState) {
		if cfg.Auth.TokenSecret == config.DevTokenSecret {
			p.log.Warn("auth.token_secret is the development default: set your own before exposing Plato")
		}
		if signer, err = token.NewSigner([]byte(cfg.Auth.TokenSecret), cfg.Auth.TokenTTL); err != nil {
			return fmt.Errorf("auth.token_secret: %w", err)
		}
	}
	if has(RoleDemo) {
		if p.opts.Demo == nil {
			return errors.New("the demo role needs a business server to run (platform.Options.Demo)")
		}
		// The demo starts before the state server so that, with port 0, the state server can be
		// pointed at the address the demo actually got.
		p.Demo = p.opts.Demo(BusinessConfig{Addr: cfg.Demo.Addr, LoginAddr: cfg.Demo.LoginAddr, Apps: cfg.Apps, StateAddr: func() string {
			if p.State != nil {
				return p.State.Addr()
			}
			return cfg.State.Addr
		}}, p.log)
		if err := p.Demo.Start(ctx); err != nil {
			return err
		}
		p.stops = append(p.stops, p.Demo.Shutdown)
		if p.Demo.Addr() != cfg.Demo.Addr {
			// demo.addr asked for a free port: the apps that name it get the one it got.
			cfg.Apps = maps.Clone(cfg.Apps)
			for id, a := range cfg.Apps {
				if a.Business == cfg.Demo.Addr {
					a.Business = p.Demo.Addr()
					cfg.Apps[id] = a
				}
			}
			if err := p.Apps.Replace(cfg.Apps, apps.Options{CallbackTimeout: cfg.State.Business.Timeout}); err != nil {
				return fmt.Errorf("apps: %w", err)
			}
		}
	}
	var local *colocal.Dir
	if cfg.State.InProcessLink && has(RoleState) && has(RoleGateway) {
		// The gateway and the state server call each other directly (docs/adr/0015-in-process-link.md).
		local = colocal.New()
		p.Local = local
		instruments, err := p.instrumentLocal()
		if err != nil {
			return fmt.Errorf("creating in-process link metrics: %w", err)
		}
		p.stops = append(p.stops, func(context.Context) error { return instruments.Unregister() })
	}
	if has(RoleState) {
		sc := state.Config{
			State: cfg.State, MaxBody: cfg.Gateway.MaxBody, ReportInterval: cfg.Gateway.ReportInterval,
			Meter: p.meter, Tracer: p.tracer, NATS: p.nc, GatewaySecret: []byte(cfg.Auth.TokenSecret),
			Apps: p.Apps, Local: local,
		}
		if p.Admin != nil {
			sc.AdminAddr = p.Admin.Addr()
		}
		if sc.ID == "" {
			sc.ID = fmt.Sprintf("state-%s-%d", sanitize(host), pid)
		}
		p.nodeIDs, p.stateID = append(p.nodeIDs, sc.ID), sc.ID
		if p.State, err = state.New(sc, reg, p.log); err != nil {
			return err
		}
		if cfg.Pipeline.Dir != "" {
			if err := p.startPipelines(ctx); err != nil {
				return err
			}
		}
		if err := p.State.Start(ctx); err != nil {
			return err
		}
		p.stops = append(p.stops, p.State.Shutdown)
	}
	if has(RoleGateway) {
		gc := gateway.Config{Gateway: cfg.Gateway, RPCTimeout: cfg.State.RPCTimeout, Meter: p.meter, NATS: p.nc, Tracer: p.tracer,
			Secret: []byte(cfg.Auth.TokenSecret), Apps: p.Apps, Local: local}
		if p.Admin != nil {
			gc.AdminAddr = p.Admin.Addr()
		}
		if gc.ID == "" {
			gc.ID = fmt.Sprintf("gw-%s-%d", sanitize(host), pid)
		}
		if p.opts.Inherit != nil {
			gc.ID, gc.Inherit = p.opts.Inherit.GatewayID, p.opts.Inherit
		}
		if gc.RPCAddr == "" {
			gc.RPCAddr = filepath.Join(dataDir, "gateway-"+gc.ID+".sock")
		}
		p.nodeIDs = append(p.nodeIDs, gc.ID)
		if p.Gateway, err = gateway.New(gc, reg, signer, p.log); err != nil {
			return err
		}
		if err := p.Gateway.Start(ctx); err != nil {
			return err
		}
		p.stops = append(p.stops, p.Gateway.Shutdown)
		if p.Admin != nil {
			// The ops API (docs/operations.md, "Moving devices"); without ops.key it refuses every call.
			ops := p.Gateway.OpsHandler(cfg.Ops.Key)
			p.Admin.Handle("/api/v1/gateway", ops)
			p.Admin.Handle("/api/v1/gateway/", ops)
		}
	}
	if has(RoleIPConf) {
		keepStale := cfg.IPConf.KeepStale
		if keepStale == 0 {
			keepStale = -1 // ipconf.keep_stale 0: no stale list (ipconf.Config's zero is its default)
		}
		p.IPConf, err = ipconf.New(ipconf.Config{
			Addr: cfg.IPConf.Addr, TokenSecret: []byte(cfg.Auth.TokenSecret), TokenTTL: cfg.Auth.TokenTTL,
			MaxEndpoints: cfg.IPConf.MaxEndpoints, StaleAfter: cfg.IPConf.StaleAfter, KeepStale: keepStale, Meter: p.meter,
			Apps: p.Apps,
		}, reg, p.log)
		if err != nil {
			return err
		}
		if err := p.IPConf.Start(ctx); err != nil {
			return err
		}
		p.stops = append(p.stops, p.IPConf.Shutdown)
		if err := p.registerIPConf(ctx, fmt.Sprintf("ipconf-%s-%d", sanitize(host), pid)); err != nil {
			return err
		}
	}
	p.startConsole()
	return nil
}

// startPipelines loads every app's pipeline and starts its plugin processes; they stop after the
// state server does.
func (p *Platform) startPipelines(ctx context.Context) error {
	pc := p.Config.Pipeline
	var env []string
	if secret := p.Config.Auth.TokenSecret; secret != "" && os.Getenv(TokenSecretEnv) == "" {
		// The auth stage checks what ipconf signs: hand it the platform's secret the way an
		// operator would, through the environment, never through pipeline YAML.
		env = append(env, TokenSecretEnv+"="+secret)
	}
	pipes, err := pipeline.New(ctx, pipeline.Config{
		Dir: pc.Dir, PluginDir: pc.PluginDir, Builtins: p.opts.Builtins, Lanes: pc.Lanes, Env: env,
		Breaker: pipeline.BreakerConfig{
			Crashes: pc.Breaker.Crashes, Window: pc.Breaker.Window,
			ProbeInterval: pc.Breaker.ProbeInterval, RecoverAfter: pc.Breaker.RecoverAfter,
		},
		Tracer: p.tracer.Trace(),
	}, p.State.Host(), p.log, p.meter)
	if err != nil {
		return fmt.Errorf("loading pipelines from %s: %w", pc.Dir, err)
	}
	p.Pipelines = pipes
	p.stops = append(p.stops, pipes.Close)
	p.State.UsePipeline(pipes)
	if pc.Watch {
		wctx, cancel := context.WithCancel(context.Background())
		p.stops = append(p.stops, func(context.Context) error { cancel(); return nil })
		go func() {
			if err := pipes.Watch(wctx); err != nil && wctx.Err() == nil {
				p.log.Error("pipeline watcher stopped; edits will not reload", "dir", pc.Dir, "err", err)
			}
		}()
	}
	return nil
}

// NATSURL is the NATS the roles use.
func (p *Platform) NATSURL() string { return p.natsURL }

// Shutdown stops the roles in reverse start order: devices are told to go elsewhere before the
// state server and NATS go away.
func (p *Platform) Shutdown(ctx context.Context) error {
	if p.Admin != nil {
		p.Admin.Draining()
	}
	if p.Gateway != nil {
		// Devices move to the other gateways by Redirect while everything here still runs; the
		// drain has its own bound (gateway.drain.shutdown_timeout), the stops below theirs.
		p.Gateway.DrainForShutdown(ctx)
	}
	var errs []error
	for i := len(p.stops) - 1; i >= 0; i-- {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := p.stops[i](sctx); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
		cancel()
	}
	p.stops = nil
	return errors.Join(errs...)
}

// sanitize keeps names usable as registry keys and file names.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	if len(b) == 0 {
		return "host"
	}
	return string(b)
}

// embeddedNATS is the embedded server's configuration. The nodes of a cluster on one machine
// need names of their own, so a node's name carries its route port.
func embeddedNATS(c config.EmbeddedNATS, store, host string) natsd.Config {
	nc := natsd.Config{Host: c.Host, Port: c.Port, StoreDir: store, ServerName: "plato-" + sanitize(host)}
	if cl := c.Cluster; cl.Name != "" {
		h, port, _ := net.SplitHostPort(cl.Addr) // validated
		p, _ := strconv.Atoi(port)
		nc.ServerName += "-" + port
		nc.Cluster = natsd.Cluster{Name: cl.Name, Host: h, Port: p}
		for _, r := range strings.Split(cl.Routes, ",") {
			if r = strings.TrimSpace(r); r != "" {
				nc.Cluster.Routes = append(nc.Cluster.Routes, r)
			}
		}
	}
	return nc
}

// NATSStoreDir is the embedded NATS's JetStream directory.
func (p *Platform) NATSStoreDir() string {
	if p.Config.NATS.Embedded.StoreDir != "" {
		return p.Config.NATS.Embedded.StoreDir
	}
	d, _ := filepath.Abs(p.Config.DataDir)
	return filepath.Join(d, "nats")
}
