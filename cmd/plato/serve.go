package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cloudwego/kitex/pkg/klog"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/examples/demo"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/gcfloor"
)

// DefaultConfigFile is read when --config is not given and the file exists.
const DefaultConfigFile = "configs/plato.yaml"

// commonFlags are the flags every server command takes.
type commonFlags struct {
	config  string
	set     multiFlag
	natsURL string
	dataDir string
	addr    string
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func (c *commonFlags) register(fs *flag.FlagSet, addrKey string) {
	c.registerFile(fs)
	fs.StringVar(&c.natsURL, "nats", "", "URL of an external NATS (sets nats.url)")
	if addrKey != "" {
		fs.StringVar(&c.addr, "addr", "", "listen address (sets "+addrKey+")")
	}
}

// registerFile registers the flags that say where the configuration comes from.
func (c *commonFlags) registerFile(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "YAML config file (default "+DefaultConfigFile+" when it exists)")
	fs.Var(&c.set, "set", "override one setting, key=value with a dotted key (repeatable), e.g. --set gateway.max_body=131072")
	fs.StringVar(&c.dataDir, "data-dir", "", "data directory (sets data_dir)")
}

// load reads the configuration: defaults, file, PLATO_* environment, then flags.
func (c *commonFlags) load(addrKey string) (config.Config, error) {
	path := c.config
	if path == "" {
		if _, err := os.Stat(DefaultConfigFile); err == nil {
			path = DefaultConfigFile
		}
	}
	ov := map[string]string{}
	for _, s := range c.set {
		k, v, err := config.ParseOverride(s)
		if err != nil {
			return config.Config{}, fmt.Errorf("--set %q: %w", s, err)
		}
		ov[k] = v
	}
	if c.natsURL != "" {
		ov["nats.url"] = c.natsURL
	}
	if c.dataDir != "" {
		ov["data_dir"] = c.dataDir
	}
	if c.addr != "" && addrKey != "" {
		ov[addrKey] = c.addr
	}
	cfg, _, err := config.Load(path, os.Environ(), ov)
	return cfg, err
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	// Kitex logs through its own global logger; keep it to warnings on the same stream.
	klog.SetOutput(w)
	klog.SetLevel(klog.LevelWarn)
	return slog.New(h)
}

var roleAddrKeys = map[string]string{
	"ipconf": "ipconf.addr", "gateway": "gateway.addr", "state": "state.addr", "demo": "demo.addr",
}

// roleCommand runs one role as its own process against the configured NATS.
func roleCommand(role string) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := flag.NewFlagSet("plato "+role, flag.ContinueOnError)
		fs.SetOutput(stderr)
		var cf commonFlags
		cf.register(fs, roleAddrKeys[role])
		if err := fs.Parse(args); err != nil {
			return err
		}
		cfg, err := cf.load(roleAddrKeys[role])
		if err != nil {
			return err
		}
		return serve(ctx, cfg, []string{role}, stdout, stderr)
	}
}

// runNATS is `plato nats`: the server `plato up` embeds, on its own, so that NATS can be run,
// restarted and clustered apart from the roles (docs/operations.md).
func runNATS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plato nats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: plato nats [flags]

Runs the NATS server (JetStream on nats.embedded.store_dir) that plato up embeds, and nothing else,
with the nats.embedded settings: host, port, store_dir and, for one node of a cluster,
cluster.name, cluster.addr and cluster.routes. nats.url, which the other roles dial, is not used.

Flags:
`)
		fs.PrintDefaults()
	}
	var cf commonFlags
	cf.registerFile(fs)
	addr := fs.String("addr", "", "client listen address host:port (sets nats.embedded.host and nats.embedded.port)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *addr != "" {
		host, port, err := net.SplitHostPort(*addr)
		if err != nil {
			return fmt.Errorf("--addr %q: %w", *addr, err)
		}
		cf.set = append(cf.set, "nats.embedded.host="+host, "nats.embedded.port="+port)
	}
	cfg, err := cf.load("")
	if err != nil {
		return err
	}
	// nats.url is where the other roles find this server (or its cluster); this is the server.
	cfg.NATS.URL = ""
	return serve(ctx, cfg, []string{platform.RoleNATS}, stdout, stderr)
}

func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plato up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf commonFlags
	cf.register(fs, "")
	roles := fs.String("roles", strings.Join(platform.AllRoles, ","), "roles to run in this process")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := cf.load("")
	if err != nil {
		return err
	}
	rs, err := platform.ParseRoles(*roles)
	if err != nil {
		return err
	}
	if !cfg.Demo.Enabled {
		rs = without(rs, platform.RoleDemo)
	}
	if cfg.NATS.URL != "" {
		rs = without(rs, platform.RoleNATS)
	}
	return serve(ctx, cfg, rs, stdout, stderr)
}

// demoServer is the business server of the demo role: the chat of examples/demo, serving every
// declared app with its first key, and issuing credentials with its first JWT secret.
func demoServer(c platform.BusinessConfig, logger *slog.Logger) platform.Business {
	return demo.New(demoConfig(c), logger)
}

func demoConfig(c platform.BusinessConfig) demo.Config {
	dc := demo.Config{Addr: c.Addr, LoginAddr: c.LoginAddr, StateAddr: c.StateAddr, Keys: map[string]string{}, Signers: map[string]demo.Signer{}}
	for id, a := range c.Apps {
		if names := slices.Sorted(maps.Keys(a.Keys)); len(names) > 0 {
			dc.Keys[id] = a.Keys[names[0]]
		}
		if kids := slices.Sorted(maps.Keys(a.Auth.JWT.Secrets)); len(kids) > 0 {
			dc.Signers[id] = demo.Signer{KID: kids[0], Secret: a.Auth.JWT.Secrets[kids[0]]}
		}
	}
	return dc
}

func without(rs []string, r string) []string {
	out := rs[:0:0]
	for _, x := range rs {
		if x != r {
			out = append(out, x)
		}
	}
	return out
}

// chatPageURL is the demo's web chat page, naming ipconf in its query unless the page finds it at
// its default, port 8080 of the page's own host.
func chatPageURL(loginAddr string, p *platform.Platform) string {
	u := "http://" + loginAddr + "/chat/"
	if p.IPConf == nil {
		return u
	}
	host, _, _ := net.SplitHostPort(loginAddr)
	if ip := p.IPConf.Addr(); ip != net.JoinHostPort(host, "8080") {
		u += "?ipconf=" + url.QueryEscape("http://"+ip)
	}
	return u
}

// serve starts roles, prints where they listen, and runs until ctx ends (Ctrl-C).
func serve(ctx context.Context, cfg config.Config, roles []string, stdout, stderr io.Writer) error {
	logger := newLogger(cfg.Log, stderr)
	// A small heap is not collected below the floor, unless GOGC is set in the environment.
	defer gcfloor.Start(uint64(cfg.Runtime.GCHeapFloor)).Stop()
	p, err := platform.Start(ctx, cfg, roles, logger, platform.Options{Builtins: builtins(), Demo: demoServer})
	if err != nil {
		return err
	}
	printAddresses(stdout, p)
	ignoreUpgradeSignal(ctx, logger)
	<-ctx.Done()
	fmt.Fprintln(stdout, "shutting down...")
	// A gateway first drains to the others, for at most gateway.drain.shutdown_timeout.
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second+cfg.Gateway.Drain.ShutdownTimeout)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	fmt.Fprintln(stdout, "stopped")
	return nil
}

func printAddresses(w io.Writer, p *platform.Platform) {
	fmt.Fprintln(w, "Plato is running:")
	if p.NATS != nil {
		fmt.Fprintf(w, "  nats      %s  (embedded, JetStream data in %s)\n", p.NATS.ClientURL(), p.NATSStoreDir())
		if r := p.NATS.ClusterURL(); r != "" {
			fmt.Fprintf(w, "  routes    %s  (cluster %s; the other nodes route here)\n", r, p.Config.NATS.Embedded.Cluster.Name)
		}
	} else {
		fmt.Fprintf(w, "  nats      %s  (external)\n", p.NATSURL())
	}
	if p.State != nil {
		fmt.Fprintf(w, "  state     %s  (Kitex RPC: gateways and business servers)\n", p.State.Addr())
		if h := p.State.HTTPAddr(); h != "" {
			fmt.Fprintf(w, "  http api  http://%s  (HTTP/JSON for business servers: POST /v1/apps/<app>/push, ...; GET /openapi.json)\n", h)
		}
	}
	if p.Pipelines != nil {
		fmt.Fprintf(w, "  pipeline  %s  (per-app stages; edit a file to reload it)\n", p.Config.Pipeline.Dir)
	}
	if p.Gateway != nil {
		fmt.Fprintf(w, "  gateway   %s  (device TCP; state reaches it at %s)\n", p.Gateway.Addr(), p.Gateway.RPCAddr())
		if ws := p.Gateway.WSEndpoint(); ws != "" {
			fmt.Fprintf(w, "  websocket %s  (device WebSocket; ipconf lists it with ?transport=ws)\n", ws)
		}
	}
	if p.IPConf != nil {
		fmt.Fprintf(w, "  ipconf    http://%s  (GET /ip/list?app_id=demo&did=alice, with Authorization: Bearer <credential>)\n", p.IPConf.Addr())
	}
	if p.Admin != nil {
		ops := ""
		if p.Gateway != nil {
			ops = ", the ops API for plato ops"
		}
		fmt.Fprintf(w, "  admin     http://%s  (GET /metrics for Prometheus, GET /healthz%s)\n", p.Admin.Addr(), ops)
		printConsole(w, p)
	}
	switch t := p.Config.Telemetry.Traces; t.Exporter {
	case config.TraceExporterStdout:
		fmt.Fprintf(w, "  traces    %s  (JSON lines, sampling %g)\n", t.File, t.Sampling)
	case config.TraceExporterOTLP:
		fmt.Fprintf(w, "  traces    otlp://%s  (OTLP gRPC, sampling %g)\n", t.Endpoint, t.Sampling)
	}
	if p.Demo != nil {
		fmt.Fprintf(w, "  demo      %s  (chat business server)\n", p.Demo.Addr())
		web := ""
		if d, ok := p.Demo.(interface{ LoginAddr() string }); ok && d.LoginAddr() != "" {
			fmt.Fprintf(w, "  login     http://%s/login?did=alice  (the demo's backend: issues device credentials)\n", d.LoginAddr())
			fmt.Fprintf(w, "  web chat  %s  (the demo chat in a browser, on the JS SDK over WebSocket)\n", chatPageURL(d.LoginAddr(), p))
			web = " (or open the web chat in two browser tabs)"
		}
		self := "plato"
		if strings.Contains(os.Args[0], "/") {
			self = os.Args[0]
		}
		fmt.Fprintf(w, "Try it: run `%s chat --did alice` and `%s chat --did bob` in two terminals%s, then type `@bob hello`.\n", self, self, web)
	}
	fmt.Fprintln(w, "Ctrl-C stops.")
}
