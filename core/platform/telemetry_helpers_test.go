package platform_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// passStage is an in-process stage that lets every signal through and remembers the traceparents
// it was handed, so a test can see the trace context reach a stage.
type passStage struct {
	mu      sync.Mutex
	parents []string
}

func (*passStage) Info() stage.Info                              { return stage.Info{Name: "pass", Version: "test"} }
func (*passStage) Init(context.Context, stage.InitRequest) error { return nil }
func (*passStage) OnLogin(context.Context, *stage.LoginEvent) stage.Reply {
	return stage.Reply{}
}
func (s *passStage) OnUplink(_ context.Context, ev *stage.UplinkEvent) stage.Reply {
	if ev.TraceParent != "" {
		s.mu.Lock()
		s.parents = append(s.parents, ev.TraceParent)
		s.mu.Unlock()
	}
	return stage.Reply{}
}
func (*passStage) OnDownlink(context.Context, *stage.DownlinkEvent) stage.Reply { return stage.Reply{} }
func (*passStage) OnDownlinkAck(context.Context, *stage.DownlinkAckEvent) stage.Reply {
	return stage.Reply{}
}

func (s *passStage) traceParents() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.parents...)
}

const passPipeline = `version: 1
stages:
  - name: pass
    plugin: builtin:pass
    signals: [login, uplink, downlink, downlink_ack]
    timeout: 2s
`

// startObserved runs every role but the demo with a recording business server, a pipeline of one
// in-process stage, and the admin server on a free port.
func startObserved(t *testing.T, mutate func(*config.Config)) (*platform.Platform, *platformtest.Business, *passStage) {
	t.Helper()
	biz := platformtest.StartBusiness(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "default.yaml"), []byte(passPipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := platformtest.Config(t)
	platformtest.SetBusiness(&cfg, biz.Addr)
	cfg.Pipeline.Dir, cfg.Pipeline.Watch = dir, false
	if mutate != nil {
		mutate(&cfg)
	}
	st := &passStage{}
	p := platformtest.StartWith(t, cfg, platform.Options{Builtins: map[string]func() stage.Stage{"pass": func() stage.Stage { return st }}},
		platform.RoleNATS, platform.RoleState, platform.RoleGateway, platform.RoleIPConf)
	poll.Within(t, 10*time.Second, "ipconf to list the gateway", func() bool {
		l, err := client.FetchEndpoints(context.Background(), nil, "http://"+p.IPConf.Addr(), "demo", "probe", platformtest.Credential(t, "demo", "probe", "probe"))
		return err == nil && len(l.Endpoints) > 0
	})
	return p, biz, st
}

// rawFrames connects to the gateway and writes frames as given, for what sdk/client would never
// send (a forged token, garbage).
func rawFrames(t *testing.T, gw string, frames []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", gw, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(frames); err != nil {
		t.Fatal(err)
	}
	// The gateway answers and closes; read until it does.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, c)
}

func forgedLogin() []byte {
	body := (&protocol.Login{AppID: "demo", DID: "mallory", Token: "forged"}).Append(nil)
	return protocol.AppendFrame(nil, protocol.SigLogin, 0, 1, body)
}

// scrape is /metrics parsed: each metric's TYPE, and each sample's value by "name{labels}".
type scrape struct {
	types   map[string]string
	samples map[string]float64
}

var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$`)

func scrapeMetrics(t *testing.T, admin string) scrape {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	s := scrape{types: map[string]string{}, samples: map[string]float64{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			s.types[f[2]] = f[3]
			continue
		}
		if m := sampleRE.FindStringSubmatch(line); m != nil {
			v, err := strconv.ParseFloat(m[3], 64)
			if err == nil {
				s.samples[m[1]+m[2]] = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

// sum adds the samples of name whose labels include every one of labels (`key="value"`).
func (s scrape) sum(name string, labels ...string) float64 {
	var total float64
	for k, v := range s.samples {
		n, lbl, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(lbl, l) {
				ok = false
			}
		}
		if ok {
			total += v
		}
	}
	return total
}

// documentedMetrics reads the metric table of docs/observability.md: rows starting with a
// backquoted plato_ name, then its type.
func documentedMetrics(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(platformtest.RepoRoot(), "docs", "observability.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `(plato_[a-z0-9_]+)` \\| (counter|gauge|histogram) \\|")
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			out[m[1]] = m[2]
		}
	}
	if len(out) < 30 {
		t.Fatalf("docs/observability.md lists %d metrics; the table did not parse", len(out))
	}
	return out
}
