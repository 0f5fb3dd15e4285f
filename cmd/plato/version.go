package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/internal/buildinfo"
)

// runVersion is `plato version`: what the Go toolchain stamped into this binary.
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plato version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print it as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	in := buildinfo.Get()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	fmt.Fprint(stdout, in.String())
	return nil
}

// printConsole is `plato up`'s line about the ops console (docs/operations.md, "Ops console").
func printConsole(w io.Writer, p *platform.Platform) {
	how := "the ops console: open it with ops.key"
	if p.Config.Ops.Key == "" {
		how = "the ops console: set ops.key (PLATO_OPS__KEY) to open it"
	}
	fmt.Fprintf(w, "  console   http://%s/  (%s)\n", p.Admin.Addr(), how)
}
