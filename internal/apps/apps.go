// Package apps is the set of businesses a Plato process serves, compiled from the apps section of
// the configuration with the apps kept in NATS KV over it (live.go; internal/appstore follows the
// bucket): each app's device-credential verifier, its business keys and address, its limits. A
// reload (Watch) or a live change compiles a whole new set and swaps it in, so readers never see
// half of one; an app ID that is not in the set gets nothing anywhere.
package apps

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/internal/bizlink"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/credential"
)

// App is one declared app.
type App struct {
	ID string
	// Endpoints are the business server's Kitex addresses or webhook URLs; empty when the app
	// has none.
	Endpoints []string
	// WebhookSecret signs the webhooks when Endpoints are URLs.
	WebhookSecret string
	// BusinessKey is the endpoints and the secret in one string, made once: a state server
	// compares it on every delivery to notice a reload that changed them.
	BusinessKey string
	// Limits has the per-device defaults filled in.
	Limits config.AppLimits
	// Verifier checks the app's device credentials: its JWT keys, or a callback to its business.
	Verifier credential.Verifier
	keys     [][]byte
	// origins are apps.<id>.allowed_origins, lower-cased; nil allows any.
	origins []string
}

// AllowsOrigin reports whether a WebSocket handshake's Origin may log in to the app. An empty
// origin (the client is not a browser, which any program can claim anyway) is always allowed.
func (a *App) AllowsOrigin(origin string) bool {
	if origin == "" || len(a.origins) == 0 {
		return true
	}
	for _, o := range a.origins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// CheckKey reports whether key is one of the app's business keys, in time that does not depend on
// how much of it matches.
func (a *App) CheckKey(key string) bool {
	ok := 0
	for _, k := range a.keys {
		ok |= subtle.ConstantTimeCompare(k, []byte(key))
	}
	return ok == 1
}

// Table is the current set of apps: the file's apps (Replace) overlaid with the live ones from
// NATS KV (PutLive, SetLive; live.go). It is safe for concurrent use; the zero value is empty.
type Table struct {
	cur atomic.Pointer[set]
	// reloads counts Watch's reloads that took effect, reloadErrors those refused.
	reloads, reloadErrors atomic.Int64

	// mu serialises the rebuilds of cur from the two layers.
	mu   sync.Mutex
	file map[string]config.App
	live map[string]config.App
	opts Options
}

// Reloads returns how many reloads of the configuration took effect and how many were refused
// (it did not load, or its apps could not be used).
func (t *Table) Reloads() (ok, failed int64) { return t.reloads.Load(), t.reloadErrors.Load() }

type set struct {
	byID map[string]*App
	ids  []string        // sorted
	live map[string]bool // the apps that came from KV
	cfgs map[string]config.App
}

// Options are what compiling an app needs beyond its config.
type Options struct {
	// CallbackTimeout bounds each Business.Authenticate call (state.business.timeout).
	CallbackTimeout time.Duration
}

// New compiles cfg; any app that cannot be used fails it, naming the app and the key.
func New(cfg map[string]config.App, opts Options) (*Table, error) {
	t := &Table{}
	if err := t.Replace(cfg, opts); err != nil {
		return nil, err
	}
	return t, nil
}

// Replace compiles cfg, the file's apps, and swaps in the set they make with the live apps over
// them, whole; on error the current set stays.
func (t *Table) Replace(cfg map[string]config.App, opts Options) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	// Every app is compiled again: a reload is how an edited PEM file named by public_keys is
	// read again.
	s, err := build(cfg, t.live, opts, &set{})
	if err != nil {
		return err
	}
	t.file, t.opts = cfg, opts
	t.cur.Store(s)
	return nil
}

// build compiles the file's apps overlaid with the live ones: a live app replaces the file's app
// of the same ID, which is then not compiled at all. An app whose settings are those of prev's is
// not compiled again: it keeps its verifier (and the callback's RPC client).
func build(file, live map[string]config.App, opts Options, prev *set) (*set, error) {
	s := &set{byID: map[string]*App{}, live: map[string]bool{}, cfgs: map[string]config.App{}}
	var errs []error
	all := maps.Clone(file)
	if all == nil {
		all = map[string]config.App{}
	}
	maps.Copy(all, live)
	for _, id := range slices.Sorted(maps.Keys(all)) {
		var a *App
		if old, ok := prev.cfgs[id]; ok && reflect.DeepEqual(old, all[id]) {
			a = prev.byID[id]
		} else {
			var err error
			if a, err = compile(id, all[id], opts); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		s.byID[id], s.cfgs[id] = a, all[id]
		s.ids = append(s.ids, id)
		if _, ok := live[id]; ok {
			s.live[id] = true
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

func compile(id string, c config.App, opts Options) (*App, error) {
	a := &App{ID: id, Endpoints: c.Endpoints(), WebhookSecret: c.WebhookSecret, Limits: c.Limits.WithDefaults()}
	a.BusinessKey = strings.Join(a.Endpoints, ",") + "\x00" + a.WebhookSecret
	for _, o := range c.AllowedOrigins {
		a.origins = append(a.origins, strings.ToLower(o))
	}
	for _, name := range slices.Sorted(maps.Keys(c.Keys)) {
		a.keys = append(a.keys, []byte(c.Keys[name]))
	}
	var err error
	switch {
	case c.Auth.Callback:
		timeout := opts.CallbackTimeout
		if timeout <= 0 {
			timeout = config.DefaultBusinessTimeout
		}
		var link bizlink.Link
		link, err = bizlink.New(bizlink.Options{App: id, Endpoints: a.Endpoints, Secret: c.WebhookSecret, Timeout: timeout})
		if err == nil {
			a.Verifier = credential.NewCallback(id, link)
		}
	case c.Auth.JWT.Configured():
		a.Verifier, err = credential.NewJWT(id, c.Auth.JWT)
	default:
		err = fmt.Errorf("apps.%s.auth: no way to authenticate devices (jwt keys or callback)", id)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Get returns app id, or nil when it is not declared.
func (t *Table) Get(id string) *App {
	s := t.cur.Load()
	if s == nil {
		return nil
	}
	return s.byID[id]
}

// IDs lists the declared apps, sorted. The slice is shared: do not modify it.
func (t *Table) IDs() []string {
	s := t.cur.Load()
	if s == nil {
		return nil
	}
	return s.ids
}
