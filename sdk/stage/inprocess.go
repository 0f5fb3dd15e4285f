package stage

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
)

// InProcess returns a Processor that runs s in the host's own process: for trusted stages, with
// no process boundary and no marshalling. It behaves like a plugin (the same dispatch, the same
// panic handling: a panicking handler fails its batch with a *BatchError), except that a panic
// cannot take the host down and there is no process to restart.
func InProcess(s Stage) Processor {
	p := &inProcess{stage: s, h: handlersOf(s)}
	p.log.Store(slog.Default())
	return p
}

type inProcess struct {
	stage  Stage
	h      *handlers
	log    atomic.Pointer[slog.Logger]
	closed atomic.Bool
	decl   atomic.Pointer[declaration] // the last successful Init's ActsOn
}

var (
	_ Processor          = (*inProcess)(nil)
	_ SignalDeclarer     = (*inProcess)(nil)
	_ RouteScopeDeclarer = (*inProcess)(nil)
)

func (p *inProcess) Describe(context.Context) (Info, []Signal, error) {
	return p.stage.Info(), p.h.signals(), nil
}

// Init passes req, and so the host's own Host, straight to the stage. A nil Logger becomes
// slog.Default().
func (p *inProcess) Init(ctx context.Context, req InitRequest) error {
	if req.Logger == nil {
		req.Logger = slog.Default()
	}
	p.log.Store(req.Logger)
	if err := p.stage.Init(ctx, req); err != nil {
		return fmt.Errorf("stage init: %w", err)
	}
	d, err := actsOnOf(p.stage)
	if err != nil {
		return fmt.Errorf("stage init: %w", err)
	}
	p.decl.Store(&d)
	return nil
}

// DeclaredSignals implements SignalDeclarer.
func (p *inProcess) DeclaredSignals() ([]Signal, bool) {
	if d := p.decl.Load(); d != nil {
		return d.signals, d.declared
	}
	return nil, false
}

// DeclaredSessionRoutesOnly implements RouteScopeDeclarer.
func (p *inProcess) DeclaredSessionRoutesOnly() bool {
	if d := p.decl.Load(); d != nil {
		return d.sessionRoutesOnly
	}
	return false
}

func (p *inProcess) Process(ctx context.Context, events []Event, replies []Reply) error {
	if len(replies) < len(events) {
		return fmt.Errorf("stage process: %d replies for %d events", len(replies), len(events))
	}
	if p.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.h.run(ctx, p.log.Load(), events, replies[:len(events)], true)
}

func (p *inProcess) Close() error {
	p.closed.Store(true)
	return nil
}
