package pipeline

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/platoim/plato/pipeline/config"
	"github.com/platoim/plato/sdk/stage"
)

// defaultPipeline names the chain of app IDs without a file (default.yaml).
const defaultPipeline = config.DefaultAppID

// chain is one compiled pipeline file: the steps a lane runs a signal through, in order. It is
// immutable once built; stage instances may be shared with the chain it replaced.
type chain struct {
	pipeline string // app ID, or defaultPipeline
	source   string // the file it came from, for logs
	steps    []*step
}

// step is one stage of a chain: the instance that does the work and what this file says about
// calling it. Timeout, policy and batch size are the chain's, not the instance's, so a reload that
// changes only them keeps the running process.
type step struct {
	name     string
	inst     *instance
	signals  signalSet
	timeout  time.Duration
	failOpen bool
	maxBatch int
	// failMsg is the Reject message per failure reason, built once so a failure allocates nothing.
	failMsg [numReasons]string
}

// signalSet is a set of stage.Signal as a bit mask, for a cheap test per signal and step.
type signalSet uint16

func signalBit(s stage.Signal) signalSet {
	switch s {
	case stage.SignalLogin:
		return 1 << 0
	case stage.SignalUplink:
		return 1 << 1
	case stage.SignalDownlink:
		return 1 << 2
	case stage.SignalDownlinkAck:
		return 1 << 3
	case stage.SignalHeartbeat:
		return 1 << 4
	case stage.SignalDisconnect:
		return 1 << 5
	case stage.SignalRoute:
		return 1 << 6
	case stage.SignalRetransmit:
		return 1 << 7
	}
	return 0 // timers and unknown signals: reach no stage by signal
}

func (s signalSet) has(sig stage.Signal) bool { return s&signalBit(sig) != 0 }

// stageSpec is what identifies a running stage instance: when a reload yields an equal spec for a
// stage of the same name, the running instance is kept.
type stageSpec struct {
	builtin string
	path    string
	hash    string // the binary's SHA-256 (pinned in the YAML or computed at load), hex
	pinned  bool   // hash came from the YAML: go-plugin checks it again at each start
	signals []stage.Signal
	config  string
}

func (a stageSpec) sameBinary(b stageSpec) bool {
	return a.builtin == b.builtin && a.path == b.path && a.hash == b.hash
}

func (a stageSpec) sameRole(b stageSpec) bool {
	if a.config != b.config || len(a.signals) != len(b.signals) {
		return false
	}
	x, y := slices.Clone(a.signals), slices.Clone(b.signals)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// specOf turns a stage of a file into its identity, hashing the binary when the YAML does not pin
// it, so that a rebuilt binary at the same path is noticed by a reload.
func specOf(st config.Stage) (stageSpec, error) {
	sp := stageSpec{builtin: st.Builtin, path: st.Path, config: string(st.Config)}
	if sp.config == "" {
		sp.config = "{}"
	}
	sp.signals = slices.Clone(st.Signals) // in YAML order, for messages; sameRole compares sets
	if st.Builtin != "" {
		return sp, nil
	}
	if st.SHA256 != "" {
		sp.hash, sp.pinned = st.SHA256, true
		return sp, nil
	}
	h, err := config.FileSHA256(st.Path)
	if err != nil {
		return sp, fmt.Errorf("hashing stage %q binary: %w", st.Name, err)
	}
	sp.hash = h
	return sp, nil
}

// compile builds the chain of f. Stages of old (the chain f replaces; nil at start) are reused when
// unchanged, and swapped to a new process (prepared here, switched by plan.commit) when only their
// binary changed; every other stage gets a new instance. On error, everything compile started is
// stopped again and old is untouched.
func (p *Pipelines) compile(ctx context.Context, f *config.File, old *chain) (*chain, *plan, error) {
	c := &chain{pipeline: f.AppID, source: f.Source}
	if c.pipeline == "" {
		c.pipeline = defaultPipeline
	}
	pl := &plan{}
	prev := map[string]*instance{}
	if old != nil {
		for _, s := range old.steps {
			prev[s.name] = s.inst
		}
	}
	seen := map[string]bool{}
	for _, st := range f.Stages {
		if seen[st.Name] {
			pl.abort(p)
			return nil, nil, fmt.Errorf("%s: stage %q is listed twice", f.Source, st.Name)
		}
		seen[st.Name] = true
		inst, err := p.instanceFor(ctx, c.pipeline, st, prev[st.Name], pl)
		if err != nil {
			pl.abort(p)
			return nil, nil, fmt.Errorf("%s: %w", sourceName(f), err)
		}
		c.steps = append(c.steps, newStep(c.pipeline, st, inst))
	}
	return c, pl, nil
}

func sourceName(f *config.File) string {
	if f.Source != "" {
		return f.Source
	}
	return f.AppID + " pipeline"
}

// instanceFor decides, for one stage, between reusing the running instance, swapping its binary,
// and starting a new instance.
func (p *Pipelines) instanceFor(ctx context.Context, pipeline string, st config.Stage, running *instance, pl *plan) (*instance, error) {
	spec, err := specOf(st)
	if err != nil {
		return nil, err
	}
	if running != nil && !running.retired.Load() {
		cur := running.currentSpec()
		switch {
		case cur.sameRole(spec) && cur.sameBinary(spec):
			return running, nil
		case cur.sameRole(spec) && cur.builtin == "" && spec.builtin == "":
			// Same stage, new binary: blue/green on the running instance, so its restarts count,
			// state and timers carry on.
			np, err := running.startProc(ctx, spec)
			if err != nil {
				return nil, err
			}
			pl.swaps = append(pl.swaps, pendingSwap{inst: running, spec: spec, proc: np})
			return running, nil
		}
	}
	inst, err := p.newInstance(ctx, pipeline, st.Name, spec)
	if err != nil {
		return nil, err
	}
	pl.fresh = append(pl.fresh, inst)
	return inst, nil
}

func newStep(pipeline string, st config.Stage, inst *instance) *step {
	s := &step{
		name:     st.Name,
		inst:     inst,
		timeout:  st.Timeout,
		failOpen: st.OnFailure == config.FailOpen,
		maxBatch: st.Batch.MaxSize,
	}
	if s.timeout <= 0 {
		s.timeout = config.DefaultTimeout
	}
	for _, sig := range st.Signals {
		s.signals |= signalBit(sig)
	}
	for r := range numReasons {
		s.failMsg[r] = fmt.Sprintf("pipeline stage %s (%s) failed: %s; retry later", st.Name, pipeline, reason(r))
	}
	return s
}

// plan is what a compile started and has not made current yet.
type plan struct {
	fresh []*instance   // new instances: stopped if the reload is abandoned
	swaps []pendingSwap // new processes for running instances: switched in by commit
}

type pendingSwap struct {
	inst *instance
	spec stageSpec
	proc *proc
}

// abort stops what the plan started.
func (pl *plan) abort(p *Pipelines) {
	for _, in := range pl.fresh {
		in.retire(context.Background())
	}
	for _, s := range pl.swaps {
		s.proc.stop()
	}
	pl.fresh, pl.swaps = nil, nil
}

// commit routes the swapped instances to their new processes and returns the processes they
// replaced, which the caller drains and stops.
func (pl *plan) commit() []*proc {
	if pl == nil {
		return nil
	}
	var old []*proc
	for _, s := range pl.swaps {
		if o := s.inst.install(s.spec, s.proc); o != nil {
			old = append(old, o)
		}
	}
	return old
}

// retireChain stops the instances of c that keep (the chain replacing it; nil: none) does not use.
func (p *Pipelines) retireChain(c *chain, keep *chain) {
	if c == nil {
		return
	}
	used := map[*instance]bool{}
	if keep != nil {
		for _, s := range keep.steps {
			used[s.inst] = true
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range c.steps {
		if !used[s.inst] {
			wg.Go(func() { s.inst.retire(ctx) }) // each may wait for its process to exit
		}
	}
	wg.Wait()
}

// names lists the stage names of c.
func (c *chain) names() map[string]bool {
	m := map[string]bool{}
	if c != nil {
		for _, s := range c.steps {
			m[s.name] = true
		}
	}
	return m
}
