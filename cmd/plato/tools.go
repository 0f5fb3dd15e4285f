package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/platoim/plato/cmd/plato/scaffold"
)

// runPlugin dispatches `plato plugin <sub>`.
func runPlugin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "new" {
		fmt.Fprintln(stderr, "Usage: plato plugin new [--dir DIR] [--module PATH] [--sdk DIR] NAME")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return flag.ErrHelp
		}
		return errors.New("the only plugin subcommand is new")
	}
	fs := flag.NewFlagSet("plato plugin new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "directory to create the plugin in")
	module := fs.String("module", "", "Go module path of the new plugin (default example.com/NAME)")
	sdk := fs.String("sdk", "", "path to a local Plato sdk/ to use instead of the published module (default: ./sdk when run in a Plato checkout)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("give the plugin's name, e.g. plato plugin new ratelimit")
	}
	name := fs.Arg(0)
	sdkDir := *sdk
	if sdkDir == "" {
		if b, err := os.ReadFile(filepath.Join("sdk", "go.mod")); err == nil && strings.Contains(string(b), "module github.com/platoim/plato/sdk") {
			sdkDir = "sdk"
		}
	}
	if sdkDir != "" {
		abs, err := filepath.Abs(sdkDir)
		if err != nil {
			return err
		}
		sdkDir = abs
	}
	if err := scaffold.Generate(*dir, name, scaffold.DefaultSDKModule, scaffold.Options{Module: *module, SDKReplace: sdkDir}); err != nil {
		return err
	}
	out, err := filepath.Abs(filepath.Join(*dir, name))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s\nnext:\n  cd %s && go mod tidy && go test ./... && go build -o %s .\n  then add it to a pipeline YAML with plugin: %s\n", out, out, name, filepath.Join(out, name))
	return nil
}
