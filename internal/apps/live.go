package apps

import (
	"fmt"
	"maps"
	"reflect"

	"github.com/platoim/plato/internal/config"
)

// The live layer: apps kept in NATS KV (internal/appstore) and changed without a restart. A live
// app replaces the file's app of the same ID whole (no field-by-field merge: an app's keys and
// secrets come from one place), and deleting it brings the file's back, if there is one.

// reusable is the current set when its apps were compiled with opts, so that a live change
// compiles only the app that changed. Called with t.mu held.
func (t *Table) reusable(opts Options) *set {
	if s := t.cur.Load(); s != nil && t.opts == opts {
		return s
	}
	return &set{}
}

// PutLive adds or changes live app id and swaps in the new set. An app that cannot be used
// changes nothing, and the error names it.
func (t *Table) PutLive(id string, a config.App) error {
	if err := Check(id, a, Options{}); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	live := maps.Clone(t.live)
	if live == nil {
		live = map[string]config.App{}
	}
	live[id] = a
	// The app set is compiled afresh even if its value did not change: setting it again is how a
	// PEM file its public_keys name is read again.
	if err := t.swapLive(live, id); err != nil {
		return err
	}
	return nil
}

// DeleteLive removes live app id, and reports whether there was one. The file's app of that ID,
// if any, is served again.
func (t *Table) DeleteLive(id string) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.live[id]; !ok {
		return false, nil
	}
	live := maps.Clone(t.live)
	delete(live, id)
	if err := t.swapLive(live, ""); err != nil {
		return false, err
	}
	return true, nil
}

// SetLive makes live the whole live layer, as a fresh read of the KV bucket found it. keep are
// the IDs whose value there is unusable: each keeps its current live settings, if it has any. An
// app of live that cannot be used is treated the same way; its error is in the map returned
// (nil when all were used). changed says whether the apps served changed.
func (t *Table) SetLive(live map[string]config.App, keep []string) (changed bool, bad map[string]error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	next := map[string]config.App{}
	for _, id := range keep {
		if old, ok := t.live[id]; ok {
			next[id] = old
		}
	}
	for id, a := range live {
		if err := Check(id, a, t.opts); err != nil {
			if bad == nil {
				bad = map[string]error{}
			}
			bad[id] = err
			if old, ok := t.live[id]; ok {
				next[id] = old
			}
			continue
		}
		next[id] = a
	}
	if t.live != nil && maps.EqualFunc(next, t.live, sameApp) {
		return false, bad
	}
	if err := t.swapLive(next, ""); err != nil {
		// Each app compiled alone above; what fails now is the pair of layers, so the set stays.
		if bad == nil {
			bad = map[string]error{}
		}
		bad[""] = err
		return false, bad
	}
	return true, bad
}

// Check validates app id as the configuration file's apps are validated, and compiles it as a
// Table would: what it accepts, every role accepts.
func Check(id string, a config.App, opts Options) error {
	if err := config.ValidateApp(id, a); err != nil {
		return err
	}
	_, err := compile(id, a, opts)
	return err
}

// swapLive builds and swaps in the set of the file's apps with live over them, compiling again
// the apps that changed and fresh, if not empty. Called with t.mu held.
func (t *Table) swapLive(live map[string]config.App, fresh string) error {
	prev := t.reusable(t.opts)
	if _, ok := prev.cfgs[fresh]; ok {
		cfgs := maps.Clone(prev.cfgs)
		delete(cfgs, fresh)
		prev = &set{byID: prev.byID, cfgs: cfgs}
	}
	s, err := build(t.file, live, t.opts, prev)
	if err != nil {
		return fmt.Errorf("the apps with the live ones over the file's: %w", err)
	}
	t.live = live
	t.cur.Store(s)
	return nil
}

// IsLive reports whether the app served under id came from KV (rather than the file).
func (t *Table) IsLive(id string) bool {
	s := t.cur.Load()
	return s != nil && s.live[id]
}

func sameApp(a, b config.App) bool { return reflect.DeepEqual(a, b) }
