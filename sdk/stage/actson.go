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
	// sessionRoutesOnly is the stage's RoutesSessionsOnly (RouteSelector); independent of ActsOn.
	sessionRoutesOnly bool
}

// actsOnOf asks s, just initialised, which signals it acts on. A panic in ActsOn is the stage's
// bug: it fails the Init that asked, with the panic's value, rather than the host.
func actsOnOf(s Stage) (d declaration, err error) {
	only, err := routesSessionsOnlyOf(s)
	if err != nil {
		return declaration{}, err
	}
	d, err = signalsOf(s)
	d.sessionRoutesOnly = only
	return d, err
}

// signalsOf asks s, just initialised, which signals it acts on (SignalSelector).
func signalsOf(s Stage) (d declaration, err error) {
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

// RouteSelector is optional for a stage that handles the route signal. A stage implements it when
// its config makes its answer to a push naming no session (only dids and uids) the same as the
// host's own choice without it: direct delivery, the QoS the business asked for or at least once
// when it asked none, the payload unchanged. The qosroute stage's default config is such a case:
// it chooses only how sessions travel.
//
// After each successful Init, the host asks RoutesSessionsOnly (with ActsOn, and by the same
// rules: the answer depends on the config only). When it answers true, the route events of pushes
// that name no session continue past the stage as if it had answered the zero Reply: no call, no
// batch slot, no timeout or on_failure; the stage still sees every push that names a session. A
// stage that does not implement RouteSelector, or a plugin built with an SDK from before it, sees
// every route event. A host from before it ignores the answer and sends them all, as before.
type RouteSelector interface {
	// RoutesSessionsOnly reports, for the config of the last Init, that the stage acts only on
	// the route events of pushes that name a session.
	RoutesSessionsOnly() bool
}

// RouteScopeDeclarer is implemented by the Processors this package makes. After a successful
// Init, DeclaredSessionRoutesOnly returns what the stage's RoutesSessionsOnly answered (false when
// the stage said nothing).
type RouteScopeDeclarer interface {
	DeclaredSessionRoutesOnly() bool
}

// SessionRoutesOnly returns what p's stage declared at its last Init about route events (see
// RouteSelector), for any Processor: one that does not implement RouteScopeDeclarer said nothing.
func SessionRoutesOnly(p Processor) bool {
	if d, ok := p.(RouteScopeDeclarer); ok {
		return d.DeclaredSessionRoutesOnly()
	}
	return false
}

// routesSessionsOnlyOf asks s, just initialised, whether it acts on session pushes' route events
// only. A panic there is the stage's bug, failing the Init that asked, as one in ActsOn does.
func routesSessionsOnlyOf(s Stage) (only bool, err error) {
	sel, ok := s.(RouteSelector)
	if !ok {
		return false, nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stage RoutesSessionsOnly panicked: %v", r)
		}
	}()
	return sel.RoutesSessionsOnly(), nil
}
