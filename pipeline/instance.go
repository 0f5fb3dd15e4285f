package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/platoim/plato/sdk/stage"
)

// instance is one running stage of one pipeline: a builtin, or a supervised plugin process that
// may be restarted or swapped underneath. Lanes reach its current process through acquire.
type instance struct {
	p        *Pipelines
	pipeline string
	name     string
	scope    *scope     // state and timers: outlive processes and reloads that keep the name
	host     *stageHost // what the stage's Init gets as its Host
	log      *slog.Logger
	attrs    instAttrs

	mu   sync.Mutex // guards spec; serialises install against the supervisor
	spec stageSpec

	cur         atomic.Pointer[proc] // nil while a plugin is down
	acts        atomic.Uint32        // the signals the lanes call it for (actson.go): the last current process's
	retired     atomic.Bool
	lastFailLog atomic.Int64 // unix nanoseconds; see logFailure

	// Plugins only.
	kick     chan struct{}      // wakes the supervisor early (a failed call, a hung process)
	cancel   context.CancelFunc // stops the supervisor
	done     chan struct{}      // closed when the supervisor has returned
	restarts atomic.Int64
	breaker  *breaker // crash loops (breaker.go); never opens for a builtin
}

// newInstance starts a stage: its builtin, or its plugin process and supervisor.
func (p *Pipelines) newInstance(ctx context.Context, pipeline, name string, spec stageSpec) (*instance, error) {
	in := &instance{
		p:        p,
		pipeline: pipeline,
		name:     name,
		spec:     spec,
		scope:    p.scopes.get(pipeline, name, p.cfg.StateLimit, p.cfg.TimerLimit),
		log:      p.log.With("stage", name, "app", pipeline),
		attrs:    newInstAttrs(pipeline, name),
		breaker:  newBreaker(p.cfg.Breaker),
	}
	in.host = &stageHost{p: p, in: in}
	pr, err := in.startProc(ctx, spec)
	if err != nil {
		return nil, err
	}
	in.cur.Store(pr)
	in.noteActs(pr)
	p.metrics.seed(in)
	if spec.builtin == "" {
		sctx, cancel := context.WithCancel(p.life)
		in.kick = make(chan struct{}, 1)
		in.cancel = cancel
		in.done = make(chan struct{})
		p.workers.Add(1)
		go func() {
			defer p.workers.Done()
			defer close(in.done)
			in.supervise(sctx)
		}()
	}
	return in, nil
}

// startProc starts a process (or the in-process stage) for spec and makes it ready for batches:
// Describe checks it implements every signal the YAML lists, then Init.
func (in *instance) startProc(ctx context.Context, spec stageSpec) (*proc, error) {
	ctx, cancel := context.WithTimeout(ctx, in.p.cfg.StartTimeout)
	defer cancel()
	var pr *proc
	if spec.builtin != "" {
		f := in.p.cfg.Builtins[spec.builtin]
		if f == nil {
			return nil, fmt.Errorf("stage %q: unknown builtin %q (this server has %v)", in.name, spec.builtin, builtinNames(in.p.cfg.Builtins))
		}
		pr = &proc{pr: stage.InProcess(f())}
	} else {
		var err error
		if pr, err = in.startPlugin(ctx, spec); err != nil {
			return nil, fmt.Errorf("stage %q: %w", in.name, err)
		}
	}
	if err := in.ready(ctx, pr, spec); err != nil {
		pr.stop()
		var stderr string
		if !errors.As(err, new(*missingSignalsError)) { // the YAML's mistake: the plugin has nothing to say
			stderr = stderrSuffix(pr.tail.last())
		}
		return nil, fmt.Errorf("stage %q: %w%s", in.name, err, stderr)
	}
	return pr, nil
}

// ready runs Describe and Init on a freshly started process.
func (in *instance) ready(ctx context.Context, pr *proc, spec stageSpec) error {
	_, have, err := pr.pr.Describe(ctx)
	if err != nil {
		return fmt.Errorf("describing: %w", err)
	}
	var missing []stage.Signal
	for _, s := range spec.signals {
		if !slices.Contains(have, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return &missingSignalsError{missing: missing, have: have}
	}
	err = pr.pr.Init(ctx, stage.InitRequest{
		Pipeline: in.pipeline,
		Stage:    in.name,
		Config:   []byte(spec.config),
		Host:     in.host,
		Logger:   in.log,
	})
	if err != nil {
		return fmt.Errorf("initialising: %w", err)
	}
	pr.acts = in.declaredActs(pr, spec.signals)
	return pr.healthy(ctx)
}

// missingSignalsError is a stage whose YAML lists signals it does not handle.
type missingSignalsError struct{ missing, have []stage.Signal }

func (e *missingSignalsError) Error() string {
	return fmt.Sprintf("does not implement %v, which the pipeline lists for it (it handles %v)", e.missing, e.have)
}

func builtinNames(m map[string]func() stage.Stage) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func (in *instance) currentSpec() stageSpec {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.spec
}

// acquire returns the process to send a batch to, counted as in flight until release, or nil
// when the stage is down. The second load closes the race with install/retire switching the
// process between our load and our increment (see snapshot.acquire).
func (in *instance) acquire() *proc {
	for {
		pr := in.cur.Load()
		if pr == nil {
			return nil
		}
		pr.inflight.Add(1)
		if in.cur.Load() == pr {
			return pr
		}
		pr.inflight.Add(-1)
	}
}

// install makes pr the process new batches go to, with spec as the instance's identity, and
// returns the process it replaces (nil if the stage was down). The caller drains and stops it.
func (in *instance) install(spec stageSpec, pr *proc) *proc {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.spec = spec
	in.noteActs(pr)
	return in.cur.Swap(pr)
}

// swap is blue/green for one stage: it starts spec's binary, Describes and Inits it, routes new
// batches to it, waits (up to Config.DrainTimeout) for batches still in the old process and then
// stops the old process.
func (in *instance) swap(ctx context.Context, spec stageSpec) error {
	if in.retired.Load() {
		return fmt.Errorf("swapping stage %q: %w", in.name, ErrClosed)
	}
	pr, err := in.startProc(ctx, spec)
	if err != nil {
		return fmt.Errorf("swapping stage %q: %w", in.name, err)
	}
	old := in.install(spec, pr)
	in.drainAndStop(old)
	return nil
}

// drainAndStop waits for the batches in flight in old, bounded by Config.DrainTimeout, then
// stops it. Batches still running then fail and follow the stage's failure policy.
func (in *instance) drainAndStop(old *proc) {
	if old == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), in.p.cfg.DrainTimeout)
	defer cancel()
	if !pollUntil(ctx, func() bool { return old.inflight.Load() == 0 }) {
		in.log.Warn("stopping a stage process with batches still in flight", "in_flight", old.inflight.Load())
	}
	old.stop()
}

// retire stops the instance for good: its supervisor, then its process once the batches in
// flight have returned (bounded by ctx).
func (in *instance) retire(ctx context.Context) {
	if in.retired.Swap(true) {
		return
	}
	if in.cancel != nil {
		in.cancel()
		<-in.done
	}
	old := in.cur.Swap(nil)
	if old == nil {
		return
	}
	if !pollUntil(ctx, func() bool { return old.inflight.Load() == 0 }) {
		in.log.Warn("stopping a stage with batches still in flight", "in_flight", old.inflight.Load())
	}
	old.stop()
}

// callFailed records a failed call for hang detection: a process whose calls time out
// hangTimeouts times in a row, and that has answered nothing since the first of them (not even
// late), is stuck and killed by the supervisor, which restarts it. One that keeps answering late is
// slow: killing it would only add a restart to the overload, so it is logged and left running.
func (in *instance) callFailed(pr *proc, r reason) {
	if pr.client == nil {
		return
	}
	if r == reasonTimeout {
		n := pr.timeouts.Add(1)
		if n == 1 {
			pr.answeredAt.Store(pr.answered())
		}
		if n >= hangTimeouts {
			if pr.answered() == pr.answeredAt.Load() {
				pr.hung.Store(true)
			} else {
				pr.timeouts.Store(0)
				in.p.metrics.slow(in)
				in.log.Warn("stage calls time out but the plugin answers late: slow, not restarted; raise its timeout if this persists",
					"pid", pr.pid, "timeouts", n)
			}
		}
	}
	in.wake()
}

func (in *instance) callOK(pr *proc) {
	if pr.timeouts.Load() != 0 {
		pr.timeouts.Store(0)
	}
}

// breakerState is the stage's crash-loop breaker as the metrics and /healthz show it.
func (in *instance) breakerState() breakerState {
	if !in.breaker.isOpen() {
		return breakerClosed
	}
	if in.cur.Load() != nil {
		return breakerHalfOpen
	}
	return breakerOpen
}

// wake asks the supervisor to look at the process now rather than at its next tick.
func (in *instance) wake() {
	select {
	case in.kick <- struct{}{}:
	default:
	}
}
