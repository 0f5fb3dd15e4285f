// Package archtest enforces the import rules of docs/architecture.md: the device-side SDK depends on
// nothing but the standard library and the stage SDK only on go-plugin and gRPC, plugins only on the
// SDK, core never imports cmd, and the roles talk to each other only over RPC.
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

func TestSDKDependencies(t *testing.T) {
	// What sdk/stage may pull into a plugin author's build: go-plugin and gRPC with what they need.
	stageAllowed := []string{
		"github.com/hashicorp/go-plugin", "github.com/hashicorp/go-hclog", "github.com/hashicorp/yamux",
		"github.com/oklog/run", "github.com/mattn/go-colorable", "github.com/mattn/go-isatty", "github.com/fatih/color",
		"google.golang.org/grpc", "google.golang.org/protobuf", "google.golang.org/genproto",
		"golang.org/x/net", "golang.org/x/sys", "golang.org/x/text", "github.com/golang/protobuf",
	}
	for pkg, ds := range deps(t, filepath.Join(repoRoot(t), "sdk"), "./...") {
		isStage := strings.HasPrefix(pkg, "github.com/platoim/plato/sdk/stage")
		isBusiness := strings.HasPrefix(pkg, "github.com/platoim/plato/sdk/business") ||
			strings.HasPrefix(pkg, "github.com/platoim/plato/sdk/rpc")
		for _, d := range ds {
			if isStd(d) {
				continue
			}
			if strings.HasPrefix(d, "github.com/platoim/plato/sdk") {
				// The device and stage SDKs must not pull the business SDK's Kitex in.
				if !isBusiness && (strings.HasPrefix(d, "github.com/platoim/plato/sdk/business") ||
					strings.HasPrefix(d, "github.com/platoim/plato/sdk/rpc")) {
					t.Errorf("%s depends on %s: only the business SDK may use Kitex", pkg, d)
				}
				continue
			}
			switch {
			case isBusiness:
				continue // a business server speaks Kitex, with all Kitex needs; it must not import the servers (TestImportDirection)
			case isStage && hasAnyPrefix(d, stageAllowed):
				continue
			case isStage:
				t.Errorf("%s depends on %s: sdk/stage may use only go-plugin and gRPC", pkg, d)
			default:
				t.Errorf("%s depends on %s: the device SDK must stay dependency-free", pkg, d)
			}
		}
	}
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func TestImportDirection(t *testing.T) {
	const mod = "github.com/platoim/plato/"
	rules := []struct{ from, forbidden, why string }{
		{mod + "core/", mod + "cmd/", "core must not import cmd"},
		{mod + "core/gateway", mod + "core/state", "the gateway reaches the state server over RPC only"},
		{mod + "core/state", mod + "core/gateway", "the state server reaches gateways over RPC only"},
		{mod + "core/ipconf", mod + "core/gateway", "ipconf knows gateways from the registry only"},
		{mod + "pipeline", mod + "cmd/", "pipeline must not import cmd"},
		{mod + "plugins/", mod + "core/", "plugins are built against the SDK only, like a business team's"},
		{mod + "plugins/", mod + "pipeline", "plugins are built against the SDK only, like a business team's"},
		{mod + "sdk/", mod + "core/", "the SDK must not import the servers"},
	}
	for pkg, ds := range deps(t, repoRoot(t), "./...") {
		// pipeline may use core's leaf utilities (batching, timers), nothing else of core.
		if strings.HasPrefix(pkg, mod+"pipeline") {
			for _, d := range ds {
				if strings.HasPrefix(d, mod+"core/") && d != mod+"core/batch" && d != mod+"core/timewheel" {
					t.Errorf("%s imports %s: pipeline may use only core/batch and core/timewheel of core", pkg, d)
				}
			}
		}
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
