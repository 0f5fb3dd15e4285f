package pipeline

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// TestUplinkNobodyListensToPassesInOrder: appA's only stage listens to logins, so its uplinks
// pass without a lane hand-off when their lane is idle (done before Run returns, payload kept),
// and still come after an earlier login of the same connection that a slow stage holds in the
// lane; across many connections and producers, every connection's dones come in Run order.
func TestUplinkNobodyListensToPassesInOrder(t *testing.T) {
	dir := t.TempDir()
	slowLogin := func(ctx context.Context, st *fnStage, ev stage.Event) stage.Reply {
		sleepy()
		return tagStage(ctx, st, ev)
	}
	cfg := Config{
		Dir: dir, Lanes: 4, BatchSize: 16, QueueLimit: 64,
		Builtins: map[string]func() stage.Stage{"slow": builtin("slow", slowLogin)},
	}
	writePipeline(t, dir, "appA", fileYAML(stageYAML("a", "builtin:slow", "login")))
	p := start(t, cfg)

	// On an idle lane: done on the caller's goroutine, before Run returns. (The app's first
	// signal makes its lanes, whose goroutines may not wait yet: it takes its lane.)
	runWait(t, p, uplink("appA", 1, 1, "first"))
	var got *Outcome
	me := goid()
	deadline := time.Now().Add(waitLimit)
	for seq := uint64(2); got == nil && time.Now().Before(deadline); seq++ {
		outs := make(chan Outcome, 1)
		on := make(chan uint64, 1)
		if err := p.Run(uplink("appA", 1, seq, "hello"), func(out Outcome) { on <- goid(); outs <- out }); err != nil {
			t.Fatal(err)
		}
		if <-on == me {
			o := <-outs
			got = &o
		} else {
			time.Sleep(time.Millisecond) // the lane goroutine has not parked yet; it will
		}
	}
	if got == nil || string(got.Payload) != "hello" || got.Verdict != stage.Continue {
		t.Fatalf("outcome %+v: want the uplink passed at once, payload kept", got)
	}

	// Behind a login the stage holds: the uplink waits for it.
	release := make(chan struct{})
	held := func(ctx context.Context, st *fnStage, ev stage.Event) stage.Reply {
		<-release
		return tagStage(ctx, st, ev)
	}
	cfg2 := Config{
		Dir: t.TempDir(), Lanes: 1, BatchSize: 16, QueueLimit: 64,
		Builtins: map[string]func() stage.Stage{"held": builtin("held", held)},
	}
	writePipeline(t, cfg2.Dir, "appA", fileYAML(stageYAML("a", "builtin:held", "login")))
	p2 := start(t, cfg2)
	var mu sync.Mutex
	var order []string
	note := func(s string) func(Outcome) {
		return func(Outcome) { mu.Lock(); order = append(order, s); mu.Unlock() }
	}
	login := uplink("appA", 7, 1, "")
	login.Signal = stage.SignalLogin
	if err := p2.Run(login, note("login")); err != nil {
		t.Fatal(err)
	}
	if err := p2.Run(uplink("appA", 7, 2, "u"), note("uplink")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	early := len(order)
	mu.Unlock()
	if early != 0 {
		t.Fatalf("%v done while the login was held", order)
	}
	close(release)
	deadline = time.Now().Add(waitLimit)
	for {
		mu.Lock()
		n := len(order)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the login and the uplink were not done")
		}
		time.Sleep(time.Millisecond)
	}
	if order[0] != "login" || order[1] != "uplink" {
		t.Fatalf("order %v, want the login first", order)
	}

	// Many connections, logins and uplinks interleaved: each connection's dones in Run order.
	rec := newRecorder()
	const conns, perConn, producers = 64, 40, 8
	var wg sync.WaitGroup
	for w := range producers {
		wg.Go(func() {
			for seq := uint64(1); seq <= perConn; seq++ {
				for c := uint64(w); c < conns; c += producers {
					ev := uplink("appA", c, seq, fmt.Sprintf("p%d", seq))
					if seq%5 == 1 {
						ev.Signal = stage.SignalLogin
					}
					if err := runRetry(p, ev, rec.done(c, seq)); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	deadline = time.Now().Add(waitLimit)
	for rec.count() < conns*perConn {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d done", rec.count(), conns*perConn)
		}
		time.Sleep(time.Millisecond)
	}
	rec.check(t)
}

// BenchmarkUplinkPass runs uplinks that no stage listens to one at a time (each on an idle lane,
// as at a few thousand a second): "lane" hands each to a lane goroutine as before, "pass" gives
// it its outcome on the caller. cpu-ns/op is the process's CPU per uplink.
func BenchmarkUplinkPass(b *testing.B) {
	for _, bc := range []struct {
		name   string
		noPass bool
	}{{"lane", true}, {"pass", false}} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			cfg := Config{Dir: dir, Builtins: map[string]func() stage.Stage{"tag": builtin("tag", tagStage)}}
			writePipeline(b, dir, "appA", fileYAML(stageYAML("a", "builtin:tag", "login")))
			p := start(b, cfg)
			p.noPass = bc.noPass
			done := make(chan struct{}, 1)
			ev := uplink("appA", 1, 1, "x")
			b.ReportAllocs()
			cpu0 := processCPU(b)
			for b.Loop() {
				if err := p.Run(ev, func(Outcome) { done <- struct{}{} }); err != nil {
					b.Fatal(err)
				}
				<-done
			}
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the process's user+system CPU time.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// goid is the current goroutine's id, from its stack header ("goroutine 18 [running]:").
func goid() uint64 {
	var buf [64]byte
	s := strings.TrimPrefix(string(buf[:runtime.Stack(buf[:], false)]), "goroutine ")
	var id uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}
