package taskrun

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bytedance/gopkg/util/gopool"
)

// until polls cond for up to 10 s.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRunnerReusesItsWorker: a task that comes after the last one finished runs on the worker that
// ran it (no new goroutine), so the stack that worker grew is kept.
func TestRunnerReusesItsWorker(t *testing.T) {
	r := NewRunner(nil)
	ids := make(chan uint64, 1)
	for range 5 {
		r.Run(context.Background(), func() { ids <- goid() })
		<-ids
		until(t, "the worker to wait again", func() bool { return r.Idle() == 1 })
	}
	first := make(chan uint64, 1)
	r.Go(func() { first <- goid() })
	a := <-first
	until(t, "the worker to wait again", func() bool { return r.Idle() == 1 })
	r.Go(func() { first <- goid() })
	if b := <-first; a != b {
		t.Fatalf("the second task ran on goroutine %d, the first on %d: the worker was not reused", b, a)
	}
}

// TestRunnerRunsConcurrentTasksAndKeepsAtMostMaxIdle: tasks that block each get a worker; once they
// are done, at most MaxIdle workers stay.
func TestRunnerRunsConcurrentTasksAndKeepsAtMostMaxIdle(t *testing.T) {
	r := NewRunner(nil)
	const n = MaxIdle + 50
	release := make(chan struct{})
	var started, done sync.WaitGroup
	started.Add(n)
	done.Add(n)
	for range n {
		r.Run(context.Background(), func() {
			started.Done()
			<-release
			done.Done()
		})
	}
	started.Wait() // every task runs at once: none waited for another's worker
	close(release)
	done.Wait()
	until(t, "the workers to settle", func() bool { return r.Idle() == MaxIdle })
	before := runtime.NumGoroutine()
	var ran atomic.Int64
	for range 1000 {
		r.Go(func() { ran.Add(1) })
	}
	until(t, "1000 more tasks", func() bool { return ran.Load() == 1000 })
	until(t, "the workers to settle", func() bool { return r.Idle() == MaxIdle })
	// A worker started while all were busy leaves once it finds MaxIdle waiting: it may still be
	// on its way out when Idle already says MaxIdle.
	until(t, "the goroutines to come back to their count before the 1000 tasks", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

// TestRunnerSurvivesAPanic: a task's panic is reported with its stack, and the worker goes on.
func TestRunnerSurvivesAPanic(t *testing.T) {
	reported := make(chan string, 1)
	r := NewRunner(func(p any, stack []byte) {
		reported <- p.(string) + "|" + string(stack)
	})
	r.Go(func() { panic("boom") })
	got := <-reported
	if !strings.HasPrefix(got, "boom|") || !strings.Contains(got, "runner_test.go") {
		t.Fatalf("reported %q, want the panic and a stack through the task", got)
	}
	until(t, "the worker to wait again", func() bool { return r.Idle() == 1 })
	ok := make(chan struct{})
	r.Go(func() { close(ok) })
	<-ok
}

// goid is the current goroutine's id, from its stack header ("goroutine 18 [running]:").
func goid() uint64 {
	var buf [64]byte
	s := string(buf[:runtime.Stack(buf[:], false)])
	s = strings.TrimPrefix(s, "goroutine ")
	var id uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}

// deep uses about 16 KB of stack, as a Kitex server task does (decode, middlewares, handler,
// encode, flush), so that a goroutine that runs it from a fresh stack grows it.
//
//go:noinline
func deep(n int) byte {
	var pad [512]byte
	pad[n%512] = byte(n)
	if n == 0 {
		return pad[0]
	}
	return deep(n-1) + pad[n%512]
}

// BenchmarkRunTask runs one task at a time, each after the last one is done, as a process at a
// few thousand calls a second does: on gopool (netpoll's default runner) and on Runner.
func BenchmarkRunTask(b *testing.B) {
	for _, bc := range []struct {
		name string
		run  func(func())
	}{
		{"gopool", func(f func()) { gopool.CtxGo(context.Background(), f) }},
		{"runner", NewRunner(nil).Go},
	} {
		b.Run(bc.name, func(b *testing.B) {
			done := make(chan struct{})
			task := func() { deep(32); done <- struct{}{} }
			b.ReportAllocs()
			for b.Loop() {
				bc.run(task)
				<-done
			}
		})
	}
}
