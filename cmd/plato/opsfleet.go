package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/platoim/plato/core/console"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/opsapi"
	"github.com/platoim/plato/internal/registry"
)

// runOpsFleet is `plato ops fleet`: the console's /api/v1/fleet, read from one admin address
// (--admin, or the first one the registry names) with the ops key.
func runOpsFleet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plato ops fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var of opsFlags
	of.register(fs)
	admin := fs.String("admin", "", "the admin address (host:port) to ask; default: the first one the registry lists")
	asJSON := fs.Bool("json", false, "print the API's JSON as it is")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg, key, err := of.load()
	if err != nil {
		return err
	}
	if key == "" {
		return errors.New("no ops key: set ops.key in the configuration, PLATO_OPS__KEY, or --key")
	}
	ctx, cancel := context.WithTimeout(ctx, min(of.timeout, time.Minute))
	defer cancel()
	if *admin == "" {
		if *admin, err = anyAdminAddr(ctx, cfg); err != nil {
			return err
		}
	}
	cl := &opsapi.Client{Base: "http://" + *admin, Key: key, HTTP: &http.Client{}}
	var f console.Fleet
	if err := cl.Get(ctx, console.PathFleet, &f); err != nil {
		return fmt.Errorf("asking %s: %w", *admin, err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(f)
	}
	printFleet(stdout, f)
	return nil
}

// anyAdminAddr is the admin address of a registered process, ipconf first, then gateways, then
// state servers: every one of them answers for the whole fleet.
func anyAdminAddr(ctx context.Context, cfg config.Config) (string, error) {
	quiet := slog.New(slog.DiscardHandler)
	url := cfg.NATSURL()
	nc, js, err := registry.Connect(ctx, url, "plato-ops", quiet)
	if err != nil {
		return "", fmt.Errorf("connecting to NATS at %s (where the registry is; --nats URL, or --admin HOST:PORT): %w", url, err)
	}
	defer nc.Close()
	reg, err := registry.NewNATS(ctx, js, registry.NATSConfig{Bucket: cfg.Registry.Bucket, TTL: cfg.Registry.TTL, Replicas: cfg.Registry.Replicas, Log: quiet})
	if err != nil {
		return "", fmt.Errorf("opening the registry: %w", err)
	}
	defer reg.Close()
	for _, role := range []registry.Role{registry.RoleIPConf, registry.RoleGateway, registry.RoleState} {
		ns, err := reg.List(ctx, role)
		if err != nil {
			return "", fmt.Errorf("listing the %s nodes: %w", role, err)
		}
		for _, n := range ns {
			if n.AdminAddr != "" {
				return n.AdminAddr, nil
			}
		}
	}
	return "", errors.New("no registered process publishes an admin address (admin.addr empty everywhere, or nothing runs)")
}

func printFleet(w io.Writer, f console.Fleet) {
	if len(f.Nodes) == 0 {
		fmt.Fprintln(w, "no registered process")
		return
	}
	// Versions and IDs vary in length (a pseudo-version is 34 characters): columns fit the widest.
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprint(tw, "ROLE\tID\tVERSION\tUPTIME\tCONNS\tBYTES/S\tSCORE\tSTATE\n")
	for _, n := range f.Nodes {
		state := "serving"
		switch {
		case n.Draining:
			state = "draining"
		case n.Overloaded:
			state = "overloaded"
		case n.Role == string(registry.RoleGateway) && n.Endpoint == "":
			state = "no state server"
		}
		score, traffic := "", ""
		if n.LoadScore != nil {
			score = fmt.Sprintf("%.2f", *n.LoadScore)
			traffic = fmt.Sprintf("%.0f", n.BytesInPerSec+n.BytesOutPerSec)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", n.Role, n.ID, n.Version,
			(time.Duration(n.UptimeSeconds) * time.Second).String(), n.Conns, traffic, score, state)
	}
}
