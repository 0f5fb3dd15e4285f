package pipeline

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// BenchmarkRun is the per-signal cost of Run through a one-stage chain, from Run to done, with
// 1024 connections spread over the default lanes; batch is both the lane batch size and the
// stage's batch.max_size. "inprocess" is a builtin stage (stage.InProcess), "plugin" is
// sdk/stage's test plugin as a real process on its data socket, "plugin-grpc" the same plugin
// on the gRPC Process stream (PLATO_STAGE_RAW=off, as a plugin of an older SDK); all echo the
// payload as a rewrite. host-cpu-ns/msg is this process's CPU time per signal (the pipeline host,
// plus the benchmark's own loop), plugin-cpu-ns/msg the plugin process's (/proc/<pid>/stat),
// load1 the 1-minute load average at the end.
//
//	go test -run '^$' -bench BenchmarkRun -benchmem ./pipeline/
func BenchmarkRun(b *testing.B) {
	// Size outside, kind inside: the kinds of one size run back to back, under about the same load.
	for _, size := range []int{1, 16, 256} {
		for _, kind := range []string{"inprocess", "plugin", "plugin-grpc"} {
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
	var env []string
	switch kind {
	case "plugin":
		plugin = testPlugin(b)
	case "plugin-grpc":
		plugin, env = testPlugin(b), []string{"PLATO_STAGE_RAW=off"}
	}
	writePipeline(b, dir, "default", fileYAML(stageYAML("s", plugin, "uplink", "timeout: 5s", fmt.Sprintf("batch: {max_size: %d}", size))))
	p := start(b, Config{
		Dir:        dir,
		BatchSize:  size,
		QueueLimit: 1 << 16,
		Env:        env,
		Builtins:   map[string]func() stage.Stage{"echo": builtin("echo", echoStage)},
	})
	const conns = 1024
	evs := make([]stage.Event, conns)
	for i := range evs {
		evs[i] = uplink("bench", uint64(i), 0, "0123456789abcdef0123456789abcdef")
	}
	var finished, failed atomic.Int64
	all := make(chan struct{})
	done := func(o Outcome) {
		if o.Verdict != stage.Continue {
			failed.Add(1)
		}
		if finished.Add(1) == int64(b.N) {
			close(all)
		}
	}
	pids := p.pluginPIDs()
	b.ReportAllocs()
	b.ResetTimer()
	host0, plugin0 := selfCPU(), procsCPU(pids)
	// b.N rather than b.Loop: the time must include the lanes finishing the queue's tail, or the
	// figure would be the cost of queuing only.
	for n := range b.N {
		ev := evs[n%conns]
		ev.Seq = uint64(n)
		if err := runRetry(p, ev, done); err != nil {
			b.Fatal(err)
		}
	}
	<-all // not a spin: the host's CPU time would count the waiting
	b.StopTimer()
	n := b.N
	b.ReportMetric(float64((selfCPU()-host0).Nanoseconds())/float64(n), "host-cpu-ns/msg")
	if len(pids) > 0 {
		b.ReportMetric(float64((procsCPU(pids)-plugin0).Nanoseconds())/float64(n), "plugin-cpu-ns/msg")
	}
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(raw)); len(f) > 0 {
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				b.ReportMetric(v, "load1")
			}
		}
	}
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d signals failed", f, n)
	}
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procsCPU is the user+system CPU time of pids (Linux /proc, clock ticks of 10ms).
func procsCPU(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		s := string(raw)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * 10 * time.Millisecond
	}
	return total
}
