package pipeline

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Relaunch pacing of a plugin process (supervisor.go). Whatever happens, attempts are never more
// than retryMax apart while the breaker is closed, nor more than BreakerConfig.ProbeInterval apart
// while it is open.
const (
	// relaunchJitter bounds the wait before relaunching a process that was up: next to nothing, but
	// stages that crashed together (the machine ran out of memory) do not all fork in one instant.
	relaunchJitter = 10 * time.Millisecond
	// retryMin is the wait after a launch that failed; it doubles with each failure in a row up to
	// retryMax. Each wait is jittered down to half, so stages failing together drift apart.
	retryMin = 50 * time.Millisecond
	retryMax = time.Second
)

// crashReason is why the supervisor replaced a process: the reason attribute of
// plato_pipeline_stage_crashes_total.
type crashReason uint8

const (
	crashExited    crashReason = iota // the process exited: killed, panicked, os.Exit
	crashHung                         // hangTimeouts timeouts in a row with no answer: killed
	crashUnhealthy                    // it failed its gRPC health check, or broke the data socket's protocol: killed
	crashStart                        // a launch failed: no start, handshake, Describe or Init
	numCrashReasons
)

func (r crashReason) String() string {
	switch r {
	case crashExited:
		return "exited"
	case crashHung:
		return "hung"
	case crashUnhealthy:
		return "unhealthy"
	default:
		return "start_failed"
	}
}

// breakerState is a stage's crash-loop breaker as plato_pipeline_stage_breaker_state and /healthz
// show it: the higher, the worse.
type breakerState int32

const (
	// breakerClosed: the stage is not crash-looping.
	breakerClosed breakerState = iota
	// breakerHalfOpen: the breaker is open and a relaunched process is serving on probation; it
	// closes once that process has stayed up BreakerConfig.RecoverAfter.
	breakerHalfOpen
	// breakerOpen: the breaker is open and the stage has no process: every signal gets its
	// on_failure answer at once.
	breakerOpen
)

func (s breakerState) String() string {
	switch s {
	case breakerClosed:
		return "closed"
	case breakerHalfOpen:
		return "half_open"
	default:
		return "open"
	}
}

// breaker is one stage instance's crash-loop circuit breaker: BreakerConfig.Crashes crashes within
// BreakerConfig.Window open it; a process that then stays up BreakerConfig.RecoverAfter closes it.
// While it is open, launches are spaced by the probe interval instead of following at once. The
// supervisor is its only writer; /healthz and the metrics read it.
type breaker struct {
	cfg BreakerConfig

	mu         sync.Mutex
	times      []time.Time // the last cfg.Crashes crash times, a ring once full
	next       int         // the oldest entry of times once it is full
	open       bool
	openedAt   time.Time
	total      int64 // crashes since the instance started
	last       time.Time
	lastReason crashReason
	lastLaunch time.Time
}

func newBreaker(cfg BreakerConfig) *breaker {
	return &breaker{cfg: cfg, times: make([]time.Time, 0, cfg.Crashes)}
}

// crash records a crash at now. recent is the crashes within the window (at most cfg.Crashes);
// opened says this one opened the breaker.
func (b *breaker) crash(now time.Time, r crashReason) (recent int, opened bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.times) < cap(b.times) {
		b.times = append(b.times, now)
	} else {
		b.times[b.next] = now
		b.next = (b.next + 1) % len(b.times)
	}
	b.total++
	b.last, b.lastReason = now, r
	recent = b.recent(now)
	if !b.open && recent >= b.cfg.Crashes {
		b.open, b.openedAt, opened = true, now, true
	}
	return recent, opened
}

func (b *breaker) recent(now time.Time) int {
	n := 0
	for _, t := range b.times {
		if now.Sub(t) < b.cfg.Window {
			n++
		}
	}
	return n
}

// delay is how long to wait, from now, before the next launch. failures is how many launches in a
// row have failed since the last process was up: 0 right after a crash, which is relaunched at
// once while the breaker is closed. While it is open, a launch follows the previous one by a
// random time between half the probe interval and all of it.
func (b *breaker) delay(now time.Time, failures int) time.Duration {
	d := rand.N(relaunchJitter)
	if failures > 0 {
		d = backoff(failures)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open && !b.lastLaunch.IsZero() {
		p := b.cfg.ProbeInterval
		d = max(d, b.lastLaunch.Add(p/2+rand.N(p/2+1)).Sub(now))
	}
	return d
}

// backoff is the wait after the failures-th failed launch in a row: retryMin doubled per failure
// up to retryMax, then jittered down to half.
func backoff(failures int) time.Duration {
	d := retryMax
	if failures <= 16 {
		d = min(retryMin<<(failures-1), retryMax)
	}
	return d/2 + rand.N(d/2+1)
}

// launching records that a launch starts at now, for the probe pacing.
func (b *breaker) launching(now time.Time) {
	b.mu.Lock()
	b.lastLaunch = now
	b.mu.Unlock()
}

// up tells the breaker a process has been up since since. It closes the breaker when that is at
// least cfg.RecoverAfter, and says so with how long it was open; the crash history goes with it,
// so the stage starts afresh.
func (b *breaker) up(now, since time.Time) (closed bool, openFor time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open || now.Sub(since) < b.cfg.RecoverAfter {
		return false, 0
	}
	b.open = false
	b.times, b.next = b.times[:0], 0
	return true, now.Sub(b.openedAt)
}

func (b *breaker) isOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

// breakerStatus is a breaker as /healthz reports it.
type breakerStatus struct {
	open       bool
	openedAt   time.Time
	total      int64
	recent     int
	last       time.Time
	lastReason crashReason
}

func (b *breaker) status(now time.Time) breakerStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	return breakerStatus{open: b.open, openedAt: b.openedAt, total: b.total, recent: b.recent(now), last: b.last, lastReason: b.lastReason}
}
