package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/platoim/plato/cmd/plato/scaffold"
	"github.com/platoim/plato/internal/config"
	pipeconfig "github.com/platoim/plato/pipeline/config"
)

// runPipeline dispatches `plato pipeline <sub>`.
func runPipeline(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "validate" {
		fmt.Fprintln(stderr, "Usage: plato pipeline validate [--plugin-dir DIR] FILE|DIR")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return flag.ErrHelp
		}
		return errors.New("the only pipeline subcommand is validate")
	}
	fs := flag.NewFlagSet("plato pipeline validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pluginDir := fs.String("plugin-dir", config.DefaultPluginDir, "where relative plugin paths resolve")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("give one pipeline file or directory")
	}
	path := fs.Arg(0)
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	var files []*pipeconfig.File
	var names []string
	if st.IsDir() {
		set, err := pipeconfig.LoadDir(path, *pluginDir)
		if err != nil {
			fmt.Fprint(stdout, pipeconfig.Report(err))
			return errors.New("invalid pipeline configuration")
		}
		if set.Default != nil {
			files, names = append(files, set.Default), append(names, "default")
		}
		apps := make([]string, 0, len(set.Apps))
		for app := range set.Apps {
			apps = append(apps, app)
		}
		sort.Strings(apps)
		for _, app := range apps {
			files, names = append(files, set.Apps[app]), append(names, app)
		}
	} else {
		f, err := pipeconfig.LoadFile(path, *pluginDir)
		if err != nil {
			fmt.Fprint(stdout, pipeconfig.Report(err))
			return errors.New("invalid pipeline configuration")
		}
		files, names = []*pipeconfig.File{f}, []string{strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))}
	}
	bad := false
	for i, f := range files {
		fmt.Fprintf(stdout, "%s: %d stage(s)\n", names[i], len(f.Stages))
		for _, s := range f.Stages {
			where := s.Path
			if s.Builtin != "" {
				where = "builtin:" + s.Builtin
				if _, ok := builtins()[s.Builtin]; !ok {
					fmt.Fprintf(stdout, "  %s: unknown builtin %q (builtins: %s)\n", s.Name, s.Builtin, strings.Join(builtinNames(), ", "))
					bad = true
					continue
				}
			}
			fmt.Fprintf(stdout, "  %-12s %-40s signals=%v timeout=%v on_failure=%s\n", s.Name, where, s.Signals, s.Timeout, s.OnFailure)
		}
	}
	if bad {
		return errors.New("invalid pipeline configuration")
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

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
