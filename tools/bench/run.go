package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"time"

	"github.com/platoim/plato/internal/credential"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/token"
)

// Run runs one bench: the scenario against Plato, then, with Options.Baseline, the same against the
// echo server, and returns the summary. Every worker it starts has stopped when it returns.
// Cancelling ctx stops the measured phase early; the summary then covers what was measured.
func Run(ctx context.Context, o Options) (*Summary, error) {
	o.setDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	switch o.Scenario {
	case ScenarioFailover, ScenarioUpgrade:
		return runFailover(ctx, o)
	case ScenarioSlowConsumers:
		return runSlow(ctx, o)
	}
	if o.Scenario == ScenarioOverload {
		return runOverload(ctx, o)
	}
	if o.Scenario == ScenarioCrashloop {
		return runCrashloop(ctx, o)
	}
	if o.Scenario == ScenarioNATSRestart {
		return runNATSRestart(ctx, o)
	}
	if o.Scenario == ScenarioAppsLive {
		return runAppsLive(ctx, o)
	}
	if o.Scenario == ScenarioMigrate {
		return runMigrate(ctx, o)
	}
	if o.TokenSecret != "" && len(o.TokenSecret) < token.MinSecretLen {
		return nil, fmt.Errorf("token secret: at least %d bytes", token.MinSecretLen)
	}
	loadBefore := loadAverage()
	r := &runner{opts: o, runID: fmt.Sprintf("bench-%06x", rand.Uint32()&0xffffff)}
	var notes []string
	note := func(format string, a ...any) { notes = append(notes, fmt.Sprintf(format, a...)) }

	r.workers, r.children = o.Workers, o.WorkerCommand != nil
	if r.workers == 0 {
		r.workers = (o.Devices + o.PerWorker - 1) / o.PerWorker
	}
	switch {
	case r.children:
		note("devices spread over %d worker process(es) of at most %d devices each (this machine allows %s open files per process)", r.workers, o.PerWorker, openFileLimit())
	case r.workers > 1:
		note("%d workers run in this process (no worker command): they share its open-file limit of %s", r.workers, openFileLimit())
	}

	endpoints, err := r.endpoints(ctx)
	if err != nil {
		return nil, err
	}
	if len(endpoints) > 1 {
		note("devices spread round-robin over %d gateway endpoints: %v", len(endpoints), endpoints)
	}
	if o.Transport == TransportWS {
		note("devices connected over WebSocket (one Plato frame per binary message) to %v", endpoints)
	}
	r.bindSrc = allIPv4Loopback(endpoints) && canBind(sourceIP(0))
	tokenMode := tokenIPConf
	if o.TokenSecret != "" {
		tokenMode = tokenMint
		note("tokens minted locally with the token secret (ipconf is not in the connect path)")
	} else {
		note("each device fetched its token from ipconf, one HTTP call per device, inside its connect latency; --token-secret mints them locally")
	}
	pids, byEndpoint := o.GatewayPIDs, map[string][]int(nil)
	if len(pids) == 0 {
		if pids, byEndpoint, err = gatewayProcesses(endpoints); err != nil {
			note("gateway RSS not measured: %v (give --gateway-pid)", err)
		}
	}
	notes = append(notes, rssNotes(pids, o)...)

	var sink *sinkBusiness
	if o.Business != "" {
		if sink, err = startSink(o.Business, o.WebhookSecret, o.BusinessRate); err != nil {
			return nil, err
		}
		defer sink.stop()
	}
	r.prog = newProgress(o.Progress, o)
	defer r.prog.close()
	plato, err := r.runTarget(ctx, target{name: "plato", endpoints: endpoints, tokenMode: tokenMode, stateAddr: o.StateAddr, stateHTTP: o.StateHTTP, pids: pids, byEndpoint: byEndpoint})
	if err != nil {
		return nil, fmt.Errorf("bench against plato: %w", err)
	}
	if r.bindSrc {
		note("each worker's connections come from its own source address: %v", plato.sourceAddr)
	}
	if plato.childStarted > 0 || plato.childEnded > 0 {
		note("during the measured phase %d child process(es) of the server ended and %d started: a plugin process was restarted (the platform's log says why), so some signals skipped or failed its stage", plato.childEnded, plato.childStarted)
	}
	s := &Summary{Scenario: o.Scenario, Devices: o.Devices, Duration: round3(plato.measured.Seconds()), Figures: r.figures(plato)}
	if o.Scenario == ScenarioConnect && (s.Heartbeats.Sent == 0 || s.Heartbeats.Acked == 0) {
		// The memory figure is that of connections that really heartbeat: without one, it is not.
		s.BytesPerConn, s.Servers = 0, nil
		s.BytesPerConnRefused = fmt.Sprintf("no heartbeat was sent and answered during the %v hold (%d sent, %d answered): hold longer than the heartbeat interval (--duration, --heartbeat) for a heartbeating figure", plato.measured.Round(time.Millisecond), s.Heartbeats.Sent, s.Heartbeats.Acked)
	}
	if r.children {
		s.Workers = r.workers
	}
	if sink != nil {
		rec, dup := sink.counts()
		s.Business = &BusinessFigures{Received: rec, Duplicated: dup}
		where := "its CPU is in bench_parent_cpu_cores (neither server_cpu_cores nor client_cpu_cores)"
		if !r.children {
			where = "its CPU is in client_cpu_cores, with the devices'"
		}
		how := "over Kitex"
		if sink.url != "" {
			how = "by signed webhooks, each verified"
		}
		note("uplinks were answered by the bench's own business server at %s (%s), which accepts every uplink and pushes nothing; it runs in the bench's parent process: %s", sink.addr(), how, where)
		if o.Scenario == ScenarioUplink && rec == 0 && s.Acked > 0 {
			note("warning: the bench's business server received no uplink: the platform routes app %q elsewhere (plato up --set apps.%s.business=%s)", o.AppID, o.AppID, sink.addr())
		}
	}
	if o.Scenario == ScenarioUplink || o.Scenario == ScenarioDownlink {
		s.Mode, s.Window, s.Rate = "closed", o.Window, 0
		if o.Rate > 0 {
			s.Mode, s.Window, s.Rate = "open", 0, o.Rate
		}
	}
	if o.Baseline && ctx.Err() == nil {
		base, servers, err := r.runBaseline(ctx)
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		bf := r.figures(base)
		s.Baseline, s.Ratios = &bf, ratios(&s.Figures, &bf)
		if o.BaselineRate > 0 && o.BaselineRate != o.Rate {
			// Rates offered apart do not divide into a throughput ratio.
			delete(s.Ratios, "msgs_per_sec")
			s.BaselineRate = o.BaselineRate
			note("baseline rate: the echo server was offered %g messages/s, Plato %g; cores busy in all (server, bench, bench parent): Plato's pass %.2f, the baseline's %.2f; the latency ratios compare the two at those loads", o.BaselineRate, o.Rate, s.coresBusy(), bf.coresBusy())
		}
		where := "in this process (no worker command), so its bytes_per_conn and server_cpu_cores include the bench's own"
		if r.opts.WorkerCommand != nil {
			where = fmt.Sprintf("in %d process(es) of its own", servers)
		}
		note("baseline: a bare netpoll echo server %s, same client and settings, no token check, state, pipeline or business hop; ratios are plato / baseline", where)
	}
	s.LoadAverage = &LoadAverage{Before: loadBefore, After: loadAverage()}
	parent := ""
	if r.children {
		parent = fmt.Sprintf(" (its workers; its parent process %.2f)", s.ParentCPU)
	}
	note("cores busy during the measured phase: server process(es) %.2f, bench %.2f%s, of %d on this machine; load average before %s, after %s (/proc/loadavg: 1, 5, 15 minutes)", s.ServerCPU, s.ClientCPU, parent, runtime.NumCPU(), s.LoadAverage.Before, s.LoadAverage.After)
	s.Notes = append(notes, scenarioNotes(s, o)...)
	if plato.stopped {
		s.Notes = append(s.Notes, "interrupted: the measured phase was cut short")
	}
	return s, nil
}

// endpoints are the gateways to use: --gateway, or ipconf's list for a probe did.
func (r *runner) endpoints(ctx context.Context) ([]string, error) {
	eps := r.opts.Gateways
	if len(eps) == 0 && r.opts.Transport == TransportWS {
		var err error
		if eps, err = r.wsEndpoints(ctx); err != nil {
			return nil, err
		}
	}
	if len(eps) == 0 {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		probe := r.runID + "-probe"
		cred, err := credential.MintHS256(r.opts.AppID, r.opts.CredentialKID, r.opts.CredentialSecret, probe, probe, time.Now(), time.Minute)
		if err != nil {
			return nil, err
		}
		list, err := client.FetchEndpoints(fctx, nil, r.opts.IPConfURL, r.opts.AppID, probe, cred)
		if err != nil {
			return nil, fmt.Errorf("asking ipconf at %s for gateways (is the platform up? `make up`): %w", r.opts.IPConfURL, err)
		}
		for _, e := range list.Endpoints {
			eps = append(eps, e.Addr)
		}
	}
	for _, e := range eps {
		if err := checkLoopbackAddr("gateway", endpointAddr(e)); err != nil {
			return nil, err
		}
	}
	return eps, nil
}

// runBaseline starts the echo servers (one per PerWorker devices, as gateways would be) and runs
// the scenario against them.
func (r *runner) runBaseline(ctx context.Context) (*targetResult, int, error) {
	o := r.opts
	n := (o.Devices + o.PerWorker - 1) / o.PerWorker
	var hs []*workerHandle
	var col *collector
	defer func() {
		if col != nil {
			col.discard()
		}
		for _, h := range hs {
			h.finish(5 * time.Second)
		}
	}()
	deadline := time.Now().Add(connectBudget(o.Devices) + o.Duration + o.Drain + time.Minute)
	for i := range n {
		h, err := r.startWorker(i)
		if err != nil {
			return nil, 0, err
		}
		hs = append(hs, h)
		if err := h.send(WorkerSpec{Role: roleEcho, Worker: i, Listen: "127.0.0.1:0", Deadline: deadline}); err != nil {
			return nil, 0, err
		}
	}
	col = newCollector(r, hs)
	ls, err := col.wait(ctx, repListening, time.Now().Add(15*time.Second), nil)
	if err != nil {
		return nil, 0, err
	}
	var endpoints []string
	var pids []int
	byEndpoint := map[string][]int{}
	for i := range n {
		endpoints = append(endpoints, ls[i].Addr)
		if hs[i].child {
			pids = append(pids, ls[i].PID)
			byEndpoint[ls[i].Addr] = []int{ls[i].PID}
		}
	}
	if len(pids) == 0 {
		pids, byEndpoint = []int{os.Getpid()}, nil
	}
	res, err := r.runTarget(ctx, target{name: "baseline", endpoints: endpoints, tokenMode: tokenNone, echoPush: true, rate: o.BaselineRate, pids: pids, byEndpoint: byEndpoint})
	return res, n, err
}

func allIPv4Loopback(eps []string) bool {
	for _, e := range eps {
		host, _, err := net.SplitHostPort(endpointAddr(e))
		ip := net.ParseIP(host)
		if err != nil || ip == nil || ip.To4() == nil || !ip.IsLoopback() {
			return false
		}
	}
	return len(eps) > 0
}

// canBind reports whether this machine lets a socket bind to ip (Linux routes all of 127/8 to lo).
func canBind(ip string) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }
