package pipeline

import (
	"slices"
	"strings"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// ChainStatus is one compiled chain as the ops console shows it: the chain the pipeline serves
// now (after any reload, and after whatever a file's own rules made of it), not the file as
// written.
type ChainStatus struct {
	// Pipeline is an app ID with a file of its own, or "default".
	Pipeline string `json:"pipeline"`
	// Source is the file the chain came from.
	Source string        `json:"source"`
	Stages []StageStatus `json:"stages"`
}

// StageStatus is one stage of a chain.
type StageStatus struct {
	Name string `json:"name"`
	// Builtin names an in-process stage; Plugin and SHA256 are a plugin's binary and its hash
	// (pinned in the file, or computed when it was loaded).
	Builtin string   `json:"builtin,omitempty"`
	Plugin  string   `json:"plugin,omitempty"`
	SHA256  string   `json:"sha256,omitempty"`
	Signals []string `json:"signals"`
	// ActsOn are the listed signals the lanes call the stage for: those it said it acts on at its
	// last Init (ActsOnDeclared), or all of Signals when it declared nothing. The others continue
	// past it without a call.
	ActsOn         []string `json:"acts_on"`
	ActsOnDeclared bool     `json:"acts_on_declared,omitempty"`
	// RouteSessionsOnly: the stage said, at its last Init, that it acts only on the route events
	// of pushes naming a session (stage.RouteSelector); the others continue past it.
	RouteSessionsOnly bool `json:"route_sessions_only,omitempty"`
	// Unlisted are signals the stage said it acts on that the file does not list: ignored.
	Unlisted []string `json:"acts_on_unlisted,omitempty"`
	// Timeout and FailOpen are the chain's settings for calling it.
	Timeout  time.Duration `json:"timeout_ns"`
	FailOpen bool          `json:"fail_open,omitempty"`
	// Process is "running" (PID, since Started), "down" (its supervisor is restarting it or its
	// breaker is open) or "in_process" (a builtin).
	Process string    `json:"process"`
	PID     int       `json:"pid,omitempty"`
	Started time.Time `json:"started,omitzero"`
	// Restarts counts the plugin processes started again after a crash, hang or failed health
	// check; Crashes the processes lost (every start that failed included).
	Restarts int64 `json:"restarts"`
	Crashes  int64 `json:"crashes"`
	// Breaker is the crash-loop breaker: closed, half_open or open.
	Breaker string `json:"breaker"`
}

// Chains lists the chains served now, "default" first, then by app ID.
func (p *Pipelines) Chains() []ChainStatus {
	snap := p.snap.Load()
	if snap == nil {
		return nil
	}
	now := time.Now()
	var out []ChainStatus
	for _, c := range snap.chains() {
		cs := ChainStatus{Pipeline: c.pipeline, Source: c.source, Stages: make([]StageStatus, 0, len(c.steps))}
		for _, s := range c.steps {
			cs.Stages = append(cs.Stages, s.status(now))
		}
		out = append(out, cs)
	}
	slices.SortFunc(out, func(a, b ChainStatus) int {
		if (a.Pipeline == defaultPipeline) != (b.Pipeline == defaultPipeline) {
			if a.Pipeline == defaultPipeline {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Pipeline, b.Pipeline)
	})
	return out
}

// PipelineOf names the chain that serves app's signals: app itself when it has a chain of its
// own, "default" when default.yaml serves it, "" when its signals pass through no stage.
func (p *Pipelines) PipelineOf(app string) string {
	snap := p.snap.Load()
	if snap == nil {
		return ""
	}
	if c := snap.chainFor(app); c != nil {
		return c.pipeline
	}
	return ""
}

func (s *step) status(now time.Time) StageStatus {
	in := s.inst
	in.mu.Lock()
	spec := in.spec
	in.mu.Unlock()
	st := StageStatus{
		Name: s.name, Builtin: spec.builtin, Timeout: s.timeout, FailOpen: s.failOpen,
		Restarts: in.restarts.Load(), Breaker: in.breakerState().String(),
	}
	if spec.builtin == "" {
		st.Plugin, st.SHA256 = spec.path, spec.hash
	}
	for _, sig := range spec.signals {
		st.Signals = append(st.Signals, string(sig))
	}
	a := in.actsOn()
	st.ActsOn, st.ActsOnDeclared = (a.set & s.signals).names(), a.declared
	st.RouteSessionsOnly = a.sessionRoutesOnly && (a.set & s.signals).has(stage.SignalRoute)
	if a.unlisted != 0 {
		st.Unlisted = a.unlisted.names()
	}
	b := in.breaker.status(now)
	st.Crashes = b.total
	switch pr := in.cur.Load(); {
	case spec.builtin != "":
		st.Process = "in_process"
	case pr == nil:
		st.Process = "down"
	default:
		st.Process, st.PID, st.Started = "running", pr.pid, pr.started
	}
	return st
}
