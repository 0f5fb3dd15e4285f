// Package plugins_test checks docs/plugins.md: every Go block on that page is a complete file, and
// together they must build, vet and pass their tests against this repository's SDK, the way a
// business team's project would.
package plugins_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Join(filepath.Dir(file), "..")
}

func TestDocsSnippetsCompileAndPass(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module with the go command")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	root := repoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "plugins.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := goBlock.FindAllStringSubmatch(string(doc), -1)
	if len(blocks) == 0 {
		t.Fatal("docs/plugins.md has no Go blocks")
	}
	sdk, err := filepath.Abs(filepath.Join(root, "sdk"))
	if err != nil {
		t.Fatal(err)
	}
	mod := t.TempDir()
	gomod := "module example.com/docs\n\ngo 1.26\n\nrequire github.com/platoim/plato/sdk/stage v0.0.0\n\n" +
		"replace github.com/platoim/plato/sdk => " + sdk + "\n\n" +
		"replace github.com/platoim/plato/sdk/stage => " + filepath.Join(sdk, "stage") + "\n"
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	// Blocks of one package go in one directory, in the order of the page; a block with tests is
	// a _test.go file.
	for i, b := range blocks {
		src := b[1]
		first, _, _ := strings.Cut(src, "\n")
		pkg, ok := strings.CutPrefix(first, "package ")
		if !ok {
			t.Fatalf("Go block %d of docs/plugins.md is not a complete file (it starts with %q)", i+1, first)
		}
		dir := filepath.Join(mod, pkg)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("block%02d.go", i+1)
		if strings.Contains(src, "\nfunc Test") {
			name = fmt.Sprintf("block%02d_test.go", i+1)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=mod"), "GOWORK=off")
	for _, args := range [][]string{{"mod", "tidy"}, {"vet", "./..."}, {"test", "-count=1", "./..."}} {
		cmd := exec.Command(gobin, args...)
		cmd.Dir = mod
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s on the snippets of docs/plugins.md: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
