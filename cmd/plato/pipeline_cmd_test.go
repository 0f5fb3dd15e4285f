package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/platoim/plato/core/platform/platformtest"
	pipeconfig "github.com/platoim/plato/pipeline/config"
)

// pipelineDir writes a pipeline directory whose default.yaml runs the real auth and qosroute
// plugins, plus files, and returns it with the plugin directory.
func pipelineDir(t *testing.T, files map[string]string) (dir, plugins string) {
	t.Helper()
	auth := platformtest.BuildPlugin(t, "plugins/auth")
	qos := platformtest.BuildPlugin(t, "plugins/qosroute")
	plugins = t.TempDir()
	for _, bin := range []string{auth, qos} {
		if err := os.Symlink(bin, filepath.Join(plugins, filepath.Base(bin))); err != nil {
			t.Fatal(err)
		}
	}
	dir = t.TempDir()
	files["default.yaml"] = fmt.Sprintf(`version: 1
stages:
  - name: auth
    plugin: auth
    signals: [login, uplink]
    timeout: 5s
    config: {token_secret: %q, acl: {uplink: allow}}
  - name: qosroute
    plugin: qosroute
    signals: [route]
    config: {broadcast_min_members: 100}
`, platformtest.Secret)
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, plugins
}

// platoRun runs the plato binary and returns its output and whether it exited 0.
func platoRun(t *testing.T, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(platoBinary(t), args...)
	cmd.Dir = t.TempDir() // no configs/plato.yaml: the defaults
	out, err := cmd.CombinedOutput()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatal(err)
	}
	return string(out), err == nil
}

// shopYAML extends the default with one more auth stage that refuses a did at login.
const shopYAML = `version: 1
extends: default
stages:
  - name: blockdid
    after: auth
    plugin: auth
    signals: [login]
    config: {token_secret_env: SHOP_SECRET, deny_dids: [mallory]}
  - name: qosroute
    config: {broadcast_min_members: 7}
`

func TestPipelineValidateLoadStartsEachPlugin(t *testing.T) {
	dir, plugins := pipelineDir(t, map[string]string{
		"shop.yaml": shopYAML,
		// Both pass the static checks; the server refuses them.
		"badkey.yaml":    "version: 1\nextends: default\nstages:\n  - name: auth\n    config: {colour: blue}\n",
		"nohandler.yaml": "version: 1\nextends: default\nstages:\n  - name: qosroute\n    signals: [route, uplink]\n",
	})
	os.Setenv("SHOP_SECRET", platformtest.Secret) // the plugin inherits it, as from the state server
	t.Cleanup(func() { os.Unsetenv("SHOP_SECRET") })
	file := func(name string) string { return filepath.Join(dir, name) }

	for _, name := range []string{"shop.yaml", "badkey.yaml", "nohandler.yaml"} {
		if out, ok := platoRun(t, "pipeline", "validate", "--plugin-dir", plugins, file(name)); !ok || !strings.HasSuffix(out, "ok\n") {
			t.Fatalf("static validate of %s: %v\n%s", name, ok, out)
		}
	}

	out, ok := platoRun(t, "pipeline", "validate", "--load", "--plugin-dir", plugins, file("shop.yaml"))
	if !ok || !strings.Contains(out, "shop/blockdid: started, Init accepted its config") || !strings.Contains(out, "shop/auth: started") {
		t.Fatalf("validate --load of a good file: %v\n%s", ok, out)
	}
	// Which listed signals each acts on with its config (ActsOn), and a config acting on more
	// than the file lists.
	for _, w := range []string{
		"shop/auth: started, Init accepted its config; acts on login (declared at Init); uplink: past it without a call\n",
		"shop/blockdid: started, Init accepted its config; acts on login (declared at Init); also acts on uplink, downlink, heartbeat with this config, which the file does not list: ignored\n",
		// qosroute's defaults answer a push to dids as the host would (stage.RouteSelector).
		"shop/qosroute: started, Init accepted its config; acts on route (every signal listed: it declares nothing); route only for pushes that name a session, the others past it without a call\n",
	} {
		if !strings.Contains(out, w) {
			t.Fatalf("validate --load does not say %q:\n%s", w, out)
		}
	}

	out, ok = platoRun(t, "pipeline", "validate", "--load", "--plugin-dir", plugins, file("badkey.yaml"))
	if ok || !strings.Contains(out, `badkey/auth: refused:`) || !strings.Contains(out, `unknown field "colour"`) || strings.HasSuffix(out, "ok\n") {
		t.Fatalf("validate --load of a config key Init rejects: %v\n%s", ok, out)
	}

	out, ok = platoRun(t, "pipeline", "validate", "--load", "--plugin-dir", plugins, file("nohandler.yaml"))
	if ok || !strings.Contains(out, `nohandler/qosroute: refused:`) || !strings.Contains(out, "does not implement [uplink]") {
		t.Fatalf("validate --load of a signal without a handler: %v\n%s", ok, out)
	}

	// The whole directory: every file, and the bad ones fail it.
	out, ok = platoRun(t, "pipeline", "validate", "--load", "--plugin-dir", plugins, dir)
	if ok || !strings.Contains(out, "default/auth: started") || !strings.Contains(out, "badkey/auth: refused") {
		t.Fatalf("validate --load of the directory: %v\n%s", ok, out)
	}
}

func TestPipelineValidateChecksTheFileNameAsAnAppID(t *testing.T) {
	dir := t.TempDir()
	body := "version: 1\nstages: []\n"
	for _, name := range []string{"my app.yaml", "chat.json"} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, load := range [][]string{nil, {"--load"}} {
			args := append(append([]string{"pipeline", "validate"}, load...), path)
			if out, ok := platoRun(t, args...); ok || !strings.Contains(out, name) {
				t.Fatalf("%v accepted a file the server would not read as an app's:\n%s", args, out)
			}
		}
	}
}

func TestPipelineValidateNotesAFileThatDropsTheDefaultStages(t *testing.T) {
	dir, plugins := pipelineDir(t, map[string]string{
		"solo.yaml": "version: 1\nstages:\n  - name: qosroute\n    plugin: qosroute\n    signals: [route]\n",
	})
	out, ok := platoRun(t, "pipeline", "validate", "--plugin-dir", plugins, filepath.Join(dir, "solo.yaml"))
	if !ok || !strings.Contains(out, "note: solo.yaml replaces default.yaml, so app solo runs none of its stages auth; write `extends: default`") {
		t.Fatalf("%v\n%s", ok, out)
	}
}

func TestPipelineShowPrintsTheEffectiveChain(t *testing.T) {
	dir, plugins := pipelineDir(t, map[string]string{"shop.yaml": shopYAML})
	auth, err := pipeconfig.FileSHA256(filepath.Join(plugins, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	out, ok := platoRun(t, "pipeline", "show", "--dir", dir, "--plugin-dir", plugins, "shop")
	if !ok {
		t.Fatal(out)
	}
	want := []string{
		fmt.Sprintf("app shop: %s, extends default\n", filepath.Join(dir, "shop.yaml")),
		"3 stage(s), in the order every signal meets them:\n",
		"\n1. auth (inherited)\n   plugin      auth\n   binary      " + filepath.Join(plugins, "auth") + "\n   sha256      " + auth + " (computed; not pinned)\n   signals     login, uplink\n   timeout     5s\n   on_failure  fail_closed\n   batch       max_size 128\n",
		"\n2. blockdid (added)\n",
		`   config      {"deny_dids":["mallory"],"token_secret_env":"SHOP_SECRET"}` + "\n",
		"\n3. qosroute (overridden)\n",
		`   config      {"broadcast_min_members":7}` + "\n",
	}
	at := 0
	for _, w := range want {
		i := strings.Index(out[at:], w)
		if i < 0 {
			t.Fatalf("show output lacks, in order, %q:\n%s", w, out)
		}
		at += i + len(w)
	}

	out, ok = platoRun(t, "pipeline", "show", "--json", "--dir", dir, "--plugin-dir", plugins, "shop")
	var v shownChain
	if !ok || json.Unmarshal([]byte(out), &v) != nil {
		t.Fatalf("show --json: %v\n%s", ok, out)
	}
	if v.Extends != "default" || len(v.Stages) != 3 || v.Stages[1].Name != "blockdid" || v.Stages[1].SHA256 != auth || v.Stages[2].Origin != "overridden" {
		t.Fatalf("show --json: %+v", v)
	}

	// --load starts each stage and shows what it acts on; blockdid reads its secret from
	// SHOP_SECRET, unset here: it does not start, which the command says, exiting 1.
	out, ok = platoRun(t, "pipeline", "show", "--load", "--dir", dir, "--plugin-dir", plugins, "shop")
	if ok || !strings.Contains(out, "   signals     login, uplink\n   acts on     login (declared at Init); uplink: past it without a call\n") ||
		!strings.Contains(out, "   acts on     unknown: the stage did not start: ") || !strings.Contains(out, "SHOP_SECRET") {
		t.Fatalf("show --load without blockdid's secret: %v\n%s", ok, out)
	}
	os.Setenv("SHOP_SECRET", platformtest.Secret) // the plugin inherits it, as from the state server
	t.Cleanup(func() { os.Unsetenv("SHOP_SECRET") })
	out, ok = platoRun(t, "pipeline", "show", "--load", "--json", "--dir", dir, "--plugin-dir", plugins, "shop")
	v = shownChain{}
	if !ok || json.Unmarshal([]byte(out), &v) != nil || len(v.Stages) != 3 {
		t.Fatalf("show --load --json: %v\n%s", ok, out)
	}
	if a := v.Stages[0]; !a.ActsOnDeclared || fmt.Sprint(a.ActsOn) != "[login]" || fmt.Sprint(a.Signals) != "[login uplink]" {
		t.Errorf("show --load --json, auth: %+v", a)
	}
	if b := v.Stages[1]; fmt.Sprint(b.ActsOn) != "[login]" || fmt.Sprint(b.Unlisted) != "[uplink downlink heartbeat]" || b.RouteSessionsOnly {
		t.Errorf("show --load --json, blockdid: %+v", b)
	}
	if q := v.Stages[2]; q.ActsOnDeclared || fmt.Sprint(q.ActsOn) != "[route]" || !q.RouteSessionsOnly || q.LoadError != "" {
		t.Errorf("show --load --json, qosroute: %+v", q)
	}

	// An app without a file runs the default pipeline, and says so.
	out, ok = platoRun(t, "pipeline", "show", "--dir", dir, "--plugin-dir", plugins, "other")
	if !ok || !strings.HasPrefix(out, "app other: no file of its own; the default pipeline, "+filepath.Join(dir, "default.yaml")) || !strings.Contains(out, "2 stage(s)") {
		t.Fatalf("show of an app without a file: %v\n%s", ok, out)
	}
	// A file with a mistake is reported as validate reports it.
	if err := os.WriteFile(filepath.Join(dir, "shop.yaml"), []byte("version: 1\nextends: default\nremove: [nosuch]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, ok = platoRun(t, "pipeline", "show", "--dir", dir, "--plugin-dir", plugins, "shop")
	if ok || !strings.Contains(out, `shop.yaml:3: remove[0]: "nosuch" is not a stage of default`) {
		t.Fatalf("show of a broken file: %v\n%s", ok, out)
	}
}
