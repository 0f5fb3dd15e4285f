package pipeline

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/poll"
)

// helperEnv makes the test binary act as a tiny pipeline host (see runHelperHost) instead of
// running tests: a host the test can SIGKILL.
const helperEnv = "PLATO_PIPELINE_TEST_HELPER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		runHelperHost(dir)
		return
	}
	code := m.Run()
	if testPluginBin.dir != "" {
		os.RemoveAll(testPluginBin.dir)
	}
	os.Exit(code)
}

// runHelperHost loads the pipelines of dir, prints the pid of every plugin it started, one per
// line as "pid N", then waits to be killed.
func runHelperHost(dir string) {
	p, err := New(context.Background(), Config{Dir: dir}, nil, nil, nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for _, pid := range p.pluginPIDs() {
		fmt.Println("pid", pid)
	}
	fmt.Println("ready")
	select {}
}

// pluginPIDs lists the pids of the current plugin processes.
func (p *Pipelines) pluginPIDs() []int {
	var out []int
	for _, c := range p.snap.Load().chains() {
		for _, s := range c.steps {
			if pr := s.inst.cur.Load(); pr != nil && pr.pid > 0 {
				out = append(out, pr.pid)
			}
		}
	}
	return out
}

// testPluginBin is sdk/stage's test plugin, built once per test binary.
var testPluginBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// testPlugin builds sdk/stage/internal/testplugin (its uplink handler: "reject", "panic", "sleep",
// "host", anything else echoed) and returns the binary's path.
func testPlugin(t testing.TB) string {
	t.Helper()
	b := &testPluginBin
	b.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		stageSDK := filepath.Join(filepath.Dir(file), "..", "sdk", "stage")
		if b.dir, b.err = os.MkdirTemp("", "plato-pipeline-test"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "testplugin")
		cmd := exec.Command("go", "build", "-o", b.path, "./internal/testplugin")
		cmd.Dir = stageSDK
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("building the test plugin: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// alive reports whether pid is a live process (a zombie is not).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !os.IsNotExist(err)
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func waitGone(t testing.TB, pid int) time.Duration {
	t.Helper()
	start := time.Now()
	poll.Until(t, fmt.Sprintf("process %d to exit", pid), func() bool { return !alive(pid) })
	return time.Since(start)
}
