package bench

import (
	"context"
	"fmt"
	"os"
	"time"
)

// runner is the parent: it splits the devices over workers, runs the phases in lock step (all
// workers connect, then all start), merges what they report, and stops them.
type runner struct {
	opts     Options
	runID    string
	workers  int  // device workers
	children bool // workers are processes (else in this process)
	bindSrc  bool // give each worker its own source address
	passes   int  // targets run so far
	prog     *progress
}

// target is what one pass of the scenario runs against: Plato, or the baseline echo servers.
type target struct {
	name      string
	endpoints []string
	tokenMode string
	stateAddr string
	stateHTTP string
	echoPush  bool
	rate      float64 // the open loop's messages per second in total, when not Options.Rate
	pids      []int   // the server processes whose RSS is measured
	// byEndpoint maps each endpoint to the processes listening on it, when known, for the
	// per-process breakdown.
	byEndpoint map[string][]int
}

// targetResult is one pass, merged over the workers.
type targetResult struct {
	connect    ConnectResult
	res        WorkerResult
	hist       Histogram
	measured   time.Duration
	stopped    bool // interrupted
	endpoints  []string
	byEndpoint map[string][]int
	sourceAddr []string
	// Memory over the connect phase: the workers' own RSS growth, the servers', and the servers'
	// per process.
	clientRSS, serverRSS int64
	rssGrowth            map[int]int64
	// CPU seconds used during the measured phase by the server processes (and their children) and
	// by the workers (the parent's own process when they run in it).
	serverCPU, clientCPU float64
	// parentCPU is this process's own CPU in the measured phase when the devices run in workers
	// of their own (runner.children): the business server's, mostly.
	parentCPU float64
	// childStarted and childEnded count the servers' child processes (plugins) that started or
	// ended during the measured phase: a plugin restarted.
	childStarted, childEnded int
	// Broadcast: what each round's push returned, the calls per round, and why targets were not sent.
	rounds    []roundOutcome
	calls     int
	pushCodes map[string]int
	route     string // the path Plato's pushes took (direct, broadcast)
}

// connectBudget bounds the connect phase: generous for the slowest honest case (a token from ipconf
// per device), but finite.
func connectBudget(devices int) time.Duration {
	return min(30*time.Second+time.Duration(devices)*time.Millisecond, 5*time.Minute)
}

// workerRange is worker k's share of n devices over w workers.
func workerRange(n, w, k int) (first, count int) {
	base, extra := n/w, n%w
	first = k*base + min(k, extra)
	count = base
	if k < extra {
		count++
	}
	return first, count
}

// sourceIP is worker k's local address: 127.0.0.2, 127.0.0.3, ... Each address has its own
// ephemeral port range towards a gateway, which is how one box opens more than 64k connections.
func sourceIP(k int) string {
	n := k + 2
	return fmt.Sprintf("127.%d.%d.%d", n>>16&255, n>>8&255, n&255)
}

// runTarget runs the scenario once against tg.
func (r *runner) runTarget(ctx context.Context, tg target) (*targetResult, error) {
	o := r.opts
	rate := o.Rate
	if tg.rate > 0 {
		rate = tg.rate
	}
	out := &targetResult{endpoints: tg.endpoints, byEndpoint: tg.byEndpoint}
	defer func() { r.passes++ }()
	defer r.prog.done()
	connectBy := time.Now().Add(connectBudget(o.Devices))
	deadline := connectBy.Add(o.Duration + o.Drain + 30*time.Second)
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
	before := map[int]int64{}
	for _, p := range tg.pids {
		before[p] = rssOf(p)
	}
	for k := range r.workers {
		h, err := r.startWorker(k)
		if err != nil {
			return nil, err
		}
		hs = append(hs, h)
		first, count := workerRange(o.Devices, r.workers, k)
		spec := WorkerSpec{
			Role: roleDevices, Worker: k, Scenario: o.Scenario, AppID: o.AppID, AppKey: o.AppKey, RunID: r.runID + "-" + tg.name,
			First: first, Count: count, Endpoints: tg.endpoints, TokenMode: tg.tokenMode, TokenSecret: o.TokenSecret,
			CredentialSecret: o.CredentialSecret, CredentialKID: o.CredentialKID, IPConfURL: o.IPConfURL, StateAddr: tg.stateAddr, StateHTTP: tg.stateHTTP, EchoPush: tg.echoPush, Window: o.Window, Batch: o.Batch,
			Rate: rate * float64(count) / float64(o.Devices), Duration: o.Duration, Interval: o.Interval,
			Heartbeat: o.Heartbeat, Concurrency: o.Concurrency, Sink: o.Sink, Drain: o.Drain,
			ConnectRate: o.ConnectRate * float64(count) / float64(o.Devices), ConnectBy: connectBy, Deadline: deadline,
		}
		if r.bindSrc {
			// Each pass its own addresses, so the baseline does not start among the previous
			// pass's TIME_WAIT sockets.
			spec.SourceIP = sourceIP(k + r.passes*256)
			out.sourceAddr = append(out.sourceAddr, spec.SourceIP)
		}
		if err := h.send(spec); err != nil {
			return nil, fmt.Errorf("worker %d: sending its spec: %w", k, err)
		}
	}
	col = newCollector(r, hs)
	r.prog.phase(tg.name, "connecting", len(hs))
	readies, err := col.wait(ctx, repReady, connectBy.Add(15*time.Second), nil)
	if err != nil {
		return nil, err
	}
	for _, rep := range readies {
		mergeConnect(&out.connect, rep.Connect)
		out.clientRSS += rep.Connect.RSSAfter - rep.Connect.RSSBefore
	}
	out.rssGrowth = map[int]int64{}
	for _, p := range tg.pids {
		out.rssGrowth[p] = rssOf(p) - before[p]
		out.serverRSS += out.rssGrowth[p]
	}

	var stopWhen func() bool
	waitBroadcast := func() {}
	start := time.Now()
	cpu0 := cpuSample(tg.pids)
	self0 := cpuSeconds(os.Getpid())
	// The servers' CPU is sampled when the measured phase ends, not after the drain.
	sampled := make(chan struct{})
	sample := func() {
		after := cpuSample(tg.pids)
		out.serverCPU = cpuSince(cpu0, after)
		if r.children {
			out.parentCPU = max(0, cpuSeconds(os.Getpid())-self0)
		}
		out.childStarted, out.childEnded = churn(cpu0, after)
	}
	sampler := time.AfterFunc(o.Duration, func() {
		sample()
		close(sampled)
	})
	if ctx.Err() == nil {
		r.prog.phase(tg.name, "running", len(hs))
		for _, h := range hs {
			if err := h.send("start"); err != nil {
				return nil, err
			}
		}
		if o.Scenario == ScenarioBroadcast {
			stopWhen, waitBroadcast, err = r.startBroadcast(ctx, tg, start, out)
			if err != nil {
				stopAll(hs)
				return nil, err
			}
		}
	}
	results, err := col.wait(ctx, repResult, deadline, stopWhen)
	waitBroadcast()
	if sampler.Stop() { // ended before the phase's end (interrupted): sample now
		sample()
	} else {
		<-sampled
	}
	if err != nil {
		return nil, err
	}
	out.measured = min(time.Since(start), o.Duration)
	out.stopped = ctx.Err() != nil
	for _, rep := range results {
		mergeResult(&out.res, rep.Result)
		out.hist.Merge(rep.Result.Latency)
		if r.children {
			out.clientCPU += rep.Result.CPUSeconds
		} else {
			out.clientCPU = rep.Result.CPUSeconds // every in-process worker reads the same process
		}
	}
	return out, nil
}
