package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/platoim/plato/pipeline/config"
	"github.com/platoim/plato/sdk/stage"
)

// strictStage handles uplinks only and refuses any config key but "limit".
type strictStage struct{}

func (strictStage) Info() stage.Info { return stage.Info{Name: "strict", Version: "test"} }

func (strictStage) Init(_ context.Context, req stage.InitRequest) error {
	var m map[string]any
	if err := json.Unmarshal(req.Config, &m); err != nil {
		return err
	}
	for k := range m {
		if k != "limit" {
			return errors.New("unknown key " + k)
		}
	}
	return nil
}

func (strictStage) OnUplink(context.Context, *stage.UplinkEvent) stage.Reply { return stage.Reply{} }

// Probe refuses what the server would refuse (a signal without a handler, a config Init rejects,
// a plugin that does not start), and starts and stops the rest, leaving no process behind.
func TestProbeRefusesWhatTheServerWould(t *testing.T) {
	dir := t.TempDir()
	bin := testPlugin(t)
	writePipeline(t, dir, "default", fileYAML(
		stageYAML("ok", "builtin:strict", "uplink", "config: {limit: 3}"),
		stageYAML("badkey", "builtin:strict", "uplink", "config: {colour: blue}"),
		stageYAML("nohandler", "builtin:strict", "uplink, login"),
		stageYAML("plugin", bin, "uplink"),
	))
	f, err := config.LoadFile(filepath.Join(dir, "default.yaml"), "")
	if err != nil {
		t.Fatal(config.Report(err))
	}
	cfg := Config{Builtins: map[string]func() stage.Stage{"strict": func() stage.Stage { return strictStage{} }}}
	res, err := Probe(context.Background(), cfg, []*config.File{f}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ok": "", "badkey": "unknown key colour", "nohandler": "does not implement [login]", "plugin": ""}
	if len(res) != len(want) {
		t.Fatalf("%d results: %+v", len(res), res)
	}
	for _, r := range res {
		w := want[r.Stage]
		switch {
		case w == "" && r.Err != nil:
			t.Errorf("%s: %v", r.Stage, r.Err)
		case w != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), w)):
			t.Errorf("%s: %v, want %q", r.Stage, r.Err, w)
		}
	}
	if left := childrenRunning(bin); len(left) > 0 {
		t.Fatalf("Probe left plugin processes running: %v", left)
	}
}

// childrenRunning lists this process's live children whose executable is bin.
func childrenRunning(bin string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || exe != bin || !alive(pid) {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		s := string(stat)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) {
				out = append(out, pid)
			}
		}
	}
	return out
}
