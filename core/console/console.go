// Package console is the ops console every process serves on its admin address: a static page at
// / (page.go) and the JSON it reads under /api/v1/ (fleet, apps, pipelines, faults), behind the
// ops key.
//
// Where the figures come from, so that nothing on a message's path counts anything twice:
//   - the fleet is the registry: every gateway, state server and ipconf puts its entry (with its
//     version, load and admin address) there every report interval;
//   - apps, pipelines and faults are each process's own metrics (what /metrics serves), read by a
//     sampler every two seconds (sampler.go); faults are derived from counters that went up and
//     gauges that changed between two readings (faults.go). A process answers for itself at
//     /api/v1/node; the fleet-wide answers ask every registered admin address for it, in
//     parallel, and add them up.
package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/platoim/plato/internal/buildinfo"
	"github.com/platoim/plato/internal/opsapi"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/pipeline"
)

// askTimeout bounds one process's answer to a fleet-wide request.
const askTimeout = 3 * time.Second

// Config is what a process's console reads.
type Config struct {
	// Key is ops.key; empty refuses every API call (the page itself is served).
	Key string
	// AdminAddr is this process's admin address, so that the fleet view asks itself directly.
	AdminAddr string
	// Registry is where the fleet is; nil in a process that runs no role that joins it.
	Registry registry.Registry
	// Gatherer is the process's metrics registry (what /metrics serves).
	Gatherer prometheus.Gatherer
	// Nodes lists the IDs of the roles this process runs.
	Nodes func() []string
	// Apps lists the declared app IDs; nil: none.
	Apps func() []string
	// Pipelines and StateID are the state server's, when this process runs one.
	Pipelines *pipeline.Pipelines
	StateID   string
	Log       *slog.Logger
}

// Console serves one process's console.
type Console struct {
	cfg     Config
	sampler *sampler
	faults  *faultRing
	http    *http.Client
}

// New makes the console; Run samples the metrics, Register serves it.
func New(cfg Config) *Console {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	f := &faultRing{}
	return &Console{
		cfg: cfg, faults: f,
		sampler: newSampler(cfg.Gatherer, f, cfg.Log.With("component", "console")),
		http:    &http.Client{Timeout: askTimeout},
	}
}

// Run reads the process's metrics every two seconds until ctx ends.
func (c *Console) Run(ctx context.Context) { c.sampler.run(ctx) }

// Register serves the page and the API through handle (http.ServeMux patterns).
func (c *Console) Register(handle func(pattern string, h http.Handler)) {
	handle("GET /{$}", http.HandlerFunc(servePage))
	handle("GET /console/", http.HandlerFunc(serveAsset))
	auth := func(f http.HandlerFunc) http.Handler { return opsapi.Authenticated(c.cfg.Key, guard(c.cfg.Log, f)) }
	handle("GET "+PathFleet, auth(c.serveFleet))
	handle("GET "+PathApps, auth(c.serveApps))
	handle("GET "+PathPipelines, auth(c.servePipelines))
	handle("GET "+PathFaults, auth(c.serveFaults))
	handle("GET "+PathNode, auth(func(w http.ResponseWriter, _ *http.Request) { opsapi.WriteJSON(w, http.StatusOK, c.Report()) }))
}

// guard answers 500 rather than losing the process to a bug in a handler.
func guard(log *slog.Logger, f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				log.Error("ops console handler panicked", "path", r.URL.Path, "panic", v)
				opsapi.WriteError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		f(w, r)
	}
}

func (c *Console) serveFleet(w http.ResponseWriter, r *http.Request) {
	nodes, err := c.fleet(r.Context())
	if err != nil {
		opsapi.WriteError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	opsapi.WriteJSON(w, http.StatusOK, Fleet{At: time.Now(), Nodes: nodes})
}

// fleet lists every registered node, by role then ID.
func (c *Console) fleet(ctx context.Context) ([]FleetNode, error) {
	if c.cfg.Registry == nil {
		return nil, errors.New("this process runs no role that joins the fleet: ask a gateway's, state server's or ipconf's admin address")
	}
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	now := time.Now()
	var out []FleetNode
	for _, role := range []registry.Role{registry.RoleIPConf, registry.RoleGateway, registry.RoleState} {
		ns, err := c.cfg.Registry.List(ctx, role)
		if err != nil {
			return nil, fmt.Errorf("reading the registry: %w", err)
		}
		slices.SortFunc(ns, func(a, b registry.Node) int { return strings.Compare(a.ID, b.ID) })
		for _, n := range ns {
			out = append(out, fleetNode(n, now))
		}
	}
	return out, nil
}

func fleetNode(n registry.Node, now time.Time) FleetNode {
	f := FleetNode{
		ID: n.ID, Role: string(n.Role), Version: n.Version, StartedAt: n.StartedAt, UpdatedAt: n.UpdatedAt,
		Endpoint: n.Endpoint, WSEndpoint: n.WSEndpoint, RPCAddr: n.RPCAddr, AdminAddr: n.AdminAddr,
		Conns: n.Load.Conns, BytesInPerSec: n.Load.BytesInPerSec, BytesOutPerSec: n.Load.BytesOutPerSec,
		Draining: n.Load.Draining, Overloaded: n.Load.Overloaded,
	}
	if !n.StartedAt.IsZero() {
		f.UptimeSeconds = int64(now.Sub(n.StartedAt) / time.Second)
	}
	if n.Role == registry.RoleGateway {
		// ipconf's dynamic score (core/ipconf), from this one report rather than its window.
		left := max(n.Load.BandwidthBytesPerSec-n.Load.BytesInPerSec-n.Load.BytesOutPerSec, 0)
		s := math.Round(left/1e9*100) / 100
		f.LoadScore = &s
	}
	return f
}

// Report is this process's own figures.
func (c *Console) Report() NodeReport {
	oldest, latest := c.sampler.window(rateWindow)
	rep := NodeReport{Version: buildinfo.Get().Short(), Faults: c.faults.list()}
	if c.cfg.Nodes != nil {
		rep.Nodes = c.cfg.Nodes()
	}
	if latest != nil {
		rep.WindowSeconds = latest.at.Sub(oldest.at).Seconds()
		rep.Apps = appFigures(oldest, latest, c.declared())
	}
	if c.cfg.StateID != "" {
		// A state server without pipeline.dir is listed too, with no chain: its apps' signals
		// pass through no stage.
		np := &NodePipelines{Node: c.cfg.StateID, Apps: map[string]string{}, Chains: []ChainFigures{}}
		for _, app := range c.declared() {
			np.Apps[app] = ""
		}
		rep.Pipelines = np
	}
	if p := c.cfg.Pipelines; p != nil && rep.Pipelines != nil {
		np := rep.Pipelines
		for _, app := range c.declared() {
			np.Apps[app] = p.PipelineOf(app)
		}
		minuteAgo, _ := c.sampler.window(time.Minute)
		for _, ch := range p.Chains() {
			cf := ChainFigures{Pipeline: ch.Pipeline, Source: ch.Source}
			for _, st := range ch.Stages {
				cf.Stages = append(cf.Stages, stageFigures(ch.Pipeline, st, minuteAgo, latest))
			}
			np.Chains = append(np.Chains, cf)
		}
	}
	for i := range rep.Faults {
		rep.Faults[i].Node = strings.Join(rep.Nodes, ",")
	}
	return rep
}

func (c *Console) declared() []string {
	if c.cfg.Apps == nil {
		return nil
	}
	ids := c.cfg.Apps()
	slices.Sort(ids)
	return ids
}

// rate is how fast s grew from old to cur, per second.
func rate(old, cur *reading, s series) float64 {
	dt := cur.at.Sub(old.at).Seconds()
	if dt <= 0 {
		return 0
	}
	d := cur.value(s) - old.value(s)
	if d < 0 { // the counter started again (an app removed and declared again)
		d = cur.value(s)
	}
	return d / dt
}

// appFigures are the declared apps' figures in this process, and those of any app its metrics
// name that is not declared (any more).
func appFigures(old, cur *reading, declared []string) []AppFigures {
	apps := slices.Clone(declared)
	for k := range cur.values {
		switch k.metric {
		case mGatewayAppConns, mGatewayAppRefused, mStateAppUplinks, mStateAppPushes:
			if k.l[0] != "" && !slices.Contains(apps, k.l[0]) {
				apps = append(apps, k.l[0])
			}
		}
	}
	slices.Sort(apps)
	out := make([]AppFigures, 0, len(apps))
	for _, app := range apps {
		a := AppFigures{App: app, Connections: int64(cur.value(series{metric: mGatewayAppConns, l: [3]string{app}}))}
		ok := rate(old, cur, series{metric: mStateAppUplinks, l: [3]string{app, "ok"}})
		a.UplinkFailuresPerSec = rate(old, cur, series{metric: mStateAppUplinks, l: [3]string{app, "failed"}})
		a.UplinksPerSec = ok + a.UplinkFailuresPerSec
		a.PushesPerSec = rate(old, cur, series{metric: mStateAppPushes, l: [3]string{app}})
		a.RefusedPerSec = rate(old, cur, series{metric: mGatewayAppRefused, l: [3]string{app}})
		a.ErrorsPerSec = a.UplinkFailuresPerSec + a.RefusedPerSec
		out = append(out, a)
	}
	return out
}

func stageFigures(pipe string, st pipeline.StageStatus, old, cur *reading) StageFigures {
	f := StageFigures{StageStatus: st}
	if cur == nil {
		return f
	}
	l := [3]string{pipe, st.Name}
	f.Calls = int64(cur.value(series{metric: mStageCalls, l: l}))
	for k, v := range cur.values {
		if k.metric == mStageFailures && k.l[0] == pipe && k.l[1] == st.Name {
			f.Failures += int64(v)
		}
	}
	h, ok := cur.hists[series{metric: mStageLatency, l: l}]
	if !ok {
		return f
	}
	win, label := h, "since start"
	if old != nil && old != cur {
		var prev *histogram
		if o, ok := old.hists[series{metric: mStageLatency, l: l}]; ok {
			prev = &o
		}
		if d := h.sub(prev); d.count > 0 {
			win, label = d, "1m"
		}
	}
	p50, ok50 := win.quantile(0.50)
	p99, ok99 := win.quantile(0.99)
	if ok50 && ok99 {
		p50, p99 = math.Round(p50*1e6)/1e3, math.Round(p99*1e6)/1e3
		f.P50Ms, f.P99Ms, f.LatencyWindow = &p50, &p99, label
	}
	return f
}

// peer is one admin address to ask, with the nodes that share it.
type peer struct {
	addr  string
	nodes []string
}

// answer is one peer's report, or why it has none.
type answer struct {
	peer peer
	rep  NodeReport
	err  error
}

// askAll gets every registered process's report: this one's directly, the others' from their
// admin addresses with the caller's ops key, in parallel.
func (c *Console) askAll(ctx context.Context, auth string) ([]answer, error) {
	nodes, err := c.fleet(ctx)
	if err != nil {
		return nil, err
	}
	byAddr := map[string]*peer{}
	var peers []*peer
	for _, n := range nodes {
		if n.AdminAddr == "" {
			continue
		}
		p := byAddr[n.AdminAddr]
		if p == nil {
			p = &peer{addr: n.AdminAddr}
			byAddr[n.AdminAddr] = p
			peers = append(peers, p)
		}
		p.nodes = append(p.nodes, n.ID)
	}
	if byAddr[c.cfg.AdminAddr] == nil { // not registered (yet): still counts
		peers = append(peers, &peer{addr: c.cfg.AdminAddr})
	}
	out := make([]answer, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		out[i].peer = *p
		if p.addr == c.cfg.AdminAddr {
			out[i].rep = c.Report()
			continue
		}
		wg.Go(func() { out[i].rep, out[i].err = c.ask(ctx, p.addr, auth) })
	}
	wg.Wait()
	return out, nil
}

func (c *Console) ask(ctx context.Context, addr, auth string) (NodeReport, error) {
	var rep NodeReport
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+PathNode, nil)
	if err != nil {
		return rep, err
	}
	req.Header.Set("Authorization", auth)
	resp, err := c.http.Do(req)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return rep, fmt.Errorf("reading its answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e opsapi.Error
		_ = json.Unmarshal(body, &e)
		return rep, fmt.Errorf("%s: %s", resp.Status, e.Error)
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		return rep, fmt.Errorf("decoding its answer: %w", err)
	}
	return rep, nil
}

func unreachable(as []answer) []NodeError {
	var out []NodeError
	for _, a := range as {
		if a.err != nil {
			out = append(out, NodeError{Nodes: a.peer.nodes, AdminAddr: a.peer.addr, Error: a.err.Error()})
		}
	}
	return out
}

func (c *Console) serveApps(w http.ResponseWriter, r *http.Request) {
	as, err := c.askAll(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		opsapi.WriteError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	sum := map[string]*AppFigures{}
	var names []string
	res := Apps{At: time.Now(), Unreachable: unreachable(as), Apps: []AppFigures{}}
	for _, a := range as {
		if a.err != nil {
			continue
		}
		res.WindowSeconds = max(res.WindowSeconds, a.rep.WindowSeconds)
		for _, f := range a.rep.Apps {
			s := sum[f.App]
			if s == nil {
				s = &AppFigures{App: f.App}
				sum[f.App] = s
				names = append(names, f.App)
			}
			s.Connections += f.Connections
			s.UplinksPerSec += f.UplinksPerSec
			s.UplinkFailuresPerSec += f.UplinkFailuresPerSec
			s.PushesPerSec += f.PushesPerSec
			s.RefusedPerSec += f.RefusedPerSec
			s.ErrorsPerSec += f.ErrorsPerSec
		}
	}
	slices.Sort(names)
	for _, n := range names {
		res.Apps = append(res.Apps, *sum[n])
	}
	opsapi.WriteJSON(w, http.StatusOK, res)
}

func (c *Console) servePipelines(w http.ResponseWriter, r *http.Request) {
	as, err := c.askAll(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		opsapi.WriteError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	res := Pipelines{At: time.Now(), Unreachable: unreachable(as), Servers: []NodePipelines{}}
	for _, a := range as {
		if a.err == nil && a.rep.Pipelines != nil {
			res.Servers = append(res.Servers, *a.rep.Pipelines)
		}
	}
	slices.SortFunc(res.Servers, func(a, b NodePipelines) int { return strings.Compare(a.Node, b.Node) })
	opsapi.WriteJSON(w, http.StatusOK, res)
}

// maxFaults bounds the fleet's fault list.
const maxFaults = 500

func (c *Console) serveFaults(w http.ResponseWriter, r *http.Request) {
	as, err := c.askAll(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		opsapi.WriteError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	res := Faults{At: time.Now(), Unreachable: unreachable(as), Faults: []Fault{}}
	for _, a := range as {
		if a.err == nil {
			res.Faults = append(res.Faults, a.rep.Faults...)
		}
	}
	slices.SortStableFunc(res.Faults, func(a, b Fault) int { return b.At.Compare(a.At) })
	if len(res.Faults) > maxFaults {
		res.Faults = res.Faults[:maxFaults]
	}
	opsapi.WriteJSON(w, http.StatusOK, res)
}
