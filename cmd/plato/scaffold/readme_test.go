package scaffold

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/platoim/plato/internal/gomodtest"
	pipeconfig "github.com/platoim/plato/pipeline/config"
)

// The README's pipeline example, put next to the shipped default.yaml as an app's file, keeps
// every stage of the default (auth first) and adds the new stage right after auth.
func TestReadmeExampleExtendsTheDefault(t *testing.T) {
	out := t.TempDir()
	if err := Generate(out, "sizecap", "", Options{}); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(out, "sizecap", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("the README has no yaml example")
	}
	// Stand-in binaries: the loader checks they exist and are executable.
	plugins := t.TempDir()
	for _, name := range []string{"auth", "sessionbind", "qosroute", "retransmit", "sizecap"} {
		if err := os.WriteFile(filepath.Join(plugins, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	shipped, err := os.ReadFile(filepath.Join(gomodtest.Root(t), "configs", "pipelines", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	example := strings.Replace(string(m[1]), "/abs/path/to/sizecap", filepath.Join(plugins, "sizecap"), 1)
	for name, body := range map[string]string{"default.yaml": string(shipped), "shop.yaml": example} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := pipeconfig.LoadDir(dir, plugins)
	if err != nil {
		t.Fatalf("the README's example does not load:\n%s", pipeconfig.Report(err))
	}
	var got []string
	for _, s := range set.Apps["shop"].Stages {
		got = append(got, s.Name)
	}
	if want := []string{"auth", "sizecap", "sessionbind", "qosroute", "retransmit"}; !slices.Equal(got, want) {
		t.Fatalf("the README's example runs %v, want %v", got, want)
	}
}
