package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/internal/tick"
)

// tickEvery is how often a worker reports progress to the parent.
const tickEvery = 250 * time.Millisecond

// runDevices is the devices role: connect, report ready, wait for start, run, drain, report the
// result, say goodbye. cmds carries the parent's commands and closes when the parent is gone.
func runDevices(ctx context.Context, spec WorkerSpec, cmds <-chan string, out *reportWriter) error {
	f := newFleet(spec, out)
	if spec.Scenario == ScenarioDownlink {
		var err error
		switch {
		case spec.EchoPush:
			f.pusher, err = newEchoPusher(spec.Endpoints, spec.AppID, spec.Worker)
		case spec.StateHTTP != "":
			f.pusher = newHTTPPusher(spec.StateHTTP, spec.AppID, spec.AppKey)
		default:
			var kp *kitexPusher
			if kp, err = newKitexPusher(spec.StateAddr, spec.AppID, spec.AppKey); err == nil {
				f.pusher = kp
				if spec.Batch > 0 {
					f.pusher = newBatchPusher(kp, spec.Batch)
				}
			}
		}
		if err != nil {
			return err
		}
		defer f.pusher.close()
	}
	defer f.goodbye()
	c := watchCommands(cmds)
	hbCtx, stopHB := context.WithCancel(ctx)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		f.heartbeatLoop(hbCtx)
	}()
	// Heartbeats stop when the measured phase ends, so the drain can wait for the last one's ACK.
	endHeartbeats := sync.OnceFunc(func() { stopHB(); <-hbDone })
	defer endHeartbeats()
	tickDone := make(chan struct{})
	go f.tickLoop(tickDone)
	defer close(tickDone)

	// Connecting ends at ConnectBy, or early on "stop".
	cctx, cancel := context.WithDeadline(ctx, spec.ConnectBy)
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-cctx.Done():
		}
	}()
	cr := f.connectAll(cctx)
	cancel()
	if err := out.send(Report{Type: repReady, Worker: spec.Worker, Connect: cr}); err != nil {
		return err
	}
	select {
	case <-c.start:
	case <-c.stop:
		if c.parentGone() {
			return errParentGone
		}
		return out.send(Report{Type: repResult, Worker: spec.Worker, Result: f.result()})
	case <-ctx.Done():
		return fmt.Errorf("waiting for start: %w", ctx.Err())
	}

	f.start.Store(f.now())
	cpu0 := cpuSeconds(os.Getpid())
	hb0 := f.hbAck.Load()
	f.running.Store(true)
	runCtx, endRun := context.WithTimeout(ctx, spec.Duration)
	defer endRun()
	switch spec.Scenario {
	case ScenarioUplink:
		f.startUplink(runCtx)
	case ScenarioDownlink:
		f.startDownlink(ctx, runCtx)
	}
	stopped := false
	select {
	case <-runCtx.Done():
	case <-c.stop:
		stopped = true // interrupted
	}
	f.running.Store(false)
	cpu := cpuSeconds(os.Getpid()) - cpu0
	hbMeasured := f.hbAck.Load() - hb0
	endRun()
	f.drivers.Wait()
	endHeartbeats()
	if stopped {
		// Interrupted: a short drain still, so what is in flight is not all counted lost.
		f.drain(ctx, nil, min(f.spec.Drain, time.Second))
	} else {
		f.drain(ctx, c.stop, f.spec.Drain)
	}
	if c.parentGone() {
		return errParentGone
	}
	res := f.result()
	res.CPUSeconds = cpu
	res.HeartbeatAckMeasured = hbMeasured
	return out.send(Report{Type: repResult, Worker: spec.Worker, Result: res})
}

// errParentGone ends a worker whose stdin closed: nobody is left to report to.
var errParentGone = errors.New("the parent closed stdin")

// commands turns the parent's command lines into two one-shot signals.
type commands struct {
	start, stop chan struct{}
	gone        atomic.Bool
}

func watchCommands(cmds <-chan string) *commands {
	c := &commands{start: make(chan struct{}), stop: make(chan struct{})}
	go func() {
		var startOnce, stopOnce sync.Once
		for cmd := range cmds {
			switch cmd {
			case "start":
				startOnce.Do(func() { close(c.start) })
			case "stop":
				stopOnce.Do(func() { close(c.stop) })
			}
		}
		c.gone.Store(true)
		stopOnce.Do(func() { close(c.stop) })
	}()
	return c
}

func (c *commands) parentGone() bool { return c.gone.Load() }

// drain waits for outstanding answers: until none is missing, limit passes, or the parent says
// stop (broadcast, where only the parent knows what is missing).
func (f *fleet) drain(ctx context.Context, stop <-chan struct{}, limit time.Duration) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for !f.drained() {
		select {
		case <-deadline.C:
			return
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-poll.C:
		}
	}
}

func (f *fleet) drained() bool {
	if f.hbAck.Load() < f.hbSent.Load() {
		return false
	}
	switch f.spec.Scenario {
	case ScenarioUplink:
		return f.inFlight.Load() <= 0
	case ScenarioDownlink:
		return f.acked.Load() >= f.pushed.Load()
	case ScenarioBroadcast:
		return false
	}
	return true
}

// heartbeatLoop keeps idle devices alive, from the first login on.
func (f *fleet) heartbeatLoop(ctx context.Context) {
	every := time.Second
	if hb := f.spec.Heartbeat; hb > 0 {
		every = max(min(every, hb/4), 25*time.Millisecond)
	}
	tick.Every(ctx, every, func(time.Time) {
		now := f.now()
		for _, d := range f.snapshot() {
			d.heartbeatIfIdle(now)
		}
	})
}

func (f *fleet) tickLoop(done <-chan struct{}) {
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			sec := 0
			if f.running.Load() {
				sec = int((f.now() - f.start.Load()) / int64(time.Second))
			}
			_ = f.out.send(Report{
				Type: repTick, Worker: f.spec.Worker, Sec: sec,
				Sent: f.sent.Load(), Done: f.acked.Load(), Conns: f.connected(),
			})
		}
	}
}

// result is the worker's final count.
func (f *fleet) result() *WorkerResult {
	r := &WorkerResult{
		Sent: f.sent.Load(), Acked: f.acked.Load(), Refused: f.refused.Load(),
		Duplicated: f.dup.Load(), Unexpected: f.unexpected.Load(), Skipped: f.skipped.Load(),
		Latency: f.latency.Snapshot(), PerSec: trimZeros(f.perSec), SentPerSec: trimZeros(f.sentPerSec),
		HeartbeatSent: f.hbSent.Load(), HeartbeatAck: f.hbAck.Load(), OtherDownlinks: f.other.Load(),
		Retransmitted: f.retransmits.Load(),
		Connected:     f.connected(),
	}
	if bp, ok := f.pusher.(*batchPusher); ok {
		r.PushCalls = bp.calls.Load()
	}
	switch f.spec.Scenario {
	case ScenarioUplink:
		r.Lost = uint64(max(0, f.inFlight.Load()))
	case ScenarioDownlink:
		if p, a := f.pushed.Load(), f.acked.Load(); p > a {
			r.Lost = p - a
		}
	}
	for i := range f.rounds {
		if n := f.rounds[i].received.Load(); n > 0 {
			if r.Rounds == nil {
				r.Rounds = map[int]RoundResult{}
			}
			r.Rounds[i] = RoundResult{Received: n, Last: f.rounds[i].last.Load()}
		}
	}
	f.mu.Lock()
	r.Codes = copyCounts(f.codes)
	r.Dropped = copyCounts(f.drops)
	f.mu.Unlock()
	return r
}

// goodbye closes every connection with Close 1209 and waits (bounded) for the readers to end.
func (f *fleet) goodbye() {
	f.closing.Store(true)
	for _, d := range f.snapshot() {
		d.goodbye()
	}
	done := make(chan struct{})
	go func() { f.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

func trimZeros(a []atomic.Uint64) []uint64 {
	n := len(a)
	for n > 0 && a[n-1].Load() == 0 {
		n--
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = a[i].Load()
	}
	return out
}

func copyCounts(m map[string]int) map[string]int {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
