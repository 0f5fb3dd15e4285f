package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/pipeline"
	pipeconfig "github.com/platoim/plato/pipeline/config"
)

const pipelineUsage = `Usage:
  plato pipeline validate [--load] [--plugin-dir DIR] [--config FILE] FILE|DIR
      check pipeline YAML as the state server would load it; --load also starts each
      plugin, runs its Init with the file's config and checks it handles every signal
      listed for it and which of them it acts on with that config, then stops it
  plato pipeline show [--json] [--load] [--dir DIR] [--plugin-dir DIR] [--config FILE] APP
      print the chain APP runs: stages in order, with what extends: merged in; --load
      also starts each stage and prints the signals it acts on with its config`

var errInvalidPipeline = errors.New("invalid pipeline configuration")

// runPipeline dispatches `plato pipeline <sub>`.
func runPipeline(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "validate":
			return runPipelineValidate(ctx, args[1:], stdout, stderr)
		case "show":
			return runPipelineShow(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintln(stderr, pipelineUsage)
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		return flag.ErrHelp
	}
	return errors.New("the pipeline subcommands are validate and show")
}

// pipelineFlags are the flags validate and show share: where the files and plugins are, taken
// from Plato's configuration (pipeline.dir, pipeline.plugin_dir) unless given.
type pipelineFlags struct {
	cf        commonFlags
	pluginDir string
}

func (p *pipelineFlags) register(fs *flag.FlagSet) {
	p.cf.registerFile(fs)
	fs.StringVar(&p.pluginDir, "plugin-dir", "", "where relative plugin paths resolve (default pipeline.plugin_dir: "+config.DefaultPluginDir+")")
}

// load reads Plato's configuration for pipeline.* and auth.token_secret. Without a config file
// or --set the defaults do: a full configuration would demand settings (a token secret) these
// commands do not need, and plugins inherit the environment anyway.
func (p *pipelineFlags) load() (config.Config, error) {
	cfg := config.Default()
	_, statErr := os.Stat(DefaultConfigFile)
	if p.cf.config != "" || len(p.cf.set) > 0 || statErr == nil {
		var err error
		if cfg, err = p.cf.load(""); err != nil {
			return cfg, fmt.Errorf("reading Plato's configuration: %w", err)
		}
	}
	if p.pluginDir != "" {
		cfg.Pipeline.PluginDir = p.pluginDir
	}
	if cfg.Pipeline.PluginDir == "" {
		cfg.Pipeline.PluginDir = config.DefaultPluginDir
	}
	return cfg, nil
}

func runPipelineValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plato pipeline validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var pf pipelineFlags
	pf.register(fs)
	load := fs.Bool("load", false, "also start each plugin, run its Init with the file's config and check its signals, as the state server would")
	startTimeout := fs.Duration("start-timeout", pipeline.DefaultStartTimeout, "with --load: how long one plugin may take to start and Init")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("give one pipeline file or directory")
	}
	cfg, err := pf.load()
	if err != nil {
		return err
	}
	pluginDir := cfg.Pipeline.PluginDir
	path := fs.Arg(0)
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	var files []*pipeconfig.File
	var def *pipeconfig.File
	if st.IsDir() {
		set, err := pipeconfig.LoadDir(path, pluginDir)
		if err != nil {
			fmt.Fprint(stdout, pipeconfig.Report(err))
			return errInvalidPipeline
		}
		def = set.Default
		if def.Source != "" {
			files = append(files, def)
		}
		for _, app := range sortedApps(set.Apps) {
			files = append(files, set.Apps[app])
		}
	} else {
		// The server would ignore the file, or refuse it, if its name were not an app ID.
		app, isPipeline := pipelineFileApp(path)
		switch {
		case !isPipeline:
			fmt.Fprintf(stdout, "%s: not a pipeline file: the state server reads only <app ID>.yaml or .yml\n", path)
			return errInvalidPipeline
		case !pipeconfig.ValidAppID(app):
			fmt.Fprintf(stdout, "%s: %q is not a valid app ID (1 to 128 of A-Z a-z 0-9 _ . -): rename the file\n", path, app)
			return errInvalidPipeline
		}
		f, err := pipeconfig.LoadFile(path, pluginDir)
		if err != nil {
			fmt.Fprint(stdout, pipeconfig.Report(err))
			return errInvalidPipeline
		}
		files = []*pipeconfig.File{f}
		if app != pipeconfig.DefaultAppID {
			def, _ = pipeconfig.LoadApp(filepath.Dir(path), pipeconfig.DefaultAppID, pluginDir)
		}
	}
	bad := false
	for _, f := range files {
		head := fmt.Sprintf("%s: %d stage(s)", f.AppID, len(f.Stages))
		if f.Extends != "" {
			head += " (extends " + f.Extends + ")"
		}
		fmt.Fprintln(stdout, head)
		for _, s := range f.Stages {
			where := s.Path
			if s.Builtin != "" {
				where = pipeconfig.BuiltinPrefix + s.Builtin
				if _, ok := builtins()[s.Builtin]; !ok {
					fmt.Fprintf(stdout, "  %s: unknown builtin %q (builtins: %s)\n", s.Name, s.Builtin, strings.Join(builtinNames(), ", "))
					bad = true
					continue
				}
			}
			fmt.Fprintf(stdout, "  %-12s %-40s signals=%v timeout=%v on_failure=%s\n", s.Name, where, s.Signals, s.Timeout, s.OnFailure)
		}
		if note := droppedStages(f, def); note != "" {
			fmt.Fprintln(stdout, "  note: "+note)
		}
	}
	if bad {
		return errInvalidPipeline
	}
	if *load {
		if !probeFiles(ctx, cfg, files, *startTimeout, stdout) {
			return errInvalidPipeline
		}
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// droppedStages warns about an app file that replaces default.yaml and so runs none of its
// stages: valid, but the scaffold's old example did it by mistake and lost auth that way.
func droppedStages(f, def *pipeconfig.File) string {
	if f.Extends != "" || def == nil || f.AppID == pipeconfig.DefaultAppID || len(def.Stages) == 0 {
		return ""
	}
	var missing []string
	for _, d := range def.Stages {
		if !slices.ContainsFunc(f.Stages, func(s pipeconfig.Stage) bool { return s.Name == d.Name }) {
			missing = append(missing, d.Name)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("%s.yaml replaces default.yaml, so app %s runs none of its stages %s; write `extends: default` to keep them and add to them",
		f.AppID, f.AppID, strings.Join(missing, ", "))
}

// probeFiles starts every stage as the state server would (pipeline.Probe) and reports each.
func probeFiles(ctx context.Context, cfg config.Config, files []*pipeconfig.File, startTimeout time.Duration, stdout io.Writer) bool {
	fmt.Fprintln(stdout, "starting each plugin (--load):")
	results, err := probeStages(ctx, cfg, files, startTimeout)
	ok := err == nil
	if err != nil {
		fmt.Fprintf(stdout, "  %v\n", err)
	}
	for _, r := range results {
		if r.Err != nil {
			ok = false
			fmt.Fprintf(stdout, "  %s/%s: refused: %v\n", r.App, r.Stage, r.Err)
		} else {
			fmt.Fprintf(stdout, "  %s/%s: started, Init accepted its config; %s\n", r.App, r.Stage, actsOnText(r))
		}
	}
	return ok
}

// probeStages starts and stops every stage of files with the environment the platform gives
// plugins (pipeline.Probe).
func probeStages(ctx context.Context, cfg config.Config, files []*pipeconfig.File, startTimeout time.Duration) ([]pipeline.ProbeResult, error) {
	var env []string
	if secret := cfg.Auth.TokenSecret; secret != "" && os.Getenv(platform.TokenSecretEnv) == "" {
		env = append(env, platform.TokenSecretEnv+"="+secret) // as the platform hands it to plugins
	}
	return pipeline.Probe(ctx, pipeline.Config{
		PluginDir: cfg.Pipeline.PluginDir, Builtins: builtins(), Env: env, StartTimeout: startTimeout,
		Lanes: 1,
	}, files, nil)
}

// actsOnText says which listed signals a started stage is called for, and why.
func actsOnText(r pipeline.ProbeResult) string {
	list := func(s []string) string {
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, ", ")
	}
	routes := ""
	if r.RouteSessionsOnly {
		routes = "; route only for pushes that name a session, the others past it without a call"
	}
	if !r.Declared {
		return "acts on " + list(r.Signals) + " (every signal listed: it declares nothing)" + routes
	}
	var skipped []string
	for _, s := range r.Signals {
		if !slices.Contains(r.ActsOn, s) {
			skipped = append(skipped, s)
		}
	}
	out := "acts on " + list(r.ActsOn) + " (declared at Init)"
	if len(skipped) > 0 {
		out += "; " + list(skipped) + ": past it without a call"
	}
	out += routes
	if len(r.Unlisted) > 0 {
		out += "; also acts on " + list(r.Unlisted) + " with this config, which the file does not list: ignored"
	}
	return out
}

func runPipelineShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plato pipeline show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var pf pipelineFlags
	pf.register(fs)
	dir := fs.String("dir", "", "the pipeline directory (default pipeline.dir, else "+pipeconfig.DefaultDir+")")
	asJSON := fs.Bool("json", false, "print the chain as JSON")
	load := fs.Bool("load", false, "also start each stage, run its Init with its config and print the signals it acts on")
	startTimeout := fs.Duration("start-timeout", pipeline.DefaultStartTimeout, "with --load: how long one plugin may take to start and Init")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("give one app ID, e.g. plato pipeline show demo")
	}
	app := fs.Arg(0)
	if !pipeconfig.ValidAppID(app) {
		return fmt.Errorf("%q is not a valid app ID (1 to 128 of A-Z a-z 0-9 _ . -)", app)
	}
	cfg, err := pf.load()
	if err != nil {
		return err
	}
	if *dir == "" {
		*dir = cfg.Pipeline.Dir
	}
	if *dir == "" {
		*dir = pipeconfig.DefaultDir
	}
	f, err := pipeconfig.LoadApp(*dir, app, cfg.Pipeline.PluginDir)
	if err != nil {
		fmt.Fprint(stdout, pipeconfig.Report(err))
		return errInvalidPipeline
	}
	own := f != nil
	if !own {
		if f, err = pipeconfig.LoadApp(*dir, pipeconfig.DefaultAppID, cfg.Pipeline.PluginDir); err != nil {
			fmt.Fprint(stdout, pipeconfig.Report(err))
			return errInvalidPipeline
		}
	}
	view, err := chainView(app, own, f)
	if err != nil {
		return err
	}
	started := true
	if *load {
		results, err := probeStages(ctx, cfg, []*pipeconfig.File{f}, *startTimeout)
		if err != nil {
			return err
		}
		for i, r := range results {
			ss := &view.Stages[i]
			if r.Err != nil {
				ss.LoadError, started = r.Err.Error(), false
				continue
			}
			ss.ActsOn, ss.ActsOnDeclared, ss.Unlisted = nonNil(r.ActsOn), r.Declared, r.Unlisted
			ss.RouteSessionsOnly = r.RouteSessionsOnly
			ss.actsOnText = actsOnText(r)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(view); err != nil {
			return err
		}
	} else {
		printChain(stdout, view, *load)
	}
	if !started {
		return errInvalidPipeline
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// shownChain is the effective chain of one app, as `plato pipeline show` prints it.
type shownChain struct {
	App     string       `json:"app"`
	File    string       `json:"file"`              // the file that serves the app; "" for none
	Own     bool         `json:"own_file"`          // false: the app runs the default pipeline
	Extends string       `json:"extends,omitempty"` // the app ID of the file merged under it
	Stages  []shownStage `json:"stages"`
}

type shownStage struct {
	Name      string          `json:"name"`
	Origin    string          `json:"origin,omitempty"`
	Plugin    string          `json:"plugin"`
	Binary    string          `json:"binary,omitempty"`
	SHA256    string          `json:"sha256,omitempty"`
	Pinned    bool            `json:"sha256_pinned,omitempty"`
	Signals   []string        `json:"signals"`
	Timeout   string          `json:"timeout"`
	OnFailure string          `json:"on_failure"`
	BatchMax  int             `json:"batch_max_size"`
	Config    json.RawMessage `json:"config"`
	// With --load: the listed signals the stage is called for with this config (all of Signals
	// unless it declared fewer at Init; null without --load), or why it did not start.
	ActsOn         []string `json:"acts_on"`
	ActsOnDeclared bool     `json:"acts_on_declared,omitempty"`
	Unlisted       []string `json:"acts_on_unlisted,omitempty"`
	// With --load: the stage routes only the pushes that name a session (stage.RouteSelector).
	RouteSessionsOnly bool   `json:"route_sessions_only,omitempty"`
	LoadError         string `json:"load_error,omitempty"`
	actsOnText        string
}

func chainView(app string, own bool, f *pipeconfig.File) (shownChain, error) {
	v := shownChain{App: app, File: f.Source, Own: own, Extends: f.Extends, Stages: []shownStage{}}
	for _, s := range f.Stages {
		ss := shownStage{Name: s.Name, Origin: s.Origin, Plugin: s.Plugin, Binary: s.Path, SHA256: s.SHA256, Pinned: s.SHA256 != "",
			Timeout: s.Timeout.String(), OnFailure: string(s.OnFailure), BatchMax: s.Batch.MaxSize, Config: s.Config}
		if s.Path != "" && s.SHA256 == "" {
			// What the server computes and compares at each reload (a rebuilt binary is swapped in).
			h, err := pipeconfig.FileSHA256(s.Path)
			if err != nil {
				return v, fmt.Errorf("hashing stage %s's binary: %w", s.Name, err)
			}
			ss.SHA256 = h
		}
		for _, sig := range s.Signals {
			ss.Signals = append(ss.Signals, string(sig))
		}
		if len(ss.Config) == 0 {
			ss.Config = json.RawMessage("{}")
		}
		v.Stages = append(v.Stages, ss)
	}
	return v, nil
}

func printChain(w io.Writer, v shownChain, loaded bool) {
	switch {
	case v.Own && v.Extends != "":
		fmt.Fprintf(w, "app %s: %s, extends %s\n", v.App, v.File, v.Extends)
	case v.Own:
		fmt.Fprintf(w, "app %s: %s\n", v.App, v.File)
	case v.File != "":
		fmt.Fprintf(w, "app %s: no file of its own; the default pipeline, %s\n", v.App, v.File)
	default:
		fmt.Fprintf(w, "app %s: no file of its own and no default.yaml\n", v.App)
	}
	if len(v.Stages) == 0 {
		fmt.Fprintln(w, "no stages: every signal goes straight to Plato's own handling")
		return
	}
	fmt.Fprintf(w, "%d stage(s), in the order every signal meets them:\n", len(v.Stages))
	for i, s := range v.Stages {
		fmt.Fprintf(w, "\n%d. %s", i+1, s.Name)
		if s.Origin != "" {
			fmt.Fprintf(w, " (%s)", s.Origin)
		}
		fmt.Fprintln(w)
		row := func(k, v string) { fmt.Fprintf(w, "   %-11s %s\n", k, v) }
		row("plugin", s.Plugin)
		if s.Binary != "" {
			row("binary", s.Binary)
			pin := "computed; not pinned"
			if s.Pinned {
				pin = "pinned by sha256"
			}
			row("sha256", s.SHA256+" ("+pin+")")
		}
		row("signals", strings.Join(s.Signals, ", "))
		switch {
		case s.LoadError != "":
			row("acts on", "unknown: the stage did not start: "+s.LoadError)
		case loaded:
			row("acts on", strings.TrimPrefix(s.actsOnText, "acts on "))
		}
		row("timeout", s.Timeout)
		row("on_failure", s.OnFailure)
		row("batch", fmt.Sprintf("max_size %d", s.BatchMax))
		row("config", string(s.Config))
	}
	if !loaded {
		fmt.Fprintln(w, "\n(--load starts each stage and shows which listed signals it acts on with its config)")
	}
}

// pipelineFileApp is the app ID a pipeline file's name stands for, and whether the name is one
// the state server reads at all (<app ID>.yaml or .yml, not hidden).
func pipelineFileApp(path string) (string, bool) {
	base := filepath.Base(path)
	if strings.HasPrefix(base, ".") {
		return "", false
	}
	for _, ext := range []string{".yaml", ".yml"} {
		if app, ok := strings.CutSuffix(base, ext); ok {
			return app, true
		}
	}
	return "", false
}

func sortedApps(m map[string]*pipeconfig.File) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
