package business

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// goBlock is a Go block of docs/business.md; each is a complete file whose first line names it.
var goBlock = regexp.MustCompile("(?s)```go\n// File: ([^\n]+)\n(.*?)```")

// TestDocsSnippetsCompileAndPass checks docs/business.md: its Go blocks must build, vet and pass
// their tests against this SDK, as a business team's project would.
func TestDocsSnippetsCompileAndPass(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module with the go command")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	_, file, _, _ := runtime.Caller(0)
	sdk, err := filepath.Abs(filepath.Join(filepath.Dir(file), ".."))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(sdk, "..", "docs", "business.md"))
	if os.IsNotExist(err) {
		t.Skip("docs/business.md is not here: the SDK was taken out of Plato's repository")
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(doc), "```go\n"); n != len(goBlock.FindAllIndex(doc, -1)) {
		t.Fatalf("docs/business.md has %d Go blocks, but only %d start with a // File: line", n, len(goBlock.FindAllIndex(doc, -1)))
	}
	mod := t.TempDir()
	gomod := "module example.com/docs\n\ngo 1.26\n\nrequire github.com/platoim/plato/sdk/business v0.0.0\n\n" +
		"replace github.com/platoim/plato/sdk => " + sdk + "\n\n" +
		"replace github.com/platoim/plato/sdk/business => " + filepath.Join(sdk, "business") + "\n"
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, b := range goBlock.FindAllSubmatch(doc, -1) {
		name := filepath.Clean(string(b[1]))
		if filepath.IsAbs(name) || strings.HasPrefix(name, "..") {
			t.Fatalf("a Go block names the file %q", b[1])
		}
		path := filepath.Join(mod, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append([]byte("// File: "+string(b[1])+"\n"), b[2]...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=mod"), "GOWORK=off")
	for _, args := range [][]string{{"mod", "tidy"}, {"vet", "./..."}, {"test", "-count=1", "./..."}} {
		cmd := exec.Command(gobin, args...)
		cmd.Dir = mod
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s on the snippets of docs/business.md: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// gofmt too: what a reader copies should be formatted.
	if out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "gofmt"), "-l", mod).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("gofmt -l on the snippets of docs/business.md: %v\n%s", err, out)
	}
}
