package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/platoim/plato/internal/tick"
)

// pushSlots bounds a failover worker's push calls in flight; beyond it a push is skipped (and
// counted), so a slow state server slows the pushes instead of piling up goroutines.
const pushSlots = 64

// runFailoverDevices is the failover role: connect, report ready, then follow the parent's
// commands (start, kill T, restart T, stop), drain, report the result and say goodbye.
func runFailoverDevices(ctx context.Context, spec WorkerSpec, cmds <-chan string, out *reportWriter) error {
	f, err := newFoFleet(ctx, spec, out)
	if err != nil {
		return err
	}
	var pusher *kitexPusher
	if spec.PushRate > 0 {
		if pusher, err = newKitexPusher(spec.StateAddr, spec.AppID, spec.AppKey); err != nil {
			return err
		}
	}
	defer f.goodbye()
	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	go tick.Every(bg, time.Second, func(time.Time) {
		now := f.now()
		for _, d := range f.snapshot() {
			d.heartbeatIfIdle(now)
		}
	})
	go tick.Every(bg, tickEvery, func(time.Time) {
		var sent, acked uint64
		for i := range numPhases {
			sent += f.sent[i].Load()
			acked += f.acked[i].Load()
		}
		_ = out.send(Report{Type: repTick, Worker: spec.Worker, Sent: sent, Done: acked, Conns: f.connected(), Recovered: int(f.recovered.Load())})
	})

	// Connecting ends at ConnectBy, or early when the parent says stop or goes away.
	cctx, cancel := context.WithDeadline(ctx, spec.ConnectBy)
	early := make(chan string, 1)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case cmd, ok := <-cmds:
			if !ok {
				cmd = ""
			}
			early <- cmd
			cancel()
		case <-cctx.Done():
		}
	}()
	cr := f.connectAll(cctx)
	cancel()
	<-watched // a command it took is in early now
	if err := out.send(Report{Type: repReady, Worker: spec.Worker, Connect: cr}); err != nil {
		return err
	}
	var pending []string
	select {
	case cmd := <-early:
		if cmd == "" {
			return errParentGone
		}
		pending = append(pending, cmd)
	default:
	}

	cpu0 := cpuSeconds(os.Getpid())
	runCtx, endRun := context.WithCancel(ctx)
	defer endRun()
	started := false
	next := func() (string, bool) {
		if len(pending) > 0 {
			c := pending[0]
			pending = pending[1:]
			return c, true
		}
		select {
		case c, ok := <-cmds:
			return c, ok
		case <-ctx.Done():
			return "", false
		}
	}
loop:
	for {
		cmd, ok := next()
		if !ok {
			if ctx.Err() != nil {
				break loop // the deadline: report what there is
			}
			return errParentGone
		}
		word, arg, _ := strings.Cut(cmd, " ")
		switch word {
		case "start":
			if !started {
				started = true
				f.start(runCtx, pusher)
			}
		case cmdKill, cmdRestart:
			at, err := strconv.ParseInt(arg, 10, 64)
			if err != nil {
				return fmt.Errorf("command %q: %w", cmd, err)
			}
			if word == cmdKill {
				f.armKill(f.fromWall(at))
			} else {
				f.restartAt.Store(f.fromWall(at))
			}
			if err := out.send(Report{Type: repArmed, Worker: spec.Worker, At: at}); err != nil {
				return err
			}
		case "stop":
			break loop
		}
	}
	f.running.Store(false)
	endRun()
	f.drivers.Wait()
	cpu := cpuSeconds(os.Getpid()) - cpu0
	f.drain(ctx, spec.Drain)
	res := f.result()
	res.CPUSeconds = cpu
	return out.send(Report{Type: repResult, Worker: spec.Worker, Failover: res})
}

// armKill sets the instant of the kill. An earlier instant, given up by the parent because a
// worker confirmed it late, is forgotten: what the devices saw after it does not count.
func (f *foFleet) armKill(at int64) {
	f.killAt.Store(at)
	for _, d := range f.snapshot() {
		d.mu.Lock()
		if d.recoveredAt > 0 {
			f.recovered.Add(-1)
		}
		d.firstTry, d.recoveredAt = 0, 0
		d.mu.Unlock()
	}
}

// start begins the load: uplinks at spec.Rate and pushes at spec.PushRate, in total over this
// worker's devices.
func (f *foFleet) start(ctx context.Context, pusher *kitexPusher) {
	f.running.Store(true)
	devs := f.snapshot()
	paceItems(ctx, &f.drivers, devs, f.spec.Rate, f.running.Load, (*foDevice).sendUplink)
	if pusher == nil {
		return
	}
	slots := make(chan struct{}, pushSlots)
	paceItems(ctx, &f.drivers, devs, f.spec.PushRate, f.running.Load, func(d *foDevice) {
		select {
		case slots <- struct{}{}:
		default:
			f.count(f.now(), func(p *PhaseCounts) { p.PushSkipped++ })
			return
		}
		f.pushes.Add(1)
		go func() {
			defer f.pushes.Done()
			f.pushOne(pusher, d)
			<-slots
		}()
	})
}

// drain waits, at most limit, for the push calls in flight, then for every answer due.
func (f *foFleet) drain(ctx context.Context, limit time.Duration) {
	deadline := time.Now().Add(limit)
	done := make(chan struct{})
	go func() { f.pushes.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Until(deadline)):
	case <-ctx.Done():
	}
	for time.Now().Before(deadline) && ctx.Err() == nil && !f.settled() {
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *foFleet) connected() int {
	n := 0
	for _, d := range f.snapshot() {
		d.mu.Lock()
		if d.up {
			n++
		}
		d.mu.Unlock()
	}
	return n
}

// goodbye closes every connection with Close 1209 and waits (bounded) for the readers and any
// login still under way to end.
func (f *foFleet) goodbye() {
	f.closing.Store(true)
	for _, d := range f.snapshot() {
		d.goodbye()
	}
	done := make(chan struct{})
	go func() { f.readers.Wait(); f.relogs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}
