// Package gomodtest runs the go command on throwaway modules built against this repository's SDK
// modules, the way a business team's or a plugin author's own project uses them: the Go blocks of
// the docs (CheckDoc) and the projects `plato plugin new` writes are built, vetted and tested
// this way, so what a reader copies is known to work.
package gomodtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// SDKModules are the SDK's Go modules, by their folder in this repository; their module path is
// github.com/platoim/plato/ followed by the folder.
var SDKModules = []string{"sdk", "sdk/stage", "sdk/business"}

const modulePrefix = "github.com/platoim/plato/"

// Root is the repository's root, found from this file.
func Root(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate gomodtest's source file")
	}
	root, err := filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// NewModule writes a go.mod for module path into a fresh directory and returns the directory. The
// module requires the SDK modules named (folders of SDKModules, e.g. "sdk/stage") and replaces
// every SDK module with this repository's copy.
func NewModule(t testing.TB, path string, requires ...string) string {
	t.Helper()
	root := Root(t)
	var b strings.Builder
	b.WriteString("module " + path + "\n\ngo 1.26\n")
	for _, r := range requires {
		b.WriteString("\nrequire " + modulePrefix + r + " v0.0.0\n")
	}
	for _, m := range SDKModules {
		b.WriteString("\nreplace " + modulePrefix + m + " => " + filepath.Join(root, m) + "\n")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Go runs the go command in dir and returns its output; a failure fails the test. The SDK's
// dependencies are in the module cache (this repository builds with them), so it works offline;
// GOPROXY and the rest come from the environment.
func Go(t testing.TB, dir string, args ...string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	cmd := exec.Command(gobin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=mod"), "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// Check runs what a project's README tells its author to: go mod tidy, go vet, go test; and gofmt,
// since what a reader copies should be formatted.
func Check(t testing.TB, dir string) {
	t.Helper()
	Go(t, dir, "mod", "tidy")
	Go(t, dir, "vet", "./...")
	Go(t, dir, "test", "-count=1", "./...")
	gofmt := filepath.Join(runtime.GOROOT(), "bin", "gofmt")
	if out, err := exec.Command(gofmt, "-l", dir).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("gofmt -l in %s: %v\n%s", dir, err, out)
	}
}
