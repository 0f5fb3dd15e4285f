package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"time"

	"github.com/platoim/plato/internal/config"
)

// The failover scenario measures what docs/protocol.md §11.3 promises: when a state server dies,
// its gateway moves its connections to the state servers left, and devices keep their socket. It
// cannot run against a platform someone else started, since it kills part of it: it starts its own
// (failover_platform.go: NATS and the business server in this process, two state servers and a
// gateway as plato processes), connects the devices (failover_device.go, in worker processes as
// the other scenarios do), loads it with uplinks and at-least-once pushes, and then:
//
//  1. after Warmup, SIGKILLs state-1, which holds about half the devices (dids hash over the two);
//  2. for AfterKill, watches every device get an uplink through again: per device, the time from
//     the kill until an uplink it sent after the kill is ACKed with code 0;
//  3. restarts state-1 (same ID and address), logs new devices in until one lands on it, and keeps
//     the load for AfterRestart;
//  4. stops, drains, and checks: every uplink a device saw ACKed reached the business, every
//     accepted push was delivered or reported UNDELIVERED, and no device had to log in again
//     (from the devices' view and from the business's CONNECTED events).
//
// Pushes go through state-2, the survivor: a business server whose state server died sees its
// calls fail, which is not what this measures.

// killLead is how far ahead the workers are told the instant of the kill (or restart), so that
// every uplink sent after it is known to be; doubled on each retry when a worker confirms late.
const killLead = 300 * time.Millisecond

// newLoginsWanted is how many devices log in after the restart (at least one of them must land on
// the restarted state server, which can take longer).
const newLoginsWanted = 10

// newLoginsLimit bounds the logins after the restart.
const newLoginsLimit = 20 * time.Second

func (o *Options) setFailoverDefaults() {
	if o.Devices == 0 {
		o.Devices = DefaultFailoverDevices
	}
	if o.Rate == 0 {
		o.Rate = float64(o.Devices) * DefaultFailoverUplinksPerDevice
	}
	if o.PushRate == 0 {
		o.PushRate = max(1, float64(o.Devices)*DefaultFailoverPushesPerDevice)
	}
	if o.Warmup == 0 {
		o.Warmup = DefaultWarmup
	}
	if o.AfterKill == 0 {
		o.AfterKill = DefaultAfterKill
	}
	if o.AfterRestart == 0 {
		o.AfterRestart = DefaultAfterRestart
	}
	if o.GatewayProcs == 0 {
		o.GatewayProcs = 1
	}
}

// validatePhases checks the durations of the three phases of a scenario that kills a process
// and starts it again (failover, nats-restart).
func (o *Options) validatePhases(bad func(format string, a ...any)) {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"warmup", o.Warmup}, {"after-kill", o.AfterKill}, {"after-restart", o.AfterRestart}} {
		if d.v < 100*time.Millisecond || d.v > MaxDuration {
			bad("%s %v: must be 100ms to %v", d.name, d.v, MaxDuration)
		}
	}
}

// validateFailover checks the failover scenario's options (after defaults).
func (o *Options) validateFailover() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if o.Devices < 1 || o.Devices > MaxDevices {
		bad("devices %d: must be 1 to %d", o.Devices, MaxDevices)
	}
	if o.Rate <= 0 || o.Rate > MaxRate {
		bad("rate %v: must be above 0 and at most %d uplinks per second", o.Rate, MaxRate)
	}
	if o.PushRate < 0 || o.PushRate > MaxRate {
		bad("push rate %v: must be 0 to %d pushes per second", o.PushRate, MaxRate)
	}
	o.validatePhases(bad)
	if o.Duration != 0 {
		bad("failover has three phases: give --warmup, --after-kill and --after-restart instead of --duration")
	}
	if o.Window != 0 {
		bad("failover is an open loop at --rate: --window does not apply")
	}
	if o.Baseline || o.Business != "" || len(o.Gateways) > 0 {
		bad("failover starts its own platform and business server: --baseline, --business and --gateway do not apply")
	}
	o.validateDevices(bad)
	o.validateGatewayProcs(bad)
	if !config.ValidAppID(o.AppID) || o.Sink == "" {
		bad("app ID %q: must be a valid app ID (lower case letters, digits, - and _), and the sink not empty", o.AppID)
	}
	if o.PlatoCommand == nil {
		errs = append(errs, errNoPlatoCommand)
	}
	return errs
}

// runFailover runs the failover scenario; o is defaulted and valid.
func runFailover(ctx context.Context, o Options) (*Summary, error) {
	r := &runner{opts: o, runID: fmt.Sprintf("bench-%06x", rand.Uint32()&0xffffff)}
	var notes []string
	note := func(format string, a ...any) { notes = append(notes, fmt.Sprintf(format, a...)) }
	loadBefore := loadAverage()

	pl, err := startFoPlatform(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("starting the platform: %w", err)
	}
	defer pl.stop()

	r.workers, r.children = o.Workers, o.WorkerCommand != nil
	if r.workers == 0 {
		r.workers = gatewayWorkers(o)
	}
	gwDevices := make([]int, len(pl.gws))
	if r.children {
		note("devices spread over %d worker process(es) of at most %d devices each (this machine allows %s open files per process)", r.workers, o.PerWorker, openFileLimit())
	}
	r.bindSrc = canBind(sourceIP(0))
	r.prog = newProgress(o.Progress, o)
	defer r.prog.close()

	connectBy := time.Now().Add(connectBudget(o.Devices))
	deadline := connectBy.Add(o.Warmup + o.AfterKill + o.AfterRestart + o.Drain + newLoginsLimit + 2*procStartTimeout)
	var hs []*workerHandle
	var col *collector
	defer func() {
		if col != nil {
			col.discard()
		}
		for _, h := range hs {
			h.finish(15 * time.Second) // a worker says goodbye to its devices before it exits
		}
	}()
	var sources []string
	for k := range r.workers {
		h, err := r.startWorker(k)
		if err != nil {
			return nil, err
		}
		hs = append(hs, h)
		first, count := workerRange(o.Devices, r.workers, k)
		share := float64(count) / float64(o.Devices)
		// Worker k's devices all go to one gateway, the workers taking the gateways in turn.
		gw := pl.gws[k%len(pl.gws)]
		gwDevices[k%len(pl.gws)] += count
		spec := WorkerSpec{
			Role: roleFailover, Worker: k, Scenario: o.Scenario, AppID: o.AppID, AppKey: pl.appKey, RunID: r.runID,
			First: first, Count: count, Endpoints: []string{gw.addr}, TokenMode: tokenMint, TokenSecret: pl.tokenSecret,
			StateAddr: pl.stateAddr[survivor], Rate: o.Rate * share, PushRate: o.PushRate * share,
			Heartbeat: o.Heartbeat, Concurrency: o.Concurrency, Sink: o.Sink, Drain: o.Drain,
			ConnectBy: connectBy, Deadline: deadline,
		}
		if r.bindSrc {
			spec.SourceIP = sourceIP(k)
			sources = append(sources, spec.SourceIP)
		}
		if err := h.send(spec); err != nil {
			return nil, fmt.Errorf("worker %d: sending its spec: %w", k, err)
		}
	}
	if len(sources) > 0 {
		note("each worker's connections come from its own source address: %v", sources)
	}
	col = newCollector(r, hs)
	r.prog.phase("plato", "connecting", len(hs))
	readies, err := col.wait(ctx, repReady, connectBy.Add(15*time.Second), nil)
	if err != nil {
		return nil, err
	}
	var conn ConnectResult
	for _, rep := range readies {
		mergeConnect(&conn, rep.Connect)
	}
	if conn.Connected == 0 {
		return nil, fmt.Errorf("no device logged in (%s)", formatCounts(conn.Failures))
	}

	// Load.
	for _, h := range hs {
		if err := h.send("start"); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	cpu0 := cpuSample(pl.pids())
	r.prog.phase("plato", "warm-up", len(hs))
	if err := col.pump(ctx, start.Add(o.Warmup), nil); err != nil {
		return nil, err
	}

	// The kill.
	onVictim := make([]bool, o.Devices)
	killedDevices := 0
	for i := range o.Devices {
		if pl.biz.stateOf(didOf(r.runID, i)) == victim {
			onVictim[i] = true
			killedDevices++
		}
	}
	armed, err := r.arm(ctx, col, hs, cmdKill)
	if err != nil {
		return nil, err
	}
	time.Sleep(time.Until(armed))
	upgrade := o.Scenario == ScenarioUpgrade
	var killed time.Time
	var upgraded []upgradeOutcome
	if upgrade {
		killed = time.Now()
		r.prog.phase("plato", "upgrading", len(hs))
		if upgraded, err = pl.upgradeGateways(ctx, col, o.AfterKill); err != nil {
			return nil, err
		}
	} else {
		killed = pl.states[victim].kill()
		r.prog.phase("plato", "after kill", len(hs))
		if err := col.pump(ctx, killed.Add(o.AfterKill), nil); err != nil {
			return nil, err
		}
	}

	var running time.Duration
	var nl NewLogins
	if !upgrade {
		// The restart.
		restartAt, err := r.arm(ctx, col, hs, cmdRestart)
		if err != nil {
			return nil, err
		}
		time.Sleep(time.Until(restartAt))
		restarted := time.Now()
		r.prog.phase("plato", "after restart", len(hs))
		up := make(chan error, 1)
		go func() { up <- pl.startState(ctx, victim) }()
		if err := col.pump(ctx, restarted.Add(procStartTimeout+time.Second), func() bool {
			select {
			case err := <-up:
				up <- err
				return true
			default:
				return false
			}
		}); err != nil {
			return nil, err
		}
		if err := <-up; err != nil {
			return nil, fmt.Errorf("restarting %s: %w", foStateIDs[victim], err)
		}
		running = time.Since(restarted)
		logins := make(chan NewLogins, 1)
		go func() { logins <- newLogins(ctx, pl, r.runID, restarted) }()
		gotLogins := false
		if err := col.pump(ctx, restarted.Add(max(o.AfterRestart, running+newLoginsLimit+time.Second)), func() bool {
			if !gotLogins {
				select {
				case nl = <-logins:
					gotLogins = true
				default:
				}
			}
			return gotLogins && time.Since(restarted) >= o.AfterRestart
		}); err != nil {
			return nil, err
		}

	}

	// The end.
	measured := time.Since(start)
	cpu1 := cpuSample(pl.pids())
	r.prog.phase("plato", "draining", len(hs))
	stopAll(hs)
	results, err := col.wait(ctx, repResult, deadline, nil)
	if err != nil {
		return nil, err
	}
	r.prog.done()
	for _, h := range hs {
		h.finish(15 * time.Second)
	}
	hs = nil
	var frs []*FailoverWorkerResult
	var clientCPU float64
	var hist Histogram
	for _, rep := range results {
		if rep.Failover == nil {
			return nil, fmt.Errorf("worker %d sent no failover result", rep.Worker)
		}
		frs = append(frs, rep.Failover)
		hist.Merge(rep.Failover.Latency)
		if r.children {
			clientCPU += rep.Failover.CPUSeconds
		} else {
			clientCPU = rep.Failover.CPUSeconds
		}
	}
	// The state servers report an at-least-once push they could not deliver when its connection
	// ends: the workers' goodbyes just ended them all.
	waitUndelivered(ctx, pl.biz, frs, 10*time.Second)

	ff := computeFailover(foInputs{
		runID: r.runID, results: frs, killLag: int64(killed.Sub(armed)),
		onVictim:    func(i int) bool { return i >= 0 && i < len(onVictim) && onVictim[i] },
		connected:   pl.biz.connectedOf,
		delivered:   pl.biz.has,
		undelivered: pl.biz.undelivered,
	})
	ff.Conditions = FailoverConditions{
		Devices: o.Devices, UplinkRate: o.Rate, PushRate: o.PushRate, UplinkIntervalMs: round3(float64(o.Devices) / o.Rate * 1000),
		WarmupS: o.Warmup.Seconds(), AfterKillS: o.AfterKill.Seconds(), AfterRestartS: o.AfterRestart.Seconds(),
		StateServers: 2, Gateways: len(pl.gws),
		StatePingIntervalMs: float64(config.DefaultStatePing.Milliseconds()), StatePingsLost: config.DefaultStatePingsLost,
		RegistryTTLS: registryTTL.Seconds(),
	}
	ff.Killed = KilledState{ID: foStateIDs[victim], Survivor: foStateIDs[survivor], Devices: killedDevices, LagUs: round3(float64(killed.Sub(armed)) / 1e3)}
	ff.Restart.RunningMs = nsToMs(int64(running))
	ff.Restart.NewLogins = nl
	ff.Gateway = gatewayFigures(pl, killed)
	if upgrade {
		ff.Upgrade = upgradeFigures(upgraded, pl.gws, gwDevices, frs, o)
		ff.Killed = KilledState{}
	}

	ff.Uplinks.BusinessReceived, ff.Uplinks.BusinessDuplicates, ff.Pushes.UndeliveredEvents = pl.biz.fleetCounts(r.runID, o.Devices)

	s := &Summary{Scenario: o.Scenario, Devices: o.Devices, Duration: round3(measured.Seconds()), Mode: "open", Rate: o.Rate, Failover: &ff}
	if r.children {
		s.Workers = r.workers
	}
	f := &s.Figures
	f.Connected, f.Sent, f.Acked = conn.Connected, ff.Uplinks.Sent, ff.Uplinks.Acked
	f.Refused = ff.Uplinks.Ack1210
	for _, n := range ff.Uplinks.Refused {
		f.Refused += uint64(n)
	}
	f.Lost = ff.Uplinks.Unanswered + ff.Uplinks.UnknownOnClose
	f.Duplicated = ff.Uplinks.BusinessDuplicates
	f.Skipped = ff.Uplinks.Skipped
	f.Latency, f.hist = latencyOf(&hist), &hist
	f.ConnectLatency, f.ConnectFailures = latencyOf(conn.Latency), conn.Failures
	if secs := float64(conn.End-conn.Start) / 1e9; secs > 0 {
		f.ConnectRate = round3(float64(conn.Connected) / secs)
	}
	if secs := measured.Seconds(); secs > 0 {
		f.MsgsPerSec = round3(float64(f.Acked) / secs)
		f.ServerCPU = round3(cpuSince(cpu0, cpu1) / secs)
		f.ClientCPU = round3(clientCPU / secs)
	}
	for _, p := range ff.Phases {
		f.Codes = mergeCounts(f.Codes, p.Codes)
		f.Dropped = mergeCounts(f.Dropped, p.Dropped)
	}
	for _, fr := range frs {
		f.Heartbeats.Sent += fr.HeartbeatSent
		f.Heartbeats.Acked += fr.HeartbeatAck
		f.OtherDownlinks += fr.Foreign
		f.Retransmitted += fr.Retransmitted
	}
	s.LoadAverage = &LoadAverage{Before: loadBefore, After: loadAverage()}
	if upgrade {
		notes = append(notes, upgradeNotes(s, o)...)
	} else {
		notes = append(notes, failoverNotes(s, o)...)
	}
	note("cores busy during the run: state servers and gateway %.2f (the killed process's CPU up to its death is not counted), bench %.2f (the devices; the business server and NATS run in the bench's parent process, not counted), of %d on this machine; load average before %s, after %s (/proc/loadavg: 1, 5, 15 minutes)",
		f.ServerCPU, f.ClientCPU, runtime.NumCPU(), loadBefore, s.LoadAverage.After)
	s.Notes = notes
	return s, nil
}

// arm tells every worker the instant of the kill (or restart), a little ahead, and waits for each
// to confirm it. A worker that confirms late makes it try again further ahead.
func (r *runner) arm(ctx context.Context, col *collector, hs []*workerHandle, cmd string) (time.Time, error) {
	lead := killLead
	for range 4 {
		at := time.Now().Add(lead)
		for _, h := range hs {
			if err := h.send(fmt.Sprintf("%s %d", cmd, at.UnixNano())); err != nil {
				return time.Time{}, err
			}
		}
		confirmed := func() bool {
			for _, h := range hs {
				if rep, ok := col.got[repArmed][h.id]; !ok || rep.At != at.UnixNano() {
					return false
				}
			}
			return true
		}
		if err := col.pump(ctx, at, confirmed); err != nil {
			return time.Time{}, err
		}
		if confirmed() && time.Now().Before(at) {
			return at, nil
		}
		lead *= 2
	}
	return time.Time{}, fmt.Errorf("the workers did not confirm the instant of the %s in time: the machine is too busy", cmd)
}

// pump handles the workers' reports until until, or until done says so (polled), ctx ends, or a
// worker fails or ends.
func (c *collector) pump(ctx context.Context, until time.Time, done func() bool) error {
	timer := time.NewTimer(time.Until(until))
	defer timer.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for done == nil || !done() {
		select {
		case e, ok := <-c.ev:
			switch {
			case !ok:
				return errors.New("every worker ended")
			case e.eof:
				c.gone[e.worker] = true
				return fmt.Errorf("worker %d ended before it was told to stop%s", e.worker, c.hs[e.worker].tail.suffix())
			case e.rep.Type == repError:
				return fmt.Errorf("worker %d: %s%s", e.worker, e.rep.Error, c.hs[e.worker].tail.suffix())
			case e.rep.Type == repTick:
				c.r.prog.tick(e.rep)
			default:
				if c.got[e.rep.Type] == nil {
					c.got[e.rep.Type] = map[int]Report{}
				}
				c.got[e.rep.Type][e.worker] = e.rep
			}
		case <-poll.C:
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("interrupted: %w", ctx.Err())
		}
	}
	return nil
}

// newLogins logs new devices in after the restart, one uplink each, until newLoginsWanted did and
// one of them came through the restarted state server, or newLoginsLimit passes.
func newLogins(ctx context.Context, pl *foPlatform, runID string, restarted time.Time) NewLogins {
	var nl NewLogins
	end := time.Now().Add(newLoginsLimit)
	for k := 0; (nl.Attempted < newLoginsWanted || nl.OnRestarted == 0) && time.Now().Before(end) && ctx.Err() == nil; k++ {
		nl.Attempted++
		c, err := pl.probe(ctx, pl.gws[0].addr, fmt.Sprintf("%s-new-%d", runID, k))
		if err != nil {
			nl.Failures = mergeCounts(nl.Failures, map[string]int{err.Error(): 1})
			time.Sleep(50 * time.Millisecond)
			continue
		}
		c.close()
		nl.OK++
		if c.state == victim {
			if nl.OnRestarted == 0 {
				nl.FirstOnRestartedMs = nsToMs(int64(time.Since(restarted)))
			}
			nl.OnRestarted++
		}
	}
	return nl
}

// waitUndelivered waits, at most limit, until the business has an UNDELIVERED event for every
// push the devices miss.
func waitUndelivered(ctx context.Context, b *foBusiness, frs []*FailoverWorkerResult, limit time.Duration) {
	end := time.Now().Add(limit)
	for time.Now().Before(end) && ctx.Err() == nil {
		all := true
		for _, fr := range frs {
			for _, m := range fr.Missing {
				all = all && b.undelivered(m.MsgID)
			}
		}
		if all {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// gatewayFigures read the gateway's view: when it logged the state server lost, its counters, and
// the platform processes' warnings and errors since the kill.
func gatewayFigures(pl *foPlatform, killed time.Time) GatewayFigures {
	g := GatewayFigures{DetectedMs: -1}
	for _, l := range pl.gws[0].proc.logsSince(killed) {
		if strings.Contains(l.text, "state server lost") {
			g.DetectedMs = nsToMs(int64(max(0, l.logTime().Sub(killed))))
			break
		}
	}
	g.StatesLost = pl.gatewayMetric("plato_gateway_state_servers_lost_total")
	g.ConnectionsMoved = pl.gatewayMetric("plato_gateway_connections_moved_total")
	seen := map[string]bool{}
	procs := append([]*platoProc{}, pl.states[:]...)
	for _, g := range pl.gws {
		procs = append(procs, g.proc)
	}
	for _, p := range procs {
		for _, l := range p.logsSince(killed) {
			if strings.Contains(l.text, "level=ERROR") {
				g.Errors++
			} else {
				g.Warnings++
			}
			if msg := logMessage(l.text); !seen[msg] && len(g.samples) < maxLogSamples {
				seen[msg] = true
				g.samples = append(g.samples, p.name+": "+msg)
			}
		}
	}
	return g
}

// maxLogSamples bounds the distinct log messages the notes quote.
const maxLogSamples = 6

// logMessage is a slog text line without its time, shortened.
func logMessage(line string) string {
	if _, rest, ok := strings.Cut(line, " level="); ok {
		line = "level=" + rest
	}
	if len(line) > 300 {
		line = line[:300] + "..."
	}
	return line
}

// failoverNotes explain the figures.
func failoverNotes(s *Summary, o Options) []string {
	ff := s.Failover
	out := []string{
		fmt.Sprintf("the bench ran its own platform: NATS (embedded) and its business server in this process, state servers %s and %s and one gateway as plato processes, all on 127.0.0.1; it killed %s (SIGKILL), which held %d of the devices, after %v, and restarted it (same ID and address) %v later",
			foStateIDs[victim], foStateIDs[survivor], foStateIDs[victim], ff.Killed.Devices, o.Warmup, o.AfterKill),
		fmt.Sprintf("each device sent an uplink every %.0f ms (%g/s in total) and the business pushed %g/s at least once through %s; recovery runs, per device, from the kill until an uplink it sent after the kill is ACKed with code 0, so it includes the wait for its first such uplink (up to %.0f ms); from_first_try leaves that wait out",
			ff.Conditions.UplinkIntervalMs, o.Rate, o.PushRate, foStateIDs[survivor], ff.Conditions.UplinkIntervalMs),
		"devices act as the protocol asks (docs/protocol.md §8.1, §11.3): an uplink answered 1210 is sent again at once with a new seq (uplinks.resent), and a connection that ends is logged in again (relogins: the goal is 0)",
	}
	if g := ff.Goals; !g.EveryDeviceUnder1s || !g.NoRelogin || !g.NoAckedUplinkLost || !g.EveryPushAccounted {
		out = append(out, fmt.Sprintf("goals not met: %+v", g))
	}
	if ff.Uplinks.BusinessDuplicates > 0 {
		out = append(out, fmt.Sprintf("the business got %d uplinks twice: uplinks answered 1210 that had reached it before the state server died, sent again (their outcome was unknown, as 1210 says)", ff.Uplinks.BusinessDuplicates))
	}
	if ff.Pushes.Unaccounted > 0 {
		out = append(out, fmt.Sprintf("%d accepted at-least-once pushes were neither delivered nor reported UNDELIVERED to the business", ff.Pushes.Unaccounted))
	}
	if g := ff.Gateway; g.Errors > 0 || g.Warnings > 0 {
		out = append(out, fmt.Sprintf("from the kill on, the platform processes logged %d errors and %d warnings, among them: %s", g.Errors, g.Warnings, strings.Join(g.samples, " | ")))
	}
	if nl := ff.Restart.NewLogins; nl.OnRestarted == 0 {
		out = append(out, fmt.Sprintf("no new login came through the restarted %s (%d tried, %d logged in)", foStateIDs[victim], nl.Attempted, nl.OK))
	}
	if n := len(s.ConnectFailures); n > 0 {
		out = append(out, fmt.Sprintf("%d of %d devices did not connect; see connect_failures", s.Devices-s.Connected, s.Devices))
	}
	return out
}
