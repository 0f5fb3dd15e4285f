package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the testdata/**/*.golden files from the current output")

// dummyPlugin is the content of the fake plugin binaries; its SHA-256 is dummySHA256.
const (
	dummyPlugin = "#!/bin/sh\nexit 0\n"
	dummySHA256 = "306c6ca7407560340797866e077e053627ad409277d1b9da58106fce4cf717cb"
)

// pluginDir makes a plugin directory: executables auth, sessionbind, qosroute, retransmit (the
// shipped default's) and echo, a non-executable noexec and a directory adir.
func pluginDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"auth", "sessionbind", "qosroute", "retransmit", "echo"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(dummyPlugin), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "noexec"), []byte(dummyPlugin), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The golden rendering of a loaded pipeline: what the host will build its chain from.
type goldenFile struct {
	AppID   string        `json:"app_id"`
	Source  string        `json:"source"`
	Version int           `json:"version"`
	Stages  []goldenStage `json:"stages"`
}

type goldenStage struct {
	Name      string          `json:"name"`
	Plugin    string          `json:"plugin"`
	Builtin   string          `json:"builtin,omitempty"`
	Path      string          `json:"path,omitempty"`
	SHA256    string          `json:"sha256,omitempty"`
	Signals   []string        `json:"signals"`
	Timeout   string          `json:"timeout"`
	OnFailure string          `json:"on_failure"`
	Batch     goldenBatch     `json:"batch"`
	Config    json.RawMessage `json:"config"`
}

type goldenBatch struct {
	MaxSize int `json:"max_size"`
}

func render(f *File) goldenFile {
	g := goldenFile{AppID: f.AppID, Source: filepath.ToSlash(f.Source), Version: f.Version, Stages: []goldenStage{}}
	for _, s := range f.Stages {
		sigs := make([]string, len(s.Signals))
		for i, x := range s.Signals {
			sigs[i] = string(x)
		}
		g.Stages = append(g.Stages, goldenStage{
			Name: s.Name, Plugin: s.Plugin, Builtin: s.Builtin, Path: s.Path, SHA256: s.SHA256,
			Signals: sigs, Timeout: s.Timeout.String(), OnFailure: string(s.OnFailure),
			Batch:  goldenBatch{MaxSize: s.Batch.MaxSize},
			Config: s.Config,
		})
	}
	return g
}

// golden compares got with the golden file, after replacing the temporary plugin directory with
// $PLUGINS; with -update it rewrites the file instead.
func golden(t *testing.T, path, plugins string, got []byte) {
	t.Helper()
	got = bytes.ReplaceAll(got, []byte(plugins), []byte("$PLUGINS"))
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// outcome renders a load: the plan as JSON, or the error report.
func outcome(t *testing.T, v any, err error) []byte {
	t.Helper()
	if err != nil {
		return []byte("error:\n" + Report(err))
	}
	b, jerr := json.MarshalIndent(v, "", "  ")
	if jerr != nil {
		t.Fatal(jerr)
	}
	return append(b, '\n')
}

// TestLoadFileGolden loads each testdata/files/*.yaml and compares the plan, or the problems
// reported, with the .golden file beside it.
func TestLoadFileGolden(t *testing.T) {
	plugins := pluginDir(t)
	inputs, err := filepath.Glob("testdata/files/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			f, err := LoadFile(in, plugins)
			var v any
			if err == nil {
				v = render(f)
			}
			golden(t, strings.TrimSuffix(in, ".yaml")+".golden", plugins, outcome(t, v, err))
		})
	}
}

func renderSet(s *Set) map[string]goldenFile {
	out := map[string]goldenFile{"(default)": render(s.Default)}
	for app, f := range s.Apps {
		out[app] = render(f)
	}
	return out
}

// TestLoadDirGolden loads testdata/dir_ok (default, apps, ignored files) and testdata/dir_bad
// (a bad file, a duplicate app, a bad file name, beside good ones).
func TestLoadDirGolden(t *testing.T) {
	plugins := pluginDir(t)
	for _, name := range []string{"dir_ok", "dir_bad"} {
		t.Run(name, func(t *testing.T) {
			s, err := LoadDir(filepath.Join("testdata", name), plugins)
			var v any
			if err == nil {
				v = renderSet(s)
			}
			golden(t, filepath.Join("testdata", name+".golden"), plugins, outcome(t, v, err))
		})
	}
}

// TestShippedDefault checks configs/pipelines/default.yaml, the pipeline `make up` runs, against
// dummy binaries of the reference plugins.
func TestShippedDefault(t *testing.T) {
	plugins := pluginDir(t)
	dir := filepath.Join("..", "..", "configs", "pipelines")
	f, err := LoadFile(filepath.Join(dir, "default.yaml"), plugins)
	var v any
	if err == nil {
		v = render(f)
	}
	golden(t, filepath.Join("testdata", "shipped_default.golden"), plugins, outcome(t, v, err))
	if _, err := LoadDir(dir, plugins); err != nil {
		t.Errorf("LoadDir(%s):\n%s", dir, Report(err))
	}
}
