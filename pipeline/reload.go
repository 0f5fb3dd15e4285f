package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/platoim/plato/pipeline/config"
)

// Watch reloads an app's pipeline each time its file in Config.Dir changes (default.yaml: the
// default pipeline), until ctx ends or Close is called; it returns nil then, and an error when the
// directory cannot be watched. An invalid file is logged with every problem (file, line, key path)
// and the running chain stays. Call it right after New: edits made before it starts watching are
// seen at the next edit of the same file.
func (p *Pipelines) Watch(ctx context.Context) error {
	if p.cfg.Dir == "" {
		return fmt.Errorf("watching pipelines: %w", errNoDir)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(p.life, cancel) // Close ends every watcher
	defer stop()
	err := config.Watch(ctx, p.cfg.Dir, func(appID string) {
		// Reload logs its own failures; the watcher carries on with the old chain.
		_ = p.Reload(appID)
	})
	if err != nil {
		return fmt.Errorf("watching pipelines in %s: %w", p.cfg.Dir, err)
	}
	return nil
}

// Reload loads appID's pipeline file again (config.DefaultAppID: default.yaml) and, if it is
// valid, swaps in its new chain: stages whose name, binary, signals and config are unchanged keep
// their process; a stage whose binary alone changed gets a new process (blue/green); other stages
// are started anew. The old chain's remaining stages are stopped once the batches that were using
// it have finished (bounded by Config.DrainTimeout). A removed file sends the app back to the
// default pipeline. On any error the running chain stays, the error is logged in full and
// returned. When the reload succeeds, every app whose file extends appID's (extends: default) is
// derived again from the new file the same way, each on its own: one that fails keeps its chain
// and is logged, and its error is joined to the result. Reload returns after the old stages have
// been stopped.
func (p *Pipelines) Reload(appID string) error {
	err := p.reload(appID)
	if err != nil {
		p.log.Error("pipeline not reloaded; the running one stays", "app", appID, "error", err)
		return err
	}
	var errs []error
	for _, dep := range config.Dependents(p.cfg.Dir, appID) {
		if err := p.reload(dep); err != nil {
			p.log.Error("pipeline not derived again from the file it extends; the running one stays",
				"app", dep, "extends", appID, "error", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (p *Pipelines) reload(appID string) error {
	if p.cfg.Dir == "" {
		return fmt.Errorf("reloading pipeline %s: %w", appID, errNoDir)
	}
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	if p.isClosed() {
		return fmt.Errorf("reloading pipeline %s: %w", appID, ErrClosed)
	}
	f, err := config.LoadApp(p.cfg.Dir, appID, p.cfg.PluginDir)
	if err != nil {
		return fmt.Errorf("reloading pipeline %s: %w", appID, err)
	}
	old := p.snap.Load()
	pipeline := appID
	var prev *chain
	if appID == defaultPipeline {
		prev = old.def
	} else {
		prev = old.apps[appID]
	}
	var next *chain
	var pl *plan
	if f != nil {
		// A reload runs outside any request; Close ends it through p.life.
		if next, pl, err = p.compile(p.life, f, prev); err != nil {
			p.scopes.prune(pipeline, prev.names())
			return fmt.Errorf("reloading pipeline %s: %w", appID, err)
		}
	}
	replaced := pl.commit()
	p.snap.Store(old.with(pipeline, next))
	p.log.Info("pipeline reloaded", "app", appID, "file", sourceOf(f), "stages", stageNames(next))

	// Batches that took the old snapshot finish on it; only then are its leftovers stopped.
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainTimeout)
	defer cancel()
	if !old.waitUnused(ctx) {
		p.log.Warn("stopping the old pipeline's stages while batches still use them", "app", appID)
	}
	var wg sync.WaitGroup
	for _, pr := range replaced {
		wg.Go(func() {
			if !pollUntil(ctx, func() bool { return pr.inflight.Load() == 0 }) {
				p.log.Warn("stopping a swapped-out stage process with batches in flight", "app", appID, "pid", pr.pid)
			}
			pr.stop()
		})
	}
	wg.Go(func() { p.retireChain(prev, next) })
	wg.Wait()
	p.scopes.prune(pipeline, next.names())
	return nil
}

func sourceOf(f *config.File) string {
	if f == nil {
		return "(removed: default pipeline)"
	}
	return f.Source
}

func stageNames(c *chain) []string {
	if c == nil {
		return nil
	}
	out := make([]string, len(c.steps))
	for i, s := range c.steps {
		out[i] = s.name
	}
	return out
}
