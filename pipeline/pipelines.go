package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/metric"

	"github.com/platoim/plato/internal/batch"
	"github.com/platoim/plato/internal/timewheel"
	"github.com/platoim/plato/pipeline/config"
	"github.com/platoim/plato/sdk/stage"
)

// Pipelines is the pipeline host the state server holds: the compiled chain of every app, the
// lanes that run signals through them, and the stages' processes, timers and state. Make one with
// New; the zero value is not usable.
type Pipelines struct {
	cfg     Config
	base    stage.Host // the state server's: Push, Resend, Undelivered, Bind, Unbind
	log     *slog.Logger
	metrics *metrics

	// snap is the current set of chains; lanes load it once per batch (see doc.go).
	snap  atomic.Pointer[snapshot]
	lanes appLanes
	// noPass makes every signal take its lane (passes never does): for BenchmarkUplinkPass.
	noPass bool

	wheel  *timewheel.Wheel
	scopes *scopes

	// life ends at Close: it stops watchers and plugin supervisors.
	life    context.Context
	stop    context.CancelFunc
	workers sync.WaitGroup // supervisors

	breakers metric.Registration // the breaker state gauge's callback; nil without a meter

	reloadMu  sync.Mutex // one reload at a time
	closeOnce sync.Once
	closeErr  error

	scratch sync.Pool // *laneScratch
}

// New loads every pipeline file of cfg.Dir, starts the stages they list (plugin processes and
// builtins), and starts the lanes. host serves the stages' Push, Resend, Undelivered, Bind and
// Unbind; it may be nil in tests, and those calls then fail. logger (nil: discard) receives the
// host's and the plugins' logs; meter (nil: no metrics) the stage metrics. ctx bounds the start
// only. On error nothing is left running.
func New(ctx context.Context, cfg Config, host stage.Host, logger *slog.Logger, meter metric.Meter) (*Pipelines, error) {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(meter)
	if err != nil {
		return nil, fmt.Errorf("creating pipeline metrics: %w", err)
	}
	p := &Pipelines{
		cfg:     cfg,
		base:    host,
		log:     logger,
		metrics: m,
		wheel:   timewheel.New(cfg.TimerTick, 0),
		scopes:  newScopes(),
	}
	p.life, p.stop = context.WithCancel(context.Background())
	p.scratch.New = func() any { return new(laneScratch) }

	if p.breakers, err = m.observeBreakers(meter, p.instances); err != nil {
		return nil, fmt.Errorf("creating pipeline metrics: %w", err)
	}
	snap, err := p.loadAll(ctx)
	if err != nil {
		if p.breakers != nil {
			_ = p.breakers.Unregister()
		}
		p.stop()
		p.workers.Wait()
		return nil, err
	}
	p.snap.Store(snap)
	p.lanes.newLanes = func() *batch.Batcher[item] {
		return batch.New(batch.Config{
			MaxSize:  cfg.BatchSize,
			MaxDelay: cfg.Linger, // 0: natural batching (internal/batch)
			Lanes:    cfg.Lanes,
			MaxQueue: cfg.QueueLimit,
		}, p.runBatch)
	}
	p.wheel.Start()
	p.workers.Add(1)
	go func() {
		defer p.workers.Done()
		p.sweepState(p.life)
	}()
	return p, nil
}

// loadAll compiles every file of the directory into the first snapshot.
func (p *Pipelines) loadAll(ctx context.Context) (*snapshot, error) {
	snap := &snapshot{apps: map[string]*chain{}}
	if p.cfg.Dir == "" {
		return snap, nil
	}
	set, err := config.LoadDir(p.cfg.Dir, p.cfg.PluginDir)
	if err != nil {
		return nil, fmt.Errorf("loading the pipeline files: %w", err)
	}
	// Compile the files in parallel: each may start plugin processes, which takes a while.
	files := make([]*config.File, 0, len(set.Apps)+1)
	def := set.Default
	if def == nil { // LoadDir promises one; an empty pipeline if it ever does not
		def = &config.File{AppID: defaultPipeline, Version: config.Version}
	}
	files = append(files, def)
	for _, f := range set.Apps {
		files = append(files, f)
	}
	chains := make([]*chain, len(files))
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Go(func() { chains[i], _, errs[i] = p.compile(ctx, f, nil) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, c := range chains {
			p.retireChain(c, nil)
		}
		return nil, err
	}
	snap.def = chains[0]
	for _, c := range chains[1:] {
		snap.apps[c.pipeline] = c
	}
	return snap, nil
}

// Close stops the timers, lets the lanes finish every queued signal (each gets its done), then
// stops the watchers, the supervisors and every stage, and waits for every plugin process to exit.
// If ctx ends before the lanes are drained, Close goes on and returns ctx.Err(): the signals still
// queued get their done later, from stage calls that fail (the stages are gone). Later calls
// return the first call's result.
func (p *Pipelines) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		if p.breakers != nil {
			_ = p.breakers.Unregister()
		}
		p.wheel.Stop() // no new timer signals
		errLanes := p.lanes.close(ctx)
		p.stop() // watchers, supervisors, the state sweeper; Reload refuses from now on
		p.workers.Wait()
		p.reloadMu.Lock() // a reload in progress finishes before the chains are torn down
		snap := p.snap.Load()
		for _, c := range snap.chains() {
			p.retireChain(c, nil)
		}
		p.reloadMu.Unlock()
		p.scopes.clear()
		if errLanes != nil {
			p.closeErr = fmt.Errorf("draining pipeline lanes: %w", errLanes)
		}
	})
	return p.closeErr
}

// isClosed reports whether Close has started.
func (p *Pipelines) isClosed() bool { return p.life.Err() != nil }

var errNoHost = errors.New("the pipeline host has no platform host for this call")
