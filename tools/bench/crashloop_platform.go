package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The crashloop scenario's own platform: NATS and the business server (failover's, on one
// listener) in this process, one state server and one gateway as processes of the plato binary,
// and the app's pipeline: one stage, the plugin under test, fail_closed on uplinks. The state
// server's admin server is on, for its /metrics and /healthz.

// clStageConfig is the stage's config block. The reference auth stage acts on uplinks only when
// its config can refuse one (stage.SignalSelector): without a deny list every uplink would go
// past it and no crash would catch one, so it gets a deny list naming no device of the bench.
// Another plugin gets no config, as before.
func clStageConfig(plugin string) string {
	if filepath.Base(plugin) != "auth" {
		return ""
	}
	return "    config: {deny_dids: [crashloop-no-such-device]}\n"
}

// clStageName is the pipeline stage the bench kills.
const clStageName = "crashing"

// clStageTimeout is the stage's timeout: a signal that waited on a dead process instead of getting
// the failure policy at once would take this long.
const clStageTimeout = 2 * time.Second

type clPlatform struct {
	platformBase
	state, gw *platoProc
	gwAddr    string
	adminURL  string // the state server's
	plugin    string // the plugin binary, absolute
	secret    string
}

func startClPlatform(ctx context.Context, o Options) (p *clPlatform, err error) {
	p = &clPlatform{platformBase: platformBase{command: o.PlatoCommand}}
	defer stopOnError(&p, &err)
	if p.plugin, err = filepath.Abs(o.Plugin); err != nil {
		return p, err
	}
	if st, err := os.Stat(p.plugin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return p, fmt.Errorf("plugin %s: not an executable file (build the reference plugins with `make plugins`, or give --plugin)", p.plugin)
	}
	if err = p.open(ctx, "crashloop", true, 1); err != nil {
		return p, err
	}
	p.secret = randomHex(24)
	pipes := filepath.Join(p.dir, "pipelines")
	if err = os.MkdirAll(pipes, 0o755); err != nil {
		return p, err
	}
	stageYAML := fmt.Sprintf(`# written by plato bench crashloop
version: 1
stages:
  - name: %s
    plugin: %q
    signals: [uplink]
    timeout: %s
    on_failure: fail_closed
%s`, clStageName, p.plugin, clStageTimeout, clStageConfig(p.plugin))
	if err = os.WriteFile(filepath.Join(pipes, o.AppID+".yaml"), []byte(stageYAML), 0o644); err != nil {
		return p, err
	}
	stateAddr, err := freeLoopbackAddr()
	if err != nil {
		return p, err
	}
	extra := fmt.Sprintf("state: {addr: %q}\npipeline: {dir: %q, plugin_dir: %q, watch: false}\n", stateAddr, pipes, filepath.Dir(p.plugin))
	conf := foConfig(p.dir, p.natsServer.ClientURL(), p.secret, o.AppID, randomHex(16), randomHex(24), p.biz.addr(0), extra)
	if err = p.writeConfig(conf); err != nil {
		return p, err
	}
	if _, err = p.startProc(ctx, &p.state, "state", "state", []string{"PLATO_ADMIN__ADDR=127.0.0.1:0"}, reRunningLine); err != nil {
		return p, err
	}
	if p.adminURL, err = p.state.waitLine(ctx, reAdminLine, 5*time.Second); err != nil {
		return p, err
	}
	if p.gwAddr, err = p.startProc(ctx, &p.gw, "gateway", "gateway", nil, reGatewayLine); err != nil {
		return p, err
	}
	return p, waitGatewayLogin(ctx, p.gwAddr, o.AppID, p.secret, 30*time.Second)
}

func (p *clPlatform) stop() {
	p.gw.stop()
	p.state.stop()
	p.platformBase.stop()
}

// statePID is the state server's pid.
func (p *clPlatform) statePID() int { return p.state.cmd.Process.Pid }

// pluginPIDs lists the state server's live children running the plugin binary.
func (p *clPlatform) pluginPIDs() []int {
	comm := filepath.Base(p.plugin)
	if len(comm) > 15 { // the kernel keeps 15 bytes of a process's name
		comm = comm[:15]
	}
	var out []int
	for _, c := range childProcs(p.statePID()) {
		if c.state != 'Z' && c.comm == comm {
			out = append(out, c.pid)
		}
	}
	return out
}

// zombies counts the pids of pids that are zombie children of the state server: exited, never
// reaped.
func (p *clPlatform) zombies(pids []int) int {
	n := 0
	for _, pid := range pids {
		if c, ok := readProcStat(pid); ok && c.state == 'Z' && c.ppid == p.statePID() {
			n++
		}
	}
	return n
}

// metric reads one metric of the state server's /metrics (summed over its label sets), or -1.
func (p *clPlatform) metric(name string) float64 {
	return adminMetric(p.adminURL, name)
}

// clHealth is the state server's /healthz answer.
type clHealth struct {
	Code   int    `json:"code"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

func (p *clPlatform) health() clHealth {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(p.adminURL + "/healthz")
	if err != nil {
		return clHealth{Status: "unreachable: " + errClass(err)}
	}
	defer resp.Body.Close()
	h := clHealth{Code: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		h.Status = "unreadable"
	}
	return h
}

// procInfo is what /proc/<pid>/stat says of a process.
type procInfo struct {
	pid, ppid int
	comm      string
	state     byte
}

func readProcStat(pid int) (procInfo, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || end+2 >= len(s) {
		return procInfo{}, false
	}
	f := strings.Fields(s[end+2:])
	if len(f) < 2 {
		return procInfo{}, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procInfo{}, false
	}
	return procInfo{pid: pid, ppid: ppid, comm: s[open+1 : end], state: f[0][0]}, true
}

// childProcs lists the processes whose parent is ppid.
func childProcs(ppid int) []procInfo {
	entries, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if c, ok := readProcStat(pid); ok && c.ppid == ppid {
			out = append(out, c)
		}
	}
	return out
}
