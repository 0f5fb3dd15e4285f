package gomodtest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// goBlock is a fenced Go block of a Markdown page.
var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

// CheckDoc checks the Go blocks of the page docs/<page>: each is a complete file, and together
// they must build, vet, pass their tests and be gofmt-clean in a module that requires the SDK
// modules named. A block whose first line is "// File: path" is written there; any other block
// goes into the directory of its package, in page order, as a _test.go file when it has tests.
func CheckDoc(t *testing.T, page string, requires ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a module with the go command")
	}
	doc, err := os.ReadFile(filepath.Join(Root(t), "docs", page))
	if err != nil {
		t.Fatal(err)
	}
	blocks := goBlock.FindAllStringSubmatch(string(doc), -1)
	if len(blocks) == 0 {
		t.Fatalf("docs/%s has no Go blocks", page)
	}
	mod := NewModule(t, "example.com/docs", requires...)
	for i, b := range blocks {
		name, err := blockFile(i, b[1])
		if err != nil {
			t.Fatalf("docs/%s: %v", page, err)
		}
		path := filepath.Join(mod, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b[1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	Check(t, mod)
}

// blockFile is where the i-th block (from 0) goes in the module.
func blockFile(i int, src string) (string, error) {
	first, _, _ := strings.Cut(src, "\n")
	if name, ok := strings.CutPrefix(first, "// File: "); ok {
		name = filepath.Clean(name)
		if filepath.IsAbs(name) || strings.HasPrefix(name, "..") {
			return "", fmt.Errorf("Go block %d names the file %q, outside the module", i+1, name)
		}
		return name, nil
	}
	pkg, ok := strings.CutPrefix(first, "package ")
	if !ok {
		return "", fmt.Errorf("Go block %d is not a complete file: it starts with %q, not a package clause or a // File: line", i+1, first)
	}
	name := fmt.Sprintf("block%02d.go", i+1)
	if strings.Contains(src, "\nfunc Test") {
		name = fmt.Sprintf("block%02d_test.go", i+1)
	}
	return filepath.Join(pkg, name), nil
}
