// Command plato is Plato's single binary: one subcommand per role and per tool.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/platoim/plato/core/gateway"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"up":       {"run the whole platform on this machine (embedded NATS, state, gateway, ipconf, demo)", runUp},
		"ipconf":   {"run the endpoint dispatch HTTP service", roleCommand("ipconf")},
		"gateway":  {"run a device gateway (plato gateway upgrade: replace its binary in place)", runGateway},
		"state":    {"run a state server", roleCommand("state")},
		"demo":     {"run the demo chat business server", roleCommand("demo")},
		"nats":     {"run the NATS server plato up embeds, on its own (nats.embedded.*)", runNATS},
		"chat":     {"a terminal chat client for the demo business server", runChat},
		"pipeline": {"check pipeline YAML, show an app's chain: plato pipeline validate [--load] FILE|DIR, show APP", runPipeline},
		"plugin":   {"scaffold a pipeline stage: plato plugin new NAME", runPlugin},
		"bench":    {"load-test the platform: plato bench connect|uplink|downlink|broadcast|failover|overload|crashloop|nats-restart|apps-live|slow-consumers|migrate", runBench},
		"apps":     {"apps that change live, kept in NATS KV: plato apps list|show|set|delete", runApps},
		"ops":      {"see the fleet and move devices between gateways: plato ops fleet|migrate|drain|undrain|status|gateways", runOps},
		"token":    {"print a device credential for trying things by hand: plato token mint --app A --did D --uid U", runToken},
		"version":  {"print the module version, VCS revision and Go version of this binary", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: plato <command> [flags]\n\nCommands:")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'plato <command> --help' for a command's flags.")
}

func main() {
	// Before any connection exists: netpoll reads its buffer policy as it makes each connection.
	if err := gateway.TuneNetpoll(); err != nil {
		fmt.Fprintln(os.Stderr, "plato:", err)
		os.Exit(1)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "plato: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "plato %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
