// Package archtest enforces the map of docs/architecture.md: which folder may import which, and
// what each SDK module may pull into the builds of the people who import it.
package archtest

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const mod = "github.com/platoim/plato/"

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// pkg is one package as go list sees it, tests included.
type pkg struct {
	path    string
	imports []string // direct, of the package and its tests
	deps    []string // everything it links, of the package alone
}

// list runs go list in dir over the module there.
func list(t *testing.T, dir string) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}|{{join .Deps " "}}`, "./...")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list in %s: %v\n%s", dir, err, out)
	}
	var pkgs []pkg
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "|", 3)
		if len(parts) != 3 {
			t.Fatalf("go list printed %q", line)
		}
		pkgs = append(pkgs, pkg{path: parts[0], imports: strings.Fields(parts[1]), deps: strings.Fields(parts[2])})
	}
	return pkgs
}

// top is the top-level folder of a package of this repository ("core", "sdk"), or "" for others.
func top(p string) string {
	rest, ok := strings.CutPrefix(p, mod)
	if !ok {
		return ""
	}
	first, _, _ := strings.Cut(rest, "/")
	return first
}

func isStd(p string) bool {
	first, _, _ := strings.Cut(p, "/")
	return !strings.Contains(first, ".")
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// mayImport says which top-level folders each folder may import, itself included. It reads
// top-down in the order a message travels; nothing points back up, tests included.
var mayImport = map[string][]string{
	"cmd":      {"cmd", "tools", "examples", "plugins", "core", "pipeline", "internal", "sdk"},
	"tools":    {"tools", "examples", "core", "pipeline", "internal", "sdk"},
	"core":     {"core", "pipeline", "internal", "sdk"},
	"pipeline": {"pipeline", "internal", "sdk"},
	"internal": {"internal", "sdk"},
	"plugins":  {"plugins", "sdk"},  // built like a business team's stage
	"examples": {"examples", "sdk"}, // a business server, built on the SDK alone
	"sdk":      {"sdk"},
}

// roleRules keep the roles apart: they talk over RPC and the registry only.
var roleRules = []struct{ from, forbidden, why string }{
	{mod + "core/gateway", mod + "core/state", "the gateway reaches the state server over RPC only"},
	{mod + "core/state", mod + "core/gateway", "the state server reaches gateways over RPC only"},
	{mod + "core/ipconf", mod + "core/gateway", "ipconf knows gateways from the registry only"},
	{mod + "core/ipconf", mod + "core/state", "ipconf knows state servers from the registry only"},
	{mod + "core/gateway", mod + "core/ipconf", "the gateway knows ipconf from nothing: ipconf watches the registry"},
	{mod + "core/state", mod + "core/ipconf", "the state server knows ipconf from nothing"},
}

func TestImportDirection(t *testing.T) {
	for _, p := range list(t, repoRoot(t)) {
		from := top(p.path)
		allowed, known := mayImport[from]
		if !known {
			t.Errorf("%s is in a top-level folder docs/architecture.md does not place (%q)", p.path, from)
			continue
		}
		for _, d := range p.imports {
			if to := top(d); to != "" && !contains(allowed, to) {
				t.Errorf("%s imports %s: %s may import only %s", p.path, d, from, strings.Join(allowed, ", "))
			}
			for _, r := range roleRules {
				if strings.HasPrefix(p.path, r.from) && strings.HasPrefix(d, r.forbidden) {
					t.Errorf("%s imports %s: %s", p.path, d, r.why)
				}
			}
		}
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// sdkModules are the SDK's Go modules, one per audience, and the third-party modules each may
// pull into its users' builds.
var sdkModules = []struct {
	dir, audience string
	allowed       []string
}{
	{"sdk", "a device app (protocol, token, client): the standard library only", nil},
	{"sdk/stage", "a plugin author: go-plugin and gRPC only", []string{
		"github.com/hashicorp/go-plugin", "github.com/hashicorp/go-hclog", "github.com/hashicorp/yamux",
		"github.com/oklog/run", "github.com/mattn/go-colorable", "github.com/mattn/go-isatty", "github.com/fatih/color",
		"google.golang.org/grpc", "google.golang.org/protobuf", "google.golang.org/genproto",
		"golang.org/x/net", "golang.org/x/sys", "golang.org/x/text", "github.com/golang/protobuf",
	}},
	{"sdk/business", "a business server: Kitex and what it needs", nil},
}

func TestSDKDependencies(t *testing.T) {
	root := repoRoot(t)
	for _, m := range sdkModules {
		for _, p := range list(t, filepath.Join(root, m.dir)) {
			for _, d := range p.deps {
				if isStd(d) {
					continue
				}
				if top(d) != "" {
					if top(d) != "sdk" {
						t.Errorf("%s depends on %s: the SDK must not import the servers", p.path, d)
					}
					if m.dir != "sdk/business" && strings.HasPrefix(d, mod+"sdk/business") {
						t.Errorf("%s depends on %s: only the business SDK may use Kitex", p.path, d)
					}
					if m.dir == "sdk" && strings.HasPrefix(d, mod+"sdk/stage") {
						t.Errorf("%s depends on %s: the device SDK must not pull the plugin machinery", p.path, d)
					}
					continue
				}
				if m.dir == "sdk/business" {
					continue
				}
				if !hasAnyPrefix(d, m.allowed) {
					t.Errorf("%s depends on %s: the SDK of %s", p.path, d, m.audience)
				}
			}
		}
	}
}
