package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/platoim/plato/sdk/stage"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const oneStage = "version: 1\nstages:\n  - name: auth\n    plugin: auth\n    signals: [login]\n"

func TestErrorFormat(t *testing.T) {
	for _, c := range []struct {
		e    Error
		want string
	}{
		{Error{File: "configs/pipelines/chat.yaml", Line: 12, Path: "stages[1].timeout", Msg: `"fast" is not a duration (e.g. 200ms)`},
			`configs/pipelines/chat.yaml:12: stages[1].timeout: "fast" is not a duration (e.g. 200ms)`},
		{Error{File: "a.yaml", Path: "version", Msg: "is required"}, "a.yaml: version: is required"},
		{Error{File: "a.yaml", Line: 3, Msg: "invalid YAML: x"}, "a.yaml:3: invalid YAML: x"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}

func TestErrorsAreTyped(t *testing.T) {
	plugins := pluginDir(t)
	_, err := LoadFile("testdata/files/bad_duration.yaml", plugins)
	var e *Error
	if !errors.As(err, &e) || e.File != "testdata/files/bad_duration.yaml" || e.Line == 0 || e.Path == "" {
		t.Fatalf("errors.As: %#v from %v", e, err)
	}
	if n := len(leaves(err)); n != 2 {
		t.Errorf("want 2 joined errors, got %d: %v", n, err)
	}
	_, err = LoadFile("testdata/files/no_such_file.yaml", plugins)
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &e) {
		t.Errorf("missing file: want an *Error wrapping fs.ErrNotExist, got %v", err)
	}
	if Report(nil) != "" {
		t.Error("Report(nil) is not empty")
	}
}

func TestDefaultsAndAccessors(t *testing.T) {
	dir := t.TempDir()
	plugins := pluginDir(t)
	path := filepath.Join(dir, "chat.yml")
	writeFile(t, path, oneStage)
	f, err := LoadFile(path, plugins)
	if err != nil {
		t.Fatal(Report(err))
	}
	s := f.Stages[0]
	if f.AppID != "chat" || s.Timeout != DefaultTimeout || s.OnFailure != FailClosed ||
		s.Batch != (Batch{DefaultBatchMaxSize}) || string(s.Config) != "{}" ||
		s.Path != filepath.Join(plugins, "auth") || s.Builtin != "" {
		t.Errorf("defaults not applied: %+v", f)
	}
	if !s.Handles(stage.SignalLogin) || s.Handles(stage.SignalUplink) {
		t.Error("Handles")
	}
}

func TestRelativePluginDir(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.MkdirAll(filepath.Join("bin", "plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, "p.yaml", oneStage)
	_, err := LoadFile("p.yaml", "bin/plugins")
	const want = "p.yaml:4: stages[0].plugin (stage auth): bin/plugins/auth: no such file (build it with `make plugins`)"
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	if err := os.WriteFile(filepath.Join("bin", "plugins", "auth"), []byte(dummyPlugin), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFile("p.yaml", "bin/plugins")
	if err != nil {
		t.Fatal(Report(err))
	}
	if want := filepath.Join(dir, "bin", "plugins", "auth"); f.Stages[0].Path != want {
		t.Errorf("Path %s, want the absolute %s", f.Stages[0].Path, want)
	}
}

func TestLoadDirWithoutDefault(t *testing.T) {
	dir := t.TempDir()
	plugins := pluginDir(t)
	writeFile(t, filepath.Join(dir, "chat.yaml"), oneStage)
	s, err := LoadDir(dir, plugins)
	if err != nil {
		t.Fatal(Report(err))
	}
	if d := s.For("other"); d != s.Default || d.AppID != DefaultAppID || d.Source != "" || len(d.Stages) != 0 {
		t.Errorf("For(other) = %+v, want the empty default", d)
	}
	if c := s.For("chat"); c.AppID != "chat" || len(c.Stages) != 1 {
		t.Errorf("For(chat) = %+v", c)
	}
	if _, err := LoadDir(filepath.Join(dir, "missing"), plugins); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing dir: %v", err)
	}
}

func TestLoadApp(t *testing.T) {
	dir := t.TempDir()
	plugins := pluginDir(t)
	if f, err := LoadApp(dir, "chat", plugins); f != nil || err != nil {
		t.Errorf("no file: got %v, %v; want nil, nil", f, err)
	}
	if f, err := LoadApp(dir, DefaultAppID, plugins); err != nil || f == nil || len(f.Stages) != 0 {
		t.Errorf("no default.yaml: got %v, %v; want the empty pipeline", f, err)
	}
	writeFile(t, filepath.Join(dir, "chat.yml"), oneStage)
	if f, err := LoadApp(dir, "chat", plugins); err != nil || f.AppID != "chat" || len(f.Stages) != 1 {
		t.Errorf("chat.yml: got %+v, %v", f, err)
	}
	writeFile(t, filepath.Join(dir, "chat.yaml"), oneStage)
	if _, err := LoadApp(dir, "chat", plugins); err == nil || !strings.Contains(err.Error(), "keep one of them") {
		t.Errorf("chat.yaml and chat.yml: got %v", err)
	}
	writeFile(t, filepath.Join(dir, "game.yaml"), "version: 1\nstages:\n  - name: x\n")
	if _, err := LoadApp(dir, "game", plugins); err == nil || !strings.Contains(err.Error(), "stages[0].plugin (stage x): is required") {
		t.Errorf("bad game.yaml: got %v", err)
	}
	if _, err := LoadApp(dir, "../etc/passwd", plugins); err == nil {
		t.Error("an app ID with a slash was accepted")
	}
}

func TestValidAppID(t *testing.T) {
	for id, want := range map[string]bool{
		"chat": true, "Game_2.v-1": true, strings.Repeat("a", 128): true,
		"": false, strings.Repeat("a", 129): false, "a b": false, "a/b": false, "é": false,
	} {
		if ValidAppID(id) != want {
			t.Errorf("ValidAppID(%q) = %v", id, !want)
		}
	}
}

func TestSuggest(t *testing.T) {
	for key, want := range map[string]string{
		"timout": "timeout", "Timeout": "timeout", "on-failure": "on_failure", "onfailure": "on_failure",
		"signal": "signals", "sha-256": "sha256", "retries": "", "x": "",
	} {
		if got := suggest(key, stageKeys); got != want {
			t.Errorf("suggest(%q) = %q, want %q", key, got, want)
		}
	}
}

// Timeouts at the bounds are accepted.
func TestTimeoutBounds(t *testing.T) {
	dir := t.TempDir()
	plugins := pluginDir(t)
	path := filepath.Join(dir, "t.yaml")
	writeFile(t, path, oneStage+"    timeout: 30s\n    batch: {max_size: 1}\n")
	f, err := LoadFile(path, plugins)
	if err != nil {
		t.Fatal(Report(err))
	}
	if s := f.Stages[0]; s.Timeout != MaxTimeout || s.Batch.MaxSize != 1 {
		t.Errorf("got %+v", s)
	}
}
