// Package archtest enforces the import rules of docs/architecture.md: the SDK depends on nothing but
// the standard library, core never imports cmd, and the roles talk to each other only over RPC.
package archtest

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// deps lists, for each package matching pattern in dir, its imports (direct and indirect).
func deps(t *testing.T, dir, pattern string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-f", `{{.ImportPath}}|{{join .Deps " "}}`, pattern)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pattern, err, out)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, ds, _ := strings.Cut(line, "|")
		m[pkg] = strings.Fields(ds)
	}
	return m
}

func isStd(p string) bool {
	first, _, _ := strings.Cut(p, "/")
	return !strings.Contains(first, ".")
}

func TestSDKUsesOnlyTheStandardLibrary(t *testing.T) {
	for pkg, ds := range deps(t, filepath.Join(repoRoot(t), "sdk"), "./...") {
		for _, d := range ds {
			if !isStd(d) && !strings.HasPrefix(d, "github.com/platoim/plato/sdk") {
				t.Errorf("%s depends on %s: sdk/ must stay dependency-free", pkg, d)
			}
		}
	}
}

func TestImportDirection(t *testing.T) {
	const mod = "github.com/platoim/plato/"
	rules := []struct{ from, forbidden, why string }{
		{mod + "core/", mod + "cmd/", "core must not import cmd"},
		{mod + "core/gateway", mod + "core/state", "the gateway reaches the state server over RPC only"},
		{mod + "core/state", mod + "core/gateway", "the state server reaches gateways over RPC only"},
		{mod + "core/ipconf", mod + "core/gateway", "ipconf knows gateways from the registry only"},
	}
	for pkg, ds := range deps(t, repoRoot(t), "./...") {
		for _, r := range rules {
			if !strings.HasPrefix(pkg, r.from) {
				continue
			}
			for _, d := range ds {
				if strings.HasPrefix(d, r.forbidden) {
					t.Errorf("%s imports %s: %s", pkg, d, r.why)
				}
			}
		}
	}
}
