package stage

import (
	"fmt"
	"slices"
)

// SignalSelector is optional for a stage. A stage implements it when its config can turn some of
// its handlers into a plain Continue: an auth stage with no deny list and no ACL has nothing to
// check on uplinks, yet the pipeline YAML lists uplink so that configuring one takes effect.
//
// After each successful Init (a process start, a crash-restart, a reload that changes the config),
// the host calls ActsOn and from then on sends the stage only those of its listed signals. The
// others continue past it as if it had answered the zero Reply: no call, no batch slot, no
// timeout or on_failure. Timers the stage set still reach it.
//
// The answer must depend on the config Init received, nothing else: the host asks once per Init,
// not per event. A signal the pipeline does not list for the stage is ignored, with a warning in
// the host's log (it usually means a setting that cannot take effect). A stage that does not
// implement SignalSelector, or a plugin built with an SDK from before it, is sent every signal
// its YAML lists.
type SignalSelector interface {
	// ActsOn returns the signals the stage acts on with the config of the last Init. An empty
	// result means none: the stage stays loaded but is never called for a listed signal.
	ActsOn() []Signal
}

// SignalDeclarer is implemented by the Processors this package makes (InProcess, Dispense). After
// a successful Init, DeclaredSignals returns what the stage's ActsOn answered; declared is false
// when the stage said nothing (no SignalSelector, or a plugin from an older SDK): the host then
// sends it every listed signal.
type SignalDeclarer interface {
	DeclaredSignals() (signals []Signal, declared bool)
}

// Declared returns what p's stage declared at its last Init, for any Processor: one that does not
// implement SignalDeclarer declared nothing.
func Declared(p Processor) ([]Signal, bool) {
	if d, ok := p.(SignalDeclarer); ok {
		return d.DeclaredSignals()
	}
	return nil, false
}

// declaration is one Init's answer, kept by a Processor for DeclaredSignals.
type declaration struct {
	signals  []Signal
	declared bool
}

// actsOnOf asks s, just initialised, which signals it acts on. A panic in ActsOn is the stage's
// bug: it fails the Init that asked, with the panic's value, rather than the host.
func actsOnOf(s Stage) (d declaration, err error) {
	sel, ok := s.(SignalSelector)
	if !ok {
		return declaration{}, nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stage ActsOn panicked: %v", r)
		}
	}()
	sigs := slices.Clone(sel.ActsOn())
	if sigs == nil {
		sigs = []Signal{}
	}
	return declaration{signals: sigs, declared: true}, nil
}
