package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/protocol"
)

// The crashloop scenario measures how a pipeline stage lives through its plugin being killed
// again and again (docs/pipeline.md, "Crash loops"). It starts its own platform
// (crashloop_platform.go: one state server whose app pipeline has one fail_closed stage running
// the plugin under test, one gateway), loads it with uplinks from a few devices, and then, Kills
// times, Interval apart: finds the stage's plugin process among the state server's children,
// SIGKILLs it, and measures the relaunch: the time from the kill until an uplink sent after the
// kill is ACKed with code 0, which is the stage answering again. Meanwhile uplinks are answered
// 1306 by the stage's policy; how fast shows that nothing waits on the dead process. Then it
// waits for the crash-loop breaker to close, and counts the killed processes left as zombies.

// Crashloop defaults and limits.
const (
	DefaultCrashloopKills   = 50
	DefaultCrashloopDevices = 20
	DefaultCrashloopRate    = 500 // uplinks per second in total: one every 2 ms
	DefaultCrashloopWarmup  = 2 * time.Second
	// DefaultCrashloopPlugin is the reference auth stage as `make plugins` builds it: it handles
	// uplinks (its ACL), and lets every uplink of a logged-in device through.
	DefaultCrashloopPlugin = "bin/plugins/auth"
	MaxKills               = 1000
	// clRecoverLimit bounds the wait for the stage to answer again after a kill; a kill that
	// exceeds it ends the kills, and the summary says so.
	clRecoverLimit = 30 * time.Second
	// clCloseLimit bounds the wait for the breaker to close after the last kill, beyond
	// pipeline.breaker.recover_after.
	clCloseLimit = config.DefaultBreakerRecoverAfter + 15*time.Second
)

// CrashLoopFigures are the crashloop scenario's account.
type CrashLoopFigures struct {
	Conditions CrashLoopConditions `json:"conditions"`
	// Kills is how many times the plugin was SIGKILLed; Recovered after how many of them the stage
	// answered again.
	Kills     int `json:"kills"`
	Recovered int `json:"recovered"`
	// Relaunch is, per kill, the time from the kill until the first ACK (code 0) of an uplink
	// sent after it: the stage answering again. It includes up to one uplink interval of waiting
	// for that uplink.
	Relaunch Quantiles `json:"relaunch"`
	// RelaunchOver1s counts the kills whose relaunch took longer than 1 s.
	RelaunchOver1s int `json:"relaunch_over_1s"`
	// PolicyAnswers are uplinks answered 1306 by the stage's fail_closed policy (they were sent
	// while the plugin was down), and PolicyLatency how long each waited for that answer:
	// nothing waits on a dead process, so this stays far below the stage's timeout.
	PolicyAnswers uint64    `json:"policy_answers"`
	PolicyLatency Quantiles `json:"policy_answer_latency"`
	// OtherCodes count the other non-zero UplinkAck codes.
	OtherCodes map[string]int `json:"other_codes,omitempty"`
	// ZombiesLeft are killed plugin processes still unreaped (zombie children of the state
	// server) at the end; MaxZombies the most seen before a kill.
	ZombiesLeft int              `json:"zombies_left"`
	MaxZombies  int              `json:"max_zombies"`
	Breaker     CrashLoopBreaker `json:"breaker"`
}

// CrashLoopConditions are what the figures were measured under.
type CrashLoopConditions struct {
	Plugin           string  `json:"plugin"`
	Devices          int     `json:"devices"`
	UplinkRate       float64 `json:"uplink_rate"`
	UplinkIntervalMs float64 `json:"uplink_interval_ms"`
	KillIntervalMs   float64 `json:"kill_interval_ms"`
	StageTimeoutMs   float64 `json:"stage_timeout_ms"`
	// The state server's breaker settings: the defaults of pipeline.breaker.
	BreakerCrashes  int     `json:"breaker_crashes"`
	BreakerWindowS  float64 `json:"breaker_window_s"`
	ProbeIntervalMs float64 `json:"probe_interval_ms"`
	RecoverAfterS   float64 `json:"recover_after_s"`
}

// CrashLoopBreaker is what the state server showed of the crash loop.
type CrashLoopBreaker struct {
	// MaxState is the highest plato_pipeline_stage_breaker_state read after a relaunch (0 closed,
	// 1 half-open, 2 open); DegradedAfterKills the first kill after which /healthz answered
	// "degraded" (0: never), with DegradedCode its HTTP status.
	MaxState           int `json:"max_state"`
	DegradedAfterKills int `json:"degraded_after_kills"`
	DegradedCode       int `json:"degraded_code"`
	// ClosedAfterMs is the time from the last relaunch until /healthz said "ok" again (-1: not
	// within the limit).
	ClosedAfterMs float64 `json:"closed_after_ms"`
	// CrashesTotal and RestartsTotal are the state server's plato_pipeline_stage_crashes_total and
	// plato_pipeline_stage_restarts_total at the end.
	CrashesTotal  float64 `json:"crashes_total"`
	RestartsTotal float64 `json:"restarts_total"`
	// CrashLines and LoopLines count the state server's "stage process crashed" warnings and
	// "crash-looping" errors; WithStderr those of them that carried the plugin's stderr.
	CrashLines int `json:"crash_lines"`
	LoopLines  int `json:"loop_lines"`
	WithStderr int `json:"with_stderr"`
}

func (o *Options) setCrashloopDefaults() {
	if o.Kills == 0 {
		o.Kills = DefaultCrashloopKills
	}
	if o.Devices == 0 {
		o.Devices = DefaultCrashloopDevices
	}
	if o.Rate == 0 {
		o.Rate = DefaultCrashloopRate
	}
	if o.Warmup == 0 {
		o.Warmup = DefaultCrashloopWarmup
	}
	if o.Plugin == "" {
		o.Plugin = DefaultCrashloopPlugin
	}
}

func (o *Options) validateCrashloop() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if o.Kills < 1 || o.Kills > MaxKills {
		bad("kills %d: must be 1 to %d", o.Kills, MaxKills)
	}
	if o.Devices < 1 || o.Devices > 1000 {
		bad("devices %d: crashloop runs its devices in this process: 1 to 1000", o.Devices)
	}
	if o.Rate <= 0 || o.Rate > 100_000 {
		bad("rate %v: must be above 0 and at most 100000 uplinks per second", o.Rate)
	}
	if o.Interval < 100*time.Millisecond || o.Interval > time.Minute {
		bad("interval %v: the time between kills must be 100ms to 1m", o.Interval)
	}
	if o.Warmup < 100*time.Millisecond || o.Warmup > MaxDuration {
		bad("warmup %v: must be 100ms to %v", o.Warmup, MaxDuration)
	}
	if o.Duration != 0 || o.Window != 0 {
		bad("crashloop is an open loop of --kills kills --interval apart: --duration and --window do not apply")
	}
	if o.Baseline || o.Business != "" || len(o.Gateways) > 0 || o.Workers > 0 {
		bad("crashloop starts its own platform and business server: --baseline, --business, --gateway and --workers do not apply")
	}
	if !config.ValidAppID(o.AppID) || o.Sink == "" {
		bad("app ID %q: must be a valid app ID, and the sink not empty", o.AppID)
	}
	if o.PlatoCommand == nil {
		errs = append(errs, errors.New("the crashloop scenario starts a state server and a gateway: it needs the plato binary (Options.PlatoCommand)"))
	}
	return errs
}

// runCrashloop runs the crashloop scenario; o is defaulted and valid.
func runCrashloop(ctx context.Context, o Options) (*Summary, error) {
	loadBefore := loadAverage()
	runID := fmt.Sprintf("crash-%06x", rand.Uint32()&0xffffff)
	pl, err := startClPlatform(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("starting the platform: %w", err)
	}
	defer pl.stop()
	fl, err := connectCrashloop(ctx, pl.gwAddr, o.AppID, pl.secret, runID, o.Devices)
	if err != nil {
		return nil, fmt.Errorf("connecting the devices: %w", err)
	}
	defer fl.close()

	load, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		fl.run(load, o.Rate, o.Sink)
	}()
	start := time.Now()
	if !pollFor(ctx, max(o.Warmup, 10*time.Second), func() bool { _, ok := fl.okAfter(0); return ok }) {
		return nil, errors.New("no uplink got through the stage before the kills: is the plugin a stage that handles uplinks and lets them through?")
	}
	sleepCtx(ctx, time.Until(start.Add(o.Warmup)))

	cl := CrashLoopFigures{}
	var relaunches []int64
	var killed []int
	var lastUp time.Time
	next := time.Now()
	for k := range o.Kills {
		if ctx.Err() != nil {
			break
		}
		sleepCtx(ctx, time.Until(next))
		var pids []int
		if !pollEvery(ctx, clRecoverLimit, 5*time.Millisecond, func() bool { pids = pl.pluginPIDs(); return len(pids) > 0 }) {
			return nil, fmt.Errorf("kill %d: no plugin process of the stage among the state server's children%s", k+1, pl.state.tail.suffix())
		}
		cl.MaxZombies = max(cl.MaxZombies, pl.zombies(killed))
		killAt := time.Now()
		if err := sigkill(pids[0]); err != nil {
			return nil, fmt.Errorf("kill %d: %w", k+1, err)
		}
		cl.Kills++
		killed = append(killed, pids[0])
		next = killAt.Add(o.Interval)
		kt := fl.at(killAt)
		var upAt int64
		if !pollFor(ctx, clRecoverLimit, func() bool { var ok bool; upAt, ok = fl.okAfter(kt); return ok }) {
			break // the summary says the stage did not come back
		}
		cl.Recovered++
		relaunches = append(relaunches, upAt-kt)
		if time.Duration(upAt-kt) > time.Second {
			cl.RelaunchOver1s++
		}
		lastUp = fl.start.Add(time.Duration(upAt))
		// What the state server shows of the crash loop, read while it goes on.
		cl.Breaker.MaxState = max(cl.Breaker.MaxState, int(pl.metric("plato_pipeline_stage_breaker_state")))
		if h := pl.health(); h.Status == "degraded" && cl.Breaker.DegradedAfterKills == 0 {
			cl.Breaker.DegradedAfterKills, cl.Breaker.DegradedCode = k+1, h.Code
		}
	}
	lastKill := len(killed)

	// Left alone, the last process stays up: the breaker closes.
	cl.Breaker.ClosedAfterMs = -1
	if cl.Recovered == cl.Kills && pollEvery(ctx, clCloseLimit, 100*time.Millisecond, func() bool { return pl.health().Status == "ok" }) {
		cl.Breaker.ClosedAfterMs = nsToMs(int64(time.Since(lastUp)))
	}
	measured := time.Since(start)
	stopLoad()
	<-loaded
	pollEvery(ctx, o.Drain, 10*time.Millisecond, func() bool { return fl.unanswered() == 0 })
	pollEvery(ctx, 5*time.Second, 50*time.Millisecond, func() bool { return pl.zombies(killed) == 0 })
	cl.ZombiesLeft = pl.zombies(killed)
	cl.Breaker.CrashesTotal = pl.metric("plato_pipeline_stage_crashes_total")
	cl.Breaker.RestartsTotal = pl.metric("plato_pipeline_stage_restarts_total")
	for _, l := range pl.state.logsSince(start) {
		crash, loop := strings.Contains(l.text, "stage process crashed"), strings.Contains(l.text, "crash-looping")
		if crash {
			cl.Breaker.CrashLines++
		}
		if loop {
			cl.Breaker.LoopLines++
		}
		if (crash || loop) && strings.Contains(l.text, "stderr=") {
			cl.Breaker.WithStderr++
		}
	}

	answers := fl.snapshot()
	var okHist Histogram
	var policyLat []int64
	for _, a := range answers {
		switch a.code {
		case protocol.CodeOK:
			okHist.Record(a.acked - a.sent)
		case protocol.CodePipelineFailed:
			policyLat = append(policyLat, a.acked-a.sent)
		default:
			incr(&cl.OtherCodes, strconv.Itoa(int(a.code)))
		}
	}
	cl.PolicyAnswers = uint64(len(policyLat))
	cl.PolicyLatency = quantilesMs(policyLat)
	cl.Relaunch = quantilesMs(relaunches)
	cl.Conditions = CrashLoopConditions{
		Plugin: pl.plugin, Devices: o.Devices, UplinkRate: o.Rate, UplinkIntervalMs: round3(float64(o.Devices) / o.Rate * 1000),
		KillIntervalMs: float64(o.Interval.Milliseconds()), StageTimeoutMs: float64(clStageTimeout.Milliseconds()),
		BreakerCrashes: config.DefaultBreakerCrashes, BreakerWindowS: config.DefaultBreakerWindow.Seconds(),
		ProbeIntervalMs: float64(config.DefaultBreakerProbeInterval.Milliseconds()), RecoverAfterS: config.DefaultBreakerRecoverAfter.Seconds(),
	}

	s := &Summary{Scenario: o.Scenario, Devices: o.Devices, Duration: round3(measured.Seconds()), Mode: "open", Rate: o.Rate, CrashLoop: &cl}
	f := &s.Figures
	f.Connected, f.Sent, f.Acked = len(fl.devs), fl.sent.Load(), okHist.Count()
	f.Refused = uint64(len(answers)) - okHist.Count()
	f.Lost, f.Skipped = fl.unanswered(), fl.skipped.Load()
	f.Latency, f.hist = latencyOf(&okHist), &okHist
	if secs := measured.Seconds(); secs > 0 {
		f.MsgsPerSec = round3(float64(f.Acked) / secs)
	}
	s.LoadAverage = &LoadAverage{Before: loadBefore, After: loadAverage()}
	s.Notes = crashloopNotes(s, o, lastKill, fl)
	return s, nil
}

// crashloopNotes explain the figures.
func crashloopNotes(s *Summary, o Options, kills int, fl *clFleet) []string {
	cl := s.CrashLoop
	out := []string{
		fmt.Sprintf("the bench ran its own platform: NATS (embedded) and its business server in this process, one state server and one gateway as plato processes on 127.0.0.1; app %s's pipeline has one stage, %q, running %s on uplinks with timeout %v and on_failure fail_closed; the breaker settings are pipeline.breaker's defaults",
			o.AppID, clStageName, cl.Conditions.Plugin, clStageTimeout),
		fmt.Sprintf("%d devices sent %g uplinks/s in total (one every %.1f ms across the fleet); the bench SIGKILLed the stage's plugin process %d times, %v apart (or as soon as the stage answered again, if later), after %v of load",
			o.Devices, o.Rate, 1000/o.Rate, kills, o.Interval, o.Warmup),
		fmt.Sprintf("relaunch runs from the kill to the first UplinkAck 0 of an uplink sent after it, so it includes up to %.1f ms of waiting for such an uplink; policy_answer_latency is send to UplinkAck 1306 for the uplinks that found the stage down (its timeout is %v: an answer that waited on the dead process would take that long)",
			1000/o.Rate, clStageTimeout),
		fmt.Sprintf("machine: %d cores; load average before %s, after %s (/proc/loadavg: 1, 5, 15 minutes)", runtime.NumCPU(), s.LoadAverage.Before, s.LoadAverage.After),
	}
	if cl.Recovered < cl.Kills {
		out = append(out, fmt.Sprintf("the stage did not answer again within %v after kill %d: the kills stopped there", clRecoverLimit, cl.Kills))
	}
	if cl.Breaker.ClosedAfterMs < 0 {
		out = append(out, fmt.Sprintf("/healthz did not say ok again within %v after the last relaunch", clCloseLimit))
	}
	if cl.ZombiesLeft > 0 {
		out = append(out, fmt.Sprintf("%d killed plugin processes were left unreaped (zombies)", cl.ZombiesLeft))
	}
	fl.mu.Lock()
	if n := len(fl.ended); n > 0 {
		out = append(out, fmt.Sprintf("%d device connections ended during the run, e.g. %s", n, fl.ended[0]))
	}
	fl.mu.Unlock()
	return out
}

// sigkill sends SIGKILL to pid, a process the bench did not start.
func sigkill(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	defer p.Release()
	return p.Kill()
}

// pollFor polls cond every 2 ms until it holds (true), limit passes or ctx ends (false).
func pollFor(ctx context.Context, limit time.Duration, cond func() bool) bool {
	return pollEvery(ctx, limit, 2*time.Millisecond, cond)
}

// pollEvery is pollFor at another pace.
func pollEvery(ctx context.Context, limit, every time.Duration, cond func() bool) bool {
	end := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(end) || ctx.Err() != nil {
			return false
		}
		time.Sleep(every)
	}
}

// sleepCtx waits d, and reports false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
