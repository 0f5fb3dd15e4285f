package platformtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	pluginMu    sync.Mutex
	pluginBuilt = map[string]string{}
)

// RemoveBuiltPlugins deletes what BuildPlugin built; a package that builds plugins calls it from
// TestMain after m.Run. Each binary is 20 MB, and a machine that runs the tests many times fills
// its disk with them otherwise.
func RemoveBuiltPlugins() {
	pluginMu.Lock()
	defer pluginMu.Unlock()
	for dir, bin := range pluginBuilt {
		_ = os.RemoveAll(filepath.Dir(bin))
		delete(pluginBuilt, dir)
	}
}

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// BuildPlugin builds the program in dir (relative to the repository root, e.g. "plugins/auth", or
// "sdk/stage/internal/testplugin") once per test binary and returns the path of the executable.
func BuildPlugin(t testing.TB, dir string) string {
	t.Helper()
	pluginMu.Lock()
	defer pluginMu.Unlock()
	if p, ok := pluginBuilt[dir]; ok {
		return p
	}
	out, err := os.MkdirTemp("", "plato-plugin-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(out, filepath.Base(dir))
	// Build in the module that holds dir: plugins/ are in the repository's root module, the SDK's
	// test plugin in sdk/stage's.
	mod := filepath.Join(RepoRoot(), dir)
	for {
		if _, err := os.Stat(filepath.Join(mod, "go.mod")); err == nil || mod == RepoRoot() {
			break
		}
		mod = filepath.Dir(mod)
	}
	rel, err := filepath.Rel(mod, filepath.Join(RepoRoot(), dir))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", bin, "./"+rel)
	cmd.Dir = mod
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", dir, err, b)
	}
	pluginBuilt[dir] = bin
	return bin
}

// PIDsOf lists the processes whose executable is bin.
func PIDsOf(bin string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue
		}
		if strings.TrimSuffix(exe, " (deleted)") == bin {
			pids = append(pids, pid)
		}
	}
	return pids
}
