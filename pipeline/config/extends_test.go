package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// baseYAML is a default.yaml of four stages, like the shipped one.
const baseYAML = `version: 1
stages:
  - name: auth
    plugin: auth
    signals: [login, uplink]
    timeout: 1s
    config: {token_secret_env: SECRET, acl: {uplink: allow, heartbeat: deny}}
  - name: sessionbind
    plugin: sessionbind
    signals: [login]
    on_failure: fail_open
  - name: qosroute
    plugin: qosroute
    signals: [route]
  - name: retransmit
    plugin: retransmit
    signals: [downlink, downlink_ack, disconnect]
    config: {max_attempts: 5, initial_backoff: 2s}
`

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func names(f *File) []string {
	out := make([]string, len(f.Stages))
	for i, s := range f.Stages {
		out[i] = s.Name
	}
	return out
}

func stageByName(t *testing.T, f *File, name string) Stage {
	t.Helper()
	for _, s := range f.Stages {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no stage %q in %v", name, names(f))
	return Stage{}
}

func TestExtends(t *testing.T) {
	type check func(t *testing.T, f *File)
	cases := []struct {
		name  string
		app   string            // app.yaml
		extra map[string]string // more files in the directory
		order []string          // the merged chain's stage names
		check check
		errs  []string // substrings of the report, each a line (file:line: path: msg)
	}{
		{
			name:  "extends alone inherits the chain",
			app:   "version: 1\nextends: default\n",
			order: []string{"auth", "sessionbind", "qosroute", "retransmit"},
			check: func(t *testing.T, f *File) {
				if f.Extends != "default" || f.Stages[0].Origin != OriginInherited || f.Stages[0].Timeout != time.Second {
					t.Fatalf("%+v", f.Stages[0])
				}
			},
		},
		{
			name: "a new stage without an anchor goes last",
			app: `version: 1
extends: default
stages:
  - name: echo
    plugin: echo
    signals: [uplink]
`,
			order: []string{"auth", "sessionbind", "qosroute", "retransmit", "echo"},
			check: func(t *testing.T, f *File) {
				if s := stageByName(t, f, "echo"); s.Origin != OriginAdded || s.Timeout != DefaultTimeout || string(s.Config) != "{}" {
					t.Fatalf("%+v", s)
				}
			},
		},
		{
			name: "after and before place new stages",
			app: `version: 1
extends: default
stages:
  - name: first
    before: auth
    plugin: echo
    signals: [login]
  - name: echo
    after: auth
    plugin: echo
    signals: [uplink]
  - name: last-but-one
    before: retransmit
    plugin: echo
    signals: [downlink]
`,
			order: []string{"first", "auth", "echo", "sessionbind", "qosroute", "last-but-one", "retransmit"},
		},
		{
			name:  "remove drops inherited stages",
			app:   "version: 1\nextends: default\nremove: [qosroute, sessionbind]\n",
			order: []string{"auth", "retransmit"},
		},
		{
			name: "a same-named stage overrides the keys it writes and merges config",
			app: `version: 1
extends: default
stages:
  - name: retransmit
    timeout: 3s
    config: {max_attempts: 3}
  - name: auth
    config: {acl: {uplink: deny, heartbeat: null}}
`,
			order: []string{"auth", "sessionbind", "qosroute", "retransmit"},
			check: func(t *testing.T, f *File) {
				r := stageByName(t, f, "retransmit")
				if r.Origin != OriginOverridden || r.Timeout != 3*time.Second || r.OnFailure != FailClosed ||
					!reflect.DeepEqual(r.Signals, []stage.Signal{"downlink", "downlink_ack", "disconnect"}) {
					t.Fatalf("retransmit %+v", r)
				}
				assertJSON(t, r.Config, `{"initial_backoff":"2s","max_attempts":3}`)
				assertJSON(t, stageByName(t, f, "auth").Config, `{"acl":{"uplink":"deny"},"token_secret_env":"SECRET"}`)
			},
		},
		{
			name: "a same-named stage with only an anchor moves",
			app: `version: 1
extends: default
stages:
  - name: retransmit
    after: auth
  - name: auth
    after: qosroute
`,
			order: []string{"retransmit", "sessionbind", "qosroute", "auth"}, // each entry applies to the chain left by those above
			check: func(t *testing.T, f *File) {
				if s := stageByName(t, f, "auth"); s.Origin != OriginMoved || s.Timeout != time.Second {
					t.Fatalf("%+v", s)
				}
			},
		},
		{
			name: "signals and plugin replace; a new plugin drops the inherited pin",
			app: `version: 1
extends: default
stages:
  - name: sessionbind
    plugin: echo
    signals: [login, uplink]
`,
			order: []string{"auth", "sessionbind", "qosroute", "retransmit"},
			check: func(t *testing.T, f *File) {
				s := stageByName(t, f, "sessionbind")
				if filepath.Base(s.Path) != "echo" || len(s.Signals) != 2 || s.OnFailure != FailOpen {
					t.Fatalf("%+v", s)
				}
			},
		},
		{
			name: "an anchor on a stage added above works",
			app: `version: 1
extends: default
stages:
  - name: a
    plugin: echo
    signals: [uplink]
  - name: b
    before: a
    plugin: echo
    signals: [uplink]
`,
			order: []string{"auth", "sessionbind", "qosroute", "retransmit", "b", "a"},
		},
		{
			name: "the extended file's stages must be complete, the new ones too",
			app: `version: 1
extends: default
stages:
  - name: echo
    after: auth
`,
			errs: []string{"app.yaml:4: stages[0].plugin (stage echo): is required", "app.yaml:4: stages[0].signals (stage echo): is required"},
		},
		{
			name: "unknown anchor",
			app: `version: 1
extends: default
stages:
  - name: echo
    plugin: echo
    signals: [uplink]
    after: ratelimit
`,
			errs: []string{`app.yaml:7: stages[0].after (stage echo): "ratelimit" is not in the chain at this point (auth, sessionbind, qosroute, retransmit)`},
		},
		{
			name: "an anchor on a stage added below",
			app: `version: 1
extends: default
stages:
  - name: b
    before: a
    plugin: echo
    signals: [uplink]
  - name: a
    plugin: echo
    signals: [uplink]
`,
			errs: []string{`app.yaml:5: stages[0].before (stage b): "a" is not in the chain at this point`, `list "a" before this stage`},
		},
		{
			name: "an anchor on a removed stage",
			app: `version: 1
extends: default
remove: [qosroute]
stages:
  - name: echo
    after: qosroute
    plugin: echo
    signals: [route]
`,
			errs: []string{`app.yaml:6: stages[0].after (stage echo): "qosroute" is not in the chain`},
		},
		{
			name: "after and before together, and next to itself",
			app: `version: 1
extends: default
stages:
  - name: echo
    after: auth
    before: retransmit
    plugin: echo
    signals: [uplink]
  - name: auth
    after: auth
`,
			errs: []string{"app.yaml:6: stages[0].before (stage echo): give after or before, not both", "app.yaml:10: stages[1].after (stage auth): a stage cannot be placed next to itself"},
		},
		{
			name: "remove of an unknown stage, twice, and of a stage also listed",
			app: `version: 1
extends: default
remove: [ratelimit, qosroute, qosroute, auth]
stages:
  - name: auth
    timeout: 2s
`,
			errs: []string{
				`app.yaml:3: remove[0]: "ratelimit" is not a stage of default (its stages: auth, sessionbind, qosroute, retransmit)`,
				`app.yaml:3: remove[2]: "qosroute" is already listed at remove[1]`,
				`app.yaml:5: stages[0].name (stage auth): "auth" is removed by remove[3]; keep one of the two`,
			},
		},
		{
			name: "an override is checked like any stage",
			app: `version: 1
extends: default
stages:
  - name: auth
    timeout: 1m
    signals: [login, timer]
    sha256: "0000000000000000000000000000000000000000000000000000000000000000"
`,
			errs: []string{
				"app.yaml:5: stages[0].timeout (stage auth): must be more than 0 and at most 30s, got 1m0s",
				`app.yaml:6: stages[0].signals[1] (stage auth): "timer" cannot be listed`,
				"app.yaml:7: stages[0].sha256 (stage auth): ",
				"but sha256 is 0000",
			},
		},
		{
			name: "a stage named twice",
			app: `version: 1
extends: default
stages:
  - name: auth
    timeout: 2s
  - name: auth
    timeout: 3s
`,
			errs: []string{`app.yaml:6: stages[1].name (stage auth): "auth" is already the name of stages[0]`},
		},
		{
			name:  "remove and anchors need extends",
			app:   "version: 1\nremove: [auth]\nstages:\n  - name: echo\n    plugin: echo\n    signals: [uplink]\n    after: auth\n",
			errs:  []string{"app.yaml:2: remove: is only allowed with extends", "app.yaml:7: stages[0].after (stage echo): is only allowed with extends"},
			extra: map[string]string{},
		},
		{
			name:  "extends a file that is not there",
			app:   "version: 1\nextends: base\n",
			errs:  []string{"app.yaml:2: extends: there is no base.yaml in "},
			extra: map[string]string{},
		},
		{
			name: "extends itself",
			app:  "version: 1\nextends: app\n",
			errs: []string{"app.yaml:2: extends: a file cannot extend itself"},
		},
		{
			name:  "extends a file that extends",
			app:   "version: 1\nextends: middle\n",
			extra: map[string]string{"middle.yaml": "version: 1\nextends: default\n"},
			errs:  []string{"app.yaml:2: extends: ", "middle.yaml itself extends default; only a file that extends nothing can be extended"},
		},
		{
			name:  "a cycle",
			app:   "version: 1\nextends: other\n",
			extra: map[string]string{"other.yaml": "version: 1\nextends: app\n"},
			errs:  []string{"other.yaml extends app in turn: a cycle"},
		},
		{
			name:  "extends a file with problems: both are named",
			app:   "version: 1\nextends: broken\n",
			extra: map[string]string{"broken.yaml": "version: 1\nstages:\n  - name: x\n    plugin: nope\n    signals: [login]\n"},
			errs:  []string{"app.yaml:2: extends: broken cannot be extended", "broken.yaml:4: stages[0].plugin (stage x): "},
		},
		{
			name: "extends names no app ID",
			app:  "version: 1\nextends: ../default\n",
			errs: []string{`app.yaml:2: extends: "../default" is not an app ID`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{"default.yaml": baseYAML, "app.yaml": tc.app}
			for k, v := range tc.extra {
				files[k] = v
			}
			writeFiles(t, dir, files)
			f, err := LoadFile(filepath.Join(dir, "app.yaml"), pluginDir(t))
			if len(tc.errs) > 0 {
				if err == nil {
					t.Fatalf("loaded %v, want errors %q", names(f), tc.errs)
				}
				rep := Report(err)
				for _, want := range tc.errs {
					if !strings.Contains(rep, want) {
						t.Errorf("report lacks %q:\n%s", want, rep)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("load: %s", Report(err))
			}
			if got := names(f); !reflect.DeepEqual(got, tc.order) {
				t.Fatalf("chain %v, want %v", got, tc.order)
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

func assertJSON(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("config %s, want %s", got, want)
	}
}

func TestLoadDirDerivesExtendingAppsAndReportsABrokenBaseOnce(t *testing.T) {
	dir := t.TempDir()
	plugins := pluginDir(t)
	writeFiles(t, dir, map[string]string{
		"default.yaml": baseYAML,
		"a.yaml":       "version: 1\nextends: default\nremove: [qosroute]\n",
		"b.yaml":       "version: 1\nextends: default\n",
	})
	set, err := LoadDir(dir, plugins)
	if err != nil {
		t.Fatal(Report(err))
	}
	if got := names(set.Apps["a"]); !reflect.DeepEqual(got, []string{"auth", "sessionbind", "retransmit"}) {
		t.Fatalf("a: %v", got)
	}
	if got := Dependents(dir, DefaultAppID); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("dependents %v", got)
	}
	writeFiles(t, dir, map[string]string{"default.yaml": "version: 1\nstages:\n  - name: auth\n    plugin: missing\n    signals: [login]\n"})
	_, err = LoadDir(dir, plugins)
	rep := Report(err)
	if strings.Count(rep, "default.yaml:4: stages[0].plugin (stage auth)") != 1 || !strings.Contains(rep, "a.yaml:2: extends") || !strings.Contains(rep, "b.yaml:2: extends") {
		t.Fatalf("report:\n%s", rep)
	}
}

// The example of docs/pipeline.md, "Extending the default pipeline", on the shipped default.yaml
// gives the chain and the merged retransmit stage the doc says.
func TestPipelineDocExtendsExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "pipeline.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "## Extending the default pipeline")
	if !ok {
		t.Fatal("docs/pipeline.md has no section Extending the default pipeline")
	}
	_, block, _ := strings.Cut(section, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	shipped, err := os.ReadFile(filepath.Join("..", "..", DefaultDir, "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir, plugins := t.TempDir(), pluginDir(t)
	if err := os.WriteFile(filepath.Join(plugins, "ratelimit"), []byte(dummyPlugin), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"default.yaml": string(shipped), "shop.yaml": block})
	f, err := LoadFile(filepath.Join(dir, "shop.yaml"), plugins)
	if err != nil {
		t.Fatal(Report(err))
	}
	if got, want := names(f), []string{"sessionbind", "auth", "ratelimit", "retransmit"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("chain %v, want %v as the doc says", got, want)
	}
	r := stageByName(t, f, "retransmit")
	if r.Timeout != 2*time.Second || r.OnFailure != FailOpen || len(r.Signals) != 1 || r.Signals[0] != stage.SignalRetransmit {
		t.Fatalf("retransmit %+v", r)
	}
	assertJSON(t, r.Config, `{"initial_backoff":"2s","max_backoff":"30s","max_attempts":3}`)
}
