package pipeline

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/platoim/plato/sdk/stage"
)

// BenchmarkRun is the per-signal cost of Run through a one-stage chain, from Run to done, with
// 1024 connections spread over the default lanes; batch is both the lane batch size and the
// stage's batch.max_size. "inprocess" is a builtin stage (stage.InProcess), "plugin" is
// sdk/stage's test plugin as a real process over gRPC; both echo the payload as a rewrite.
//
//	go test -run '^$' -bench BenchmarkRun -benchmem ./pipeline/
func BenchmarkRun(b *testing.B) {
	for _, kind := range []string{"inprocess", "plugin"} {
		for _, size := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("%s/batch=%d", kind, size), func(b *testing.B) {
				benchRun(b, kind, size)
			})
		}
	}
}

func echoStage(_ context.Context, _ *fnStage, ev stage.Event) stage.Reply {
	return stage.Rewrite(ev.Payload)
}

func benchRun(b *testing.B, kind string, size int) {
	dir := b.TempDir()
	plugin := "builtin:echo"
	if kind == "plugin" {
		plugin = testPlugin(b)
	}
	writePipeline(b, dir, "default", fileYAML(stageYAML("s", plugin, "uplink", "timeout: 5s", fmt.Sprintf("batch: {max_size: %d}", size))))
	p := start(b, Config{
		Dir:        dir,
		BatchSize:  size,
		QueueLimit: 1 << 16,
		Builtins:   map[string]func() stage.Stage{"echo": builtin("echo", echoStage)},
	})
	const conns = 1024
	evs := make([]stage.Event, conns)
	for i := range evs {
		evs[i] = uplink("bench", uint64(i), 0, "0123456789abcdef0123456789abcdef")
	}
	var finished, failed atomic.Int64
	done := func(o Outcome) {
		if o.Verdict != stage.Continue {
			failed.Add(1)
		}
		finished.Add(1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	// b.N rather than b.Loop: the time must include the lanes finishing the queue's tail, or the
	// figure would be the cost of queuing only.
	for n := range b.N {
		ev := evs[n%conns]
		ev.Seq = uint64(n)
		if err := runRetry(p, ev, done); err != nil {
			b.Fatal(err)
		}
	}
	for finished.Load() < int64(b.N) {
		runtime.Gosched()
	}
	b.StopTimer()
	n := b.N
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d signals failed", f, n)
	}
}
