// Package taskrun runs short tasks (netpoll's, the gateway's device flushes) on goroutines it keeps
// between them, so that each task does not start on a fresh stack.
package taskrun

import (
	"context"
	"runtime/debug"
	"sync/atomic"
)

// Runner runs netpoll's tasks (every OnRequest of the gateway's device servers and of every Kitex
// server: each internal call a server answers is one) on goroutines it keeps, instead of netpoll's
// default gopool.
//
// gopool starts a goroutine for a task when none of its workers is busy, and a worker exits as soon
// as the queue is empty. Below a few thousand calls a second that is one new goroutine per task,
// and a new goroutine starts with a small stack that the Kitex server path (decode, middlewares,
// handler, encode, flush) grows by copying it a few times: `runtime.newstack` and `copystack` took
// 8.5% of the CPU of `plato up` at 5k uplinks/s (docs/performance.md, issue 13, "Fewer
// goroutines"). A worker here parks when it is done and takes the next task with the stack it grew.
//
// At most MaxIdle workers wait: a burst that needed more leaves the rest to exit, so the goroutines
// kept are bounded whatever the load or the number of connections (none is per connection).
type Runner struct {
	tasks   chan Task
	idle    atomic.Int64
	maxIdle int64
	onPanic func(r any, stack []byte)
}

// MaxIdle bounds the workers a Runner keeps waiting. A task runs until its handler returns, and a
// state server holds a Deliver call up to state.uplink_ack_wait, so the tasks running at once are
// the calls in flight (a few per lane and peer) plus the device reads of the moment: a few dozen
// on a busy two-core process. A parked worker costs its stack (the GC shrinks an idle one).
const MaxIdle = 128

// NewRunner returns a Runner that reports a task's panic to onPanic (with its stack) and goes on,
// as gopool does.
func NewRunner(onPanic func(r any, stack []byte)) *Runner {
	return &Runner{tasks: make(chan Task), maxIdle: MaxIdle, onPanic: onPanic}
}

// Task is a task of RunTask. A pointer that implements it (the gateway's device connection)
// goes into the interface as it is, where a method value (c.flush) passed to Run is allocated on
// every call.
type Task interface{ Run() }

// funcTask is a func as a Task: a func value is one pointer, so the conversion allocates nothing.
type funcTask func()

func (f funcTask) Run() { f() }

// Run runs f on a waiting worker, or on a new one when none waits. It has the signature of
// netpoll.Config.Runner; ctx is not used.
func (r *Runner) Run(_ context.Context, f func()) { r.RunTask(funcTask(f)) }

// RunTask runs t.Run as Run runs a func.
func (r *Runner) RunTask(t Task) {
	select {
	case r.tasks <- t: // an idle worker took it
	default:
		go r.work(t)
	}
}

// work runs f, then waits for further tasks while fewer than maxIdle workers wait.
func (r *Runner) work(f Task) {
	for {
		r.run(f)
		if r.idle.Add(1) > r.maxIdle {
			r.idle.Add(-1)
			return
		}
		f = <-r.tasks
		r.idle.Add(-1)
	}
}

// run runs one task, recovering its panic so the worker (and the process) goes on.
func (r *Runner) run(f Task) {
	defer func() {
		if p := recover(); p != nil && r.onPanic != nil {
			r.onPanic(p, debug.Stack())
		}
	}()
	f.Run()
}

// Go runs f as Run does.
func (r *Runner) Go(f func()) { r.Run(context.Background(), f) }

// Idle reports how many workers wait for a task.
func (r *Runner) Idle() int { return int(r.idle.Load()) }
