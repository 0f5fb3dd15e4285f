package pipeline

import (
	"slices"

	"github.com/platoim/plato/sdk/stage"
)

// A stage may declare, at each Init, which of its listed signals it acts on with its config
// (stage.SignalSelector). The lanes then send it only those; the rest continue past it as if it
// had answered Continue. The declaration is kept per process (an Init answers it) and copied to
// the instance whenever a process becomes current, so the lanes read one atomic per step, and a
// stage whose process is down keeps its last declaration: the config decides it, not the process.

// declaredBit marks, in instance.acts, a declaration (rather than the listed set by default).
const declaredBit = 1 << 15 // above every signal bit; see signalBit

// sessionRoutesBit marks, in instance.acts, a stage that acts only on the route events of pushes
// naming a session (stage.RouteSelector).
const sessionRoutesBit = 1 << 14

// setMask is the called-for set's bits in instance.acts.
const setMask = sessionRoutesBit - 1

// acts is a process's declaration, folded with the signals the YAML lists for it.
type acts struct {
	set      signalSet // the listed signals it is called for
	unlisted signalSet // signals it declared that the YAML does not list (ignored; shown to operators)
	declared bool      // the stage narrowed them (false: it is called for every listed signal)
	// sessionRoutesOnly: route events of pushes naming no session continue past the stage
	// (stage.RouteSelector); it is called for the others.
	sessionRoutesOnly bool
}

// word packs a into instance.acts: the called-for set in the low byte, the unlisted set in the
// third, declaredBit between.
func (a acts) word() uint32 {
	w := uint32(a.set) | uint32(a.unlisted)<<16
	if a.declared {
		w |= declaredBit
	}
	if a.sessionRoutesOnly {
		w |= sessionRoutesBit
	}
	return w
}

func actsOfWord(w uint32) acts {
	return acts{set: signalSet(w & setMask), unlisted: signalSet(w >> 16), declared: w&declaredBit != 0, sessionRoutesOnly: w&sessionRoutesBit != 0}
}

// declaredActs reads what pr's stage declared at its Init and folds it with the listed signals.
// Declared signals that are not listed are ignored, with a warning: a stage that says it acts on
// uplink under a config the YAML does not send it uplinks for has a setting that cannot take
// effect there (an auth stage's deny_dids with signals: [login] refuses the did at login only).
// It is a warning rather than an error because that may be what the operator meant, and because
// a stage cannot know what the YAML lists.
func (in *instance) declaredActs(pr *proc, listed []stage.Signal) acts {
	a := acts{}
	for _, s := range listed {
		a.set |= signalBit(s)
	}
	only := stage.SessionRoutesOnly(pr.pr)
	a.sessionRoutesOnly = only
	sigs, declared := stage.Declared(pr.pr)
	if !declared {
		return a
	}
	a = acts{declared: true, sessionRoutesOnly: only}
	var unlisted []stage.Signal
	for _, s := range sigs {
		switch {
		case slices.Contains(listed, s):
			a.set |= signalBit(s)
		case !slices.Contains(unlisted, s):
			unlisted = append(unlisted, s)
			a.unlisted |= signalBit(s) // 0 for a name that is no signal: logged only
		}
	}
	if len(unlisted) > 0 {
		in.log.Warn("pipeline stage acts on signals its pipeline does not list for it, with this config; they do not reach it: list them under signals: if its config is meant to apply to them",
			"unlisted", unlisted, "listed", listed)
	}
	return a
}

// noteActs makes pr's declaration the instance's; called whenever pr becomes its current process.
func (in *instance) noteActs(pr *proc) {
	in.acts.Store(pr.acts.word())
}

// actsOn is the instance's current declaration.
func (in *instance) actsOn() acts { return actsOfWord(in.acts.Load()) }

// calledFor is the set of signals the lanes send st now: those its chain lists that its stage,
// at its last Init, said it acts on.
func (st *step) calledFor() signalSet {
	return st.signals & st.inst.actsOn().set
}

// calls reports whether a stage with the declaration a, listing the signals listed, is called
// for ev.
func (a acts) calls(listed signalSet, ev *stage.Event) bool {
	if !(listed & a.set).has(ev.Signal) {
		return false
	}
	return !a.sessionRoutesOnly || ev.Signal != stage.SignalRoute || ev.Session != ""
}

// names lists the signals of s in the order of stage.Signals.
func (s signalSet) names() []string {
	out := []string{}
	for _, sig := range stage.Signals {
		if s.has(sig) {
			out = append(out, string(sig))
		}
	}
	return out
}
