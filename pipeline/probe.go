package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/platoim/plato/pipeline/config"
	"github.com/platoim/plato/sdk/stage"
)

// ProbeResult is what Probe learned of one stage of one file.
type ProbeResult struct {
	App   string // the file's app ID
	Stage string
	// Err is why the state server would refuse the stage (nil: it starts): its plugin does not
	// start, does not implement a signal the file lists for it, its Init refuses the config, or it
	// fails its first health check.
	Err error
	// Signals are the signals the file lists for the stage; ActsOn those the lanes would call it
	// for once it started (all of Signals unless it declared fewer at Init: Declared).
	Signals  []string
	ActsOn   []string
	Declared bool
	// Unlisted are signals the stage said it acts on that the file does not list (ignored).
	Unlisted []string
	// RouteSessionsOnly: it is called for route and said at Init that it acts only on the route
	// events of pushes naming a session (stage.RouteSelector); the others pass it without a call.
	RouteSessionsOnly bool
}

// Probe starts every stage of files exactly as New and a reload do (the plugin process through
// go-plugin, with cfg.Env; Describe, checking the stage handles every signal listed for it; Init
// with its config; a health check) and stops it again, one stage at a time so that each problem is
// reported. cfg.Dir is ignored; cfg.Builtins resolves builtin: stages. The stages get no platform
// host: an Init that calls the host sees its calls fail. A stage that several files share
// unchanged (an inherited one) is started once. It returns one result per stage, in file order,
// and an error only when the probing itself cannot run.
func Probe(ctx context.Context, cfg Config, files []*config.File, logger *slog.Logger) ([]ProbeResult, error) {
	cfg.Dir = ""
	p, err := New(ctx, cfg, nil, logger, nil)
	if err != nil {
		return nil, fmt.Errorf("starting the pipeline host to probe stages: %w", err)
	}
	var out []ProbeResult
	type key struct{ name, plugin, path, sha, signals, config string }
	seen := map[key]ProbeResult{}
	for _, f := range files {
		for _, st := range f.Stages {
			k := key{st.Name, st.Plugin, st.Path, st.SHA256, fmt.Sprint(st.Signals), string(st.Config)}
			r, done := seen[k]
			if !done {
				one := &config.File{AppID: f.AppID, Source: f.Source, Version: f.Version, Stages: []config.Stage{st}}
				c, _, err := p.compile(ctx, one, nil)
				r = ProbeResult{Err: err}
				if err == nil {
					a := c.steps[0].inst.actsOn()
					called := c.steps[0].calledFor()
					r.ActsOn, r.Declared = called.names(), a.declared
					r.RouteSessionsOnly = a.sessionRoutesOnly && called.has(stage.SignalRoute)
					if a.unlisted != 0 {
						r.Unlisted = a.unlisted.names()
					}
					p.retireChain(c, nil)
				}
				seen[k] = r
			}
			r.App, r.Stage = f.AppID, st.Name
			for _, sig := range st.Signals {
				r.Signals = append(r.Signals, string(sig))
			}
			out = append(out, r)
			if ctx.Err() != nil {
				break
			}
		}
	}
	if err := p.Close(context.WithoutCancel(ctx)); err != nil {
		return out, fmt.Errorf("stopping the probed stages: %w", err)
	}
	return out, errors.Join(ctx.Err())
}
