package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"

	"github.com/platoim/plato/internal/appstore"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/registry"
)

const appsUsage = `Usage:
  plato apps list                   the apps served: the configuration file's and the live ones (NATS KV)
  plato apps show APP [--reveal]    an app's settings, secrets masked unless --reveal
  plato apps set APP [-f FILE]      store an app's settings (YAML or JSON, the body of apps.APP in a
                                    config file; -f - or no -f: standard input) in NATS KV; every
                                    role serves it within a second, without a restart
  plato apps delete APP             remove a live app: its devices are refused at their next login

Live apps are kept in the NATS key-value bucket registry.apps_bucket (default plato_apps), at the
NATS of the configuration (--nats URL, nats.url, or the embedded server of plato up). A live app
replaces the file's app of the same ID. See docs/operations.md, "Apps".
`

type appsFlags struct {
	cf      commonFlags
	timeout time.Duration
}

// runApps dispatches `plato apps <sub>`.
func runApps(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, appsUsage)
		if len(args) == 0 {
			return errors.New("no apps subcommand given")
		}
		return flag.ErrHelp
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("plato apps "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, appsUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	var af appsFlags
	af.cf.register(fs, "")
	fs.DurationVar(&af.timeout, "timeout", 30*time.Second, "give up after this long")
	var (
		reveal bool
		file   string
	)
	switch sub {
	case "show":
		fs.BoolVar(&reveal, "reveal", false, "print keys and secrets instead of masking them")
	case "set":
		fs.StringVar(&file, "f", "-", "the app's settings file, YAML or JSON (- is standard input)")
	case "list", "delete":
	default:
		fmt.Fprint(stderr, appsUsage)
		return fmt.Errorf("unknown apps subcommand %q", sub)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	var id string
	if sub == "list" {
		if len(pos) > 0 {
			return fmt.Errorf("unexpected arguments %q", pos)
		}
	} else {
		if len(pos) != 1 {
			return fmt.Errorf("plato apps %s takes one APP, got %q", sub, pos)
		}
		id = pos[0]
		if !config.ValidAppID(id) {
			return fmt.Errorf("%q is not a valid app ID: up to 64 lower-case letters, digits, '_' and '-', starting with a letter or digit", id)
		}
	}
	var text []byte
	if sub == "set" {
		// Read the settings first: a bad file is refused without touching NATS.
		if text, err = readAppText(file); err != nil {
			return err
		}
		if _, err := appstore.Parse(id, text); err != nil {
			return fmt.Errorf("app %s refused (nothing stored): %w", id, err)
		}
	}
	// plato apps signs nothing: an operator's machine with only the NATS URL runs it without the
	// fleet's token secret.
	af.cf.set = append(af.cf.set, "auth.token_secret=plato-apps-signs-nothing-with-this")
	cfg, err := af.cf.load("")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, af.timeout)
	defer cancel()
	store, closeStore, err := openAppStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	_, inFile := cfg.Apps[id]
	switch sub {
	case "list":
		entries, err := store.List(ctx)
		if err != nil {
			return err
		}
		printApps(stdout, cfg.Apps, entries)
	case "show":
		return showApp(ctx, stdout, store, cfg, id, reveal)
	case "set":
		rev, err := store.Put(ctx, id, text)
		if err != nil {
			return fmt.Errorf("app %s: %w", id, err)
		}
		fmt.Fprintf(stdout, "app %s set in bucket %s (revision %d): every role serves it within a second\n", id, cfg.Registry.AppsBucket, rev)
		if inFile {
			fmt.Fprintf(stdout, "it replaces the configuration file's app %s while it is in NATS KV\n", id)
		}
	case "delete":
		err := store.Delete(ctx, id)
		if errors.Is(err, appstore.ErrNotFound) && inFile {
			return fmt.Errorf("app %s is declared in the configuration file, not in NATS KV: remove it from the file (the roles reload it)", id)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "app %s deleted from bucket %s: new logins and business calls of the app are refused within a second; devices logged in stay until they disconnect\n", id, cfg.Registry.AppsBucket)
		if inFile {
			fmt.Fprintf(stdout, "the configuration file's app %s is served again\n", id)
		}
	}
	return nil
}

// openAppStore connects to the NATS of cfg and opens the apps bucket.
func openAppStore(ctx context.Context, cfg config.Config) (*appstore.Store, func(), error) {
	if cfg.Registry.AppsBucket == "" {
		return nil, nil, errors.New("registry.apps_bucket is empty: live apps are turned off in this configuration")
	}
	url := cfg.NATSURL()
	nc, js, err := registry.Connect(ctx, url, "plato-apps", slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to NATS at %s (where live apps are kept; --nats URL, nats.url, or start plato up): %w", url, err)
	}
	store, err := appstore.Open(ctx, js, appstore.Config{Bucket: cfg.Registry.AppsBucket, Replicas: cfg.Registry.Replicas})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return store, nc.Close, nil
}

// liveApp reads app id from NATS KV, if NATS answers within a moment and the app is there and
// usable.
func liveApp(ctx context.Context, cfg config.Config, id string) (config.App, bool) {
	if cfg.Registry.AppsBucket == "" || !config.ValidAppID(id) {
		return config.App{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	nc, js, err := registry.Connect(ctx, cfg.NATSURL(), "plato-token", slog.New(slog.DiscardHandler))
	if err != nil {
		return config.App{}, false
	}
	defer nc.Close()
	kv, err := js.KeyValue(ctx, cfg.Registry.AppsBucket)
	if err != nil {
		return config.App{}, false
	}
	e, err := kv.Get(ctx, id)
	if err != nil {
		return config.App{}, false
	}
	a, err := appstore.Parse(id, e.Value())
	return a, err == nil
}

// readAppText reads an app's settings from path, or standard input for "-".
func readAppText(path string) ([]byte, error) {
	var r io.Reader = os.Stdin
	name := "standard input"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("reading the app's settings: %w", err)
		}
		defer f.Close()
		r, name = f, path
	}
	text, err := io.ReadAll(io.LimitReader(r, config.MaxAppText+1))
	if err != nil {
		return nil, fmt.Errorf("reading the app's settings from %s: %w", name, err)
	}
	if len(text) > config.MaxAppText {
		return nil, fmt.Errorf("%s: more than %d bytes of settings", name, config.MaxAppText)
	}
	if len(strings.TrimSpace(string(text))) == 0 {
		return nil, fmt.Errorf("%s is empty: give the app's settings (keys, auth, ...) as YAML or JSON", name)
	}
	return text, nil
}

// printApps lists the file's apps and the bucket's, with where each comes from.
func printApps(w io.Writer, file map[string]config.App, live []appstore.Entry) {
	type row struct{ source, auth, business, rev string }
	rows := map[string]row{}
	for id, a := range file {
		rows[id] = row{source: "file", auth: authOf(a), business: businessOf(a), rev: "-"}
	}
	for _, e := range live {
		r := row{source: "kv", rev: fmt.Sprint(e.Revision)}
		if _, ok := file[e.ID]; ok {
			r.source = "kv (over file)"
		}
		a, err := appstore.Parse(e.ID, e.Text)
		if err != nil {
			r.source += " REFUSED: " + strings.ReplaceAll(err.Error(), "\n", "; ")
			if f, ok := file[e.ID]; ok {
				// The roles keep the app's last good settings, which this command cannot see.
				a = f
			}
		}
		r.auth, r.business = authOf(a), businessOf(a)
		rows[e.ID] = r
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "no apps: declare them under apps in the configuration file, or plato apps set APP -f app.yaml")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tAUTH\tBUSINESS\tREVISION\tSOURCE")
	for _, id := range slices.Sorted(maps.Keys(rows)) {
		r := rows[id]
		business := r.business
		if business == "" {
			business = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", id, r.auth, business, r.rev, r.source)
	}
	_ = tw.Flush()
}

// businessOf is where the app's business server is: its endpoints (Kitex addresses or webhook
// URLs), comma-separated.
func businessOf(a config.App) string { return strings.Join(a.Endpoints(), ",") }

func authOf(a config.App) string {
	switch {
	case a.Auth.Callback:
		return "callback"
	case a.Auth.JWT.Configured():
		return "jwt"
	}
	return "-"
}

// showApp prints an app's settings and where they come from.
func showApp(ctx context.Context, w io.Writer, store *appstore.Store, cfg config.Config, id string, reveal bool) error {
	fileApp, inFile := cfg.Apps[id]
	e, err := store.Get(ctx, id)
	switch {
	case errors.Is(err, appstore.ErrNotFound):
		if !inFile {
			return fmt.Errorf("app %s is neither in the configuration file nor in NATS KV (bucket %s)", id, cfg.Registry.AppsBucket)
		}
		fmt.Fprintf(w, "# app %s: from the configuration file\n", id)
		m, err := appMap(fileApp)
		if err != nil {
			return err
		}
		return printAppMap(w, m, reveal)
	case err != nil:
		return err
	}
	fmt.Fprintf(w, "# app %s: from NATS KV (bucket %s, revision %d, set %s)\n", id, cfg.Registry.AppsBucket, e.Revision, e.Updated.UTC().Format(time.RFC3339))
	if inFile {
		fmt.Fprintf(w, "# it replaces the configuration file's app %s\n", id)
	}
	if _, err := appstore.Parse(id, e.Text); err != nil {
		fmt.Fprintf(w, "# REFUSED by the roles, which keep its last good settings: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if reveal {
		_, err := w.Write(e.Text)
		return err
	}
	var m map[string]any
	if err := yamlUnmarshal(e.Text, &m); err != nil {
		fmt.Fprintln(w, "# the value is not YAML; --reveal prints it")
		return nil
	}
	return printAppMap(w, m, false)
}

func yamlUnmarshal(text []byte, m *map[string]any) error {
	v, err := yaml.Parser().Unmarshal(text)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// appMap is a config.App as the nested map its YAML would decode to.
func appMap(a config.App) (map[string]any, error) {
	k := koanf.New(".")
	if err := k.Load(structs.Provider(a, "koanf"), nil); err != nil {
		return nil, fmt.Errorf("rendering the app: %w", err)
	}
	return k.Raw(), nil
}

func printAppMap(w io.Writer, m map[string]any, reveal bool) error {
	m = cleanApp(m, nil, reveal)
	if len(m) == 0 {
		fmt.Fprintln(w, "{}")
		return nil
	}
	out, err := yaml.Parser().Marshal(m)
	if err != nil {
		return fmt.Errorf("rendering the app: %w", err)
	}
	_, err = w.Write(out)
	return err
}

// cleanApp drops empty settings, writes durations as text and, unless reveal, masks secrets: the
// values of keys and secrets maps, and any setting whose name says it is one (secret, password,
// token), whatever fields an app gains.
func cleanApp(m map[string]any, path []string, reveal bool) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		p := append(slices.Clone(path), k)
		if x, ok := v.(map[string]string); ok {
			v = anyMap(x)
		}
		switch x := v.(type) {
		case map[string]any:
			if c := cleanApp(x, p, reveal); len(c) > 0 {
				out[k] = c
			}
			continue
		case time.Duration:
			if x != 0 {
				out[k] = x.String()
			}
			continue
		case nil:
			continue
		}
		if isZero(v) {
			continue
		}
		if !reveal && secretPath(p) {
			out[k] = "<hidden; --reveal shows it>"
			continue
		}
		out[k] = v
	}
	return out
}

func anyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func isZero(v any) bool {
	switch x := v.(type) {
	case string:
		return x == ""
	case bool:
		return !x
	case int:
		return x == 0
	case int64:
		return x == 0
	case float64:
		return x == 0
	case []string:
		return len(x) == 0
	case []any:
		return len(x) == 0
	case map[string]string:
		return len(x) == 0
	}
	return false
}

func secretPath(p []string) bool {
	if len(p) >= 2 {
		switch p[len(p)-2] {
		case "keys", "secrets":
			return true
		}
	}
	name := strings.ToLower(p[len(p)-1])
	return strings.Contains(name, "secret") || strings.Contains(name, "password") || strings.Contains(name, "token") ||
		name == "key" || strings.HasSuffix(name, "_key")
}
