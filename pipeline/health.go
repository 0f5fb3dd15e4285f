package pipeline

import (
	"slices"
	"strings"
	"time"
)

// FailingStage is a plugin stage whose crash-loop breaker is open, as /healthz reports it.
type FailingStage struct {
	// App is the pipeline: an app ID, or "default".
	App   string `json:"app"`
	Stage string `json:"stage"`
	// Breaker is "open" (no process: its signals get its on_failure answer at once) or
	// "half_open" (a relaunched process serves on probation).
	Breaker string `json:"breaker"`
	// Crashes counts the stage's crashes since it started; RecentCrashes those within
	// pipeline.breaker.window, counted up to pipeline.breaker.crashes.
	Crashes       int64 `json:"crashes"`
	RecentCrashes int   `json:"recent_crashes"`
	// OpenSince is when the breaker opened; LastCrash and LastReason (exited, hung, unhealthy,
	// start_failed) are the latest crash's.
	OpenSince  time.Time `json:"open_since"`
	LastCrash  time.Time `json:"last_crash"`
	LastReason string    `json:"last_reason"`
}

// FailingStages lists the stages whose crash-loop breaker is open, by app and stage name; none
// when every stage is fine.
func (p *Pipelines) FailingStages() []FailingStage {
	var out []FailingStage
	now := time.Now()
	for _, in := range p.instances() {
		st := in.breakerState()
		if st == breakerClosed {
			continue
		}
		b := in.breaker.status(now)
		out = append(out, FailingStage{
			App: in.pipeline, Stage: in.name, Breaker: st.String(),
			Crashes: b.total, RecentCrashes: b.recent,
			OpenSince: b.openedAt, LastCrash: b.last, LastReason: b.lastReason.String(),
		})
	}
	slices.SortFunc(out, func(a, b FailingStage) int {
		if c := strings.Compare(a.App, b.App); c != 0 {
			return c
		}
		return strings.Compare(a.Stage, b.Stage)
	})
	return out
}

// instances lists the stage instances of the current chains, each once (a reload may share one
// between chains).
func (p *Pipelines) instances() []*instance {
	var out []*instance
	snap := p.snap.Load()
	if snap == nil { // New has not loaded the pipelines yet
		return nil
	}
	for _, c := range snap.chains() {
		for _, s := range c.steps {
			if !slices.Contains(out, s.inst) {
				out = append(out, s.inst)
			}
		}
	}
	return out
}
