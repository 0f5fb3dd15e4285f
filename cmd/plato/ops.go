package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/opsapi"
	"github.com/platoim/plato/internal/registry"
)

const opsUsage = `Usage:
  plato ops fleet [--admin HOST:PORT] [--json] every ipconf, gateway and state server, as the ops console shows them
  plato ops gateways                          list the live gateways
  plato ops status GATEWAY_ID                 a gateway and its drain
  plato ops migrate --from GATEWAY_ID [--to GATEWAY_ID] (--count N | --did D...) [--app A] [--rate N]
                                              move devices to other gateways by Redirect
  plato ops drain GATEWAY_ID [--rate N] [--wait=false]
                                              move every device off a gateway, and keep it out of ipconf
  plato ops undrain GATEWAY_ID                call a drain off: the gateway takes logins again

Every command finds gateways in the registry (NATS: --nats, nats.url) and calls the ops API on
their admin address with Authorization: Bearer <ops.key> (--key, ops.key, PLATO_OPS__KEY).
See docs/operations.md, "Moving devices".
`

// opsFlags are what every ops subcommand takes.
type opsFlags struct {
	cf      commonFlags
	key     string
	timeout time.Duration
}

// load reads the configuration and picks the ops key: --key, else ops.key. plato ops signs
// nothing: an operator's machine with only the NATS URL and the ops key runs it without the
// fleet's token secret (what the configuration requires of the roles).
func (o *opsFlags) load() (config.Config, string, error) {
	o.cf.set = append(o.cf.set, "auth.token_secret=plato-ops-signs-nothing-with-this")
	cfg, err := o.cf.load("")
	if err != nil {
		return config.Config{}, "", err
	}
	key := o.key
	if key == "" {
		key = cfg.Ops.Key
	}
	return cfg, key, nil
}

func (o *opsFlags) register(fs *flag.FlagSet) {
	o.cf.register(fs, "")
	fs.StringVar(&o.key, "key", "", "the ops key (default: ops.key from the configuration)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
}

// runOps dispatches `plato ops <sub>`.
func runOps(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, opsUsage)
		if len(args) == 0 {
			return errors.New("no ops subcommand given")
		}
		return flag.ErrHelp
	}
	sub, args := args[0], args[1:]
	if sub == "fleet" {
		return runOpsFleet(ctx, args, stdout, stderr)
	}
	fs := flag.NewFlagSet("plato ops "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, opsUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	var of opsFlags
	of.register(fs)
	var (
		from, to, app string
		count, rate   int
		dids          multiFlag
		wait          bool
	)
	switch sub {
	case "migrate":
		fs.StringVar(&from, "from", "", "the gateway to move devices off (required)")
		fs.StringVar(&to, "to", "", "the gateway to move them to (default: the other live gateways, least loaded first)")
		fs.IntVar(&count, "count", 0, "how many devices to move, any of them")
		fs.Var(&dids, "did", "a device to move (repeatable), instead of --count")
		fs.StringVar(&app, "app", "", "with --did: only that app's devices")
		fs.IntVar(&rate, "rate", 0, "Redirects per second (default gateway.drain.rate of that gateway)")
	case "drain":
		fs.IntVar(&rate, "rate", 0, "Redirects per second (default gateway.drain.rate of that gateway)")
		fs.BoolVar(&wait, "wait", true, "report progress until no device is left")
	case "gateways", "status", "undrain":
	default:
		fmt.Fprint(stderr, opsUsage)
		return fmt.Errorf("unknown ops subcommand %q", sub)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	switch sub {
	case "migrate", "gateways":
		if len(pos) > 0 {
			return fmt.Errorf("unexpected arguments %q", pos)
		}
	default:
		if len(pos) != 1 {
			return fmt.Errorf("plato ops %s takes one GATEWAY_ID, got %q", sub, pos)
		}
	}
	if sub == "migrate" {
		if from == "" {
			return errors.New("--from GATEWAY_ID is required")
		}
		if (count > 0) == (len(dids) > 0) {
			return errors.New("give either --count N or --did D (repeatable)")
		}
	}
	cfg, key, err := of.load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, of.timeout)
	defer cancel()
	gws, err := listGateways(ctx, cfg)
	if err != nil {
		return err
	}
	if sub == "gateways" {
		printGateways(stdout, gws)
		return nil
	}
	if sub == "migrate" {
		cl, err := opsClient(gws, from, key)
		if err != nil {
			return err
		}
		res, err := cl.Migrate(ctx, opsapi.MigrateRequest{To: to, Count: count, DIDs: dids, App: app, Rate: rate})
		if err != nil {
			return fmt.Errorf("migrating from %s: %w", from, err)
		}
		fmt.Fprintf(stdout, "redirected %d devices from %s to %s (%d selected)\n", res.Redirected, from, strings.Join(res.Targets, ", "), res.Selected)
		return nil
	}
	cl, err := opsClient(gws, pos[0], key)
	if err != nil {
		return err
	}
	switch sub {
	case "status":
		s, err := cl.Status(ctx)
		if err != nil {
			return err
		}
		printStatus(stdout, s)
	case "undrain":
		s, err := cl.Undrain(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "gateway %s takes logins again (%d devices connected)\n", s.Gateway, s.Conns)
	case "drain":
		return drain(ctx, cl, pos[0], rate, wait, stdout)
	}
	return nil
}

// drain starts the drain and, with wait, reports its progress every second until no device is
// left on the gateway.
func drain(ctx context.Context, cl *opsapi.Client, id string, rate int, wait bool, stdout io.Writer) error {
	s, err := cl.Drain(ctx, opsapi.DrainRequest{Rate: rate})
	if err != nil {
		return fmt.Errorf("draining %s: %w", id, err)
	}
	fmt.Fprintf(stdout, "draining %s at %d/s: it is out of ipconf's answers, %d devices to move\n", id, s.Rate, s.Conns)
	if !wait {
		return nil
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := ""
	for !s.Done {
		select {
		case <-ctx.Done():
			return fmt.Errorf("draining %s: %d devices still connected: %w", id, s.Conns, ctx.Err())
		case <-tick.C:
		}
		if s, err = cl.Status(ctx); err != nil {
			return fmt.Errorf("draining %s: %w", id, err)
		}
		line := fmt.Sprintf("  %d redirected, %d still connected", s.Redirected, s.Conns)
		if s.Waiting != "" {
			line += " (" + s.Waiting + ")"
		}
		if line != last {
			fmt.Fprintln(stdout, line)
			last = line
		}
	}
	fmt.Fprintf(stdout, "drained %s: %d devices redirected in %s; it stays out of ipconf until `plato ops undrain %s` or it stops\n",
		id, s.Redirected, time.Since(s.StartedAt).Round(100*time.Millisecond), id)
	return nil
}

// parseInterspersed parses flags placed before and after the positional arguments
// (`plato ops drain gw-1 --rate 100`), which flag alone stops at.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// listGateways reads the live gateways from the registry.
func listGateways(ctx context.Context, cfg config.Config) ([]registry.Node, error) {
	quiet := slog.New(slog.DiscardHandler)
	url := cfg.NATSURL()
	nc, js, err := registry.Connect(ctx, url, "plato-ops", quiet)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s (where the registry is; --nats URL): %w", url, err)
	}
	defer nc.Close()
	reg, err := registry.NewNATS(ctx, js, registry.NATSConfig{Bucket: cfg.Registry.Bucket, TTL: cfg.Registry.TTL, Replicas: cfg.Registry.Replicas, Log: quiet})
	if err != nil {
		return nil, fmt.Errorf("opening the registry: %w", err)
	}
	defer reg.Close()
	gws, err := reg.List(ctx, registry.RoleGateway)
	if err != nil {
		return nil, fmt.Errorf("listing the gateways: %w", err)
	}
	slices.SortFunc(gws, func(a, b registry.Node) int { return strings.Compare(a.ID, b.ID) })
	return gws, nil
}

func opsClient(gws []registry.Node, id, key string) (*opsapi.Client, error) {
	i := slices.IndexFunc(gws, func(n registry.Node) bool { return n.ID == id })
	if i < 0 {
		ids := make([]string, len(gws))
		for j, n := range gws {
			ids[j] = n.ID
		}
		return nil, fmt.Errorf("gateway %q is not live (live gateways: %s)", id, strings.Join(ids, ", "))
	}
	if gws[i].AdminAddr == "" {
		return nil, fmt.Errorf("gateway %s publishes no admin address (its admin.addr is empty): it has no ops API", id)
	}
	if key == "" {
		return nil, errors.New("no ops key: set ops.key in the configuration, PLATO_OPS__KEY, or --key")
	}
	return &opsapi.Client{Base: "http://" + gws[i].AdminAddr, Key: key, HTTP: &http.Client{}}, nil
}

func printGateways(w io.Writer, gws []registry.Node) {
	if len(gws) == 0 {
		fmt.Fprintln(w, "no live gateway")
		return
	}
	fmt.Fprintf(w, "%-24s %-22s %-22s %8s  %s\n", "ID", "ENDPOINT", "ADMIN", "CONNS", "STATE")
	for _, n := range gws {
		state := "serving"
		switch {
		case n.Load.Draining:
			state = "draining"
		case n.Endpoint == "":
			state = "no state server"
		case n.Load.Overloaded:
			state = "overloaded"
		}
		fmt.Fprintf(w, "%-24s %-22s %-22s %8d  %s\n", n.ID, n.Endpoint, n.AdminAddr, n.Load.Conns, state)
	}
}

func printStatus(w io.Writer, s opsapi.Status) {
	fmt.Fprintf(w, "gateway %s at %s: %d devices connected\n", s.Gateway, s.Endpoint, s.Conns)
	if !s.Draining {
		fmt.Fprintln(w, "not draining")
		return
	}
	fmt.Fprintf(w, "draining since %s at %d/s: %d redirected, done %v\n", s.StartedAt.Format(time.RFC3339), s.Rate, s.Redirected, s.Done)
	if s.Waiting != "" {
		fmt.Fprintln(w, s.Waiting)
	}
}
