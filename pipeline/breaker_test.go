package pipeline

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestBreakerOpensAfterCrashesInWindow(t *testing.T) {
	b := newBreaker(BreakerConfig{Crashes: 3, Window: 10 * time.Second, ProbeInterval: time.Second, RecoverAfter: 5 * time.Second})
	t0 := time.Unix(1000, 0)
	// Two crashes, then a third after the first left the window: not a loop.
	for i, at := range []time.Duration{0, 4 * time.Second, 11 * time.Second} {
		n, opened := b.crash(t0.Add(at), crashExited)
		if opened {
			t.Fatalf("crash %d opened the breaker (%d recent)", i, n)
		}
	}
	n, opened := b.crash(t0.Add(12*time.Second), crashHung)
	if !opened || n != 3 || !b.isOpen() {
		t.Fatalf("3 crashes within 10s: opened %v, recent %d", opened, n)
	}
	if _, again := b.crash(t0.Add(13*time.Second), crashStart); again {
		t.Error("an open breaker opened again")
	}
	st := b.status(t0.Add(13 * time.Second))
	if st.total != 5 || st.recent != 3 || !st.open || st.lastReason != crashStart || !st.openedAt.Equal(t0.Add(12*time.Second)) {
		t.Errorf("status %+v", st)
	}

	// A process up since 14s closes it only once it has been up 5s.
	if closed, _ := b.up(t0.Add(18*time.Second), t0.Add(14*time.Second)); closed {
		t.Error("closed after 4s up")
	}
	closed, openFor := b.up(t0.Add(19*time.Second), t0.Add(14*time.Second))
	if !closed || openFor != 7*time.Second || b.isOpen() {
		t.Fatalf("after 5s up: closed %v, open for %v", closed, openFor)
	}
	if closed, _ := b.up(t0.Add(30*time.Second), t0.Add(14*time.Second)); closed {
		t.Error("a closed breaker closed again")
	}
	// The history went with it: it takes 3 new crashes to open again.
	for i := range 2 {
		if _, opened := b.crash(t0.Add(20*time.Second), crashExited); opened {
			t.Fatalf("crash %d after recovery opened it", i)
		}
	}
	if _, opened := b.crash(t0.Add(20*time.Second), crashExited); !opened {
		t.Error("3 new crashes did not open it")
	}
}

func TestRelaunchDelay(t *testing.T) {
	b := newBreaker(BreakerConfig{Crashes: 2, Window: time.Minute, ProbeInterval: 800 * time.Millisecond, RecoverAfter: time.Second})
	now := time.Unix(1000, 0)
	for range 200 {
		if d := b.delay(now, 0); d < 0 || d >= relaunchJitter {
			t.Fatalf("after a crash: %v, want under %v", d, relaunchJitter)
		}
		for f := 1; f <= 40; f++ {
			want := min(retryMin<<min(f-1, 20), retryMax)
			if d := b.delay(now, f); d < want/2 || d > want {
				t.Fatalf("after %d failed launches: %v, want %v to %v", f, d, want/2, want)
			}
		}
	}
	// Open: a launch follows the previous one by half the probe interval to all of it, and
	// never sooner than the backoff says.
	b.crash(now, crashExited)
	b.crash(now, crashExited)
	b.launching(now)
	later := now.Add(100 * time.Millisecond)
	seen := map[bool]bool{}
	for range 200 {
		d := b.delay(later, 0)
		if d < 300*time.Millisecond || d > 700*time.Millisecond {
			t.Fatalf("open, 100ms after a launch: %v, want 300ms to 700ms", d)
		}
		seen[d < 500*time.Millisecond] = true
		if d := b.delay(now.Add(2*time.Second), 0); d >= relaunchJitter {
			t.Fatalf("open, long after the last launch: %v", d)
		}
		if d := b.delay(later, 10); d < retryMax/2 || d > retryMax {
			t.Fatalf("open, after 10 failed launches: %v", d)
		}
	}
	if !seen[true] || !seen[false] {
		t.Errorf("the probe pace is not jittered: %v", seen)
	}
}

func TestStderrTail(t *testing.T) {
	var tl stderrTail
	if got := tl.last(); len(got) != 0 {
		t.Fatalf("empty: %q", got)
	}
	// go-plugin writes a line, then its newline; a long line may come in pieces.
	write := func(s string) { _, _ = tl.Write([]byte(s)) }
	write("starting")
	write("\n")
	write("panic: boom\r\n\ngoroutine 1 [running]:\n")
	for i := range stderrLines {
		write(fmt.Sprintf("frame %d\n", i))
	}
	write(strings.Repeat("x", 3*stderrLineMax))
	write(strings.Repeat("y", 10))
	got := tl.last()
	if len(got) != stderrLines+3 || got[0] != "panic: boom" || got[1] != "..." || got[2] != "frame 0" {
		t.Fatalf("lines: %q", got)
	}
	if last := got[len(got)-1]; last != strings.Repeat("x", stderrLineMax) {
		t.Errorf("unfinished long line: %d bytes %q...", len(last), last[:10])
	}
	// The panic line is shown once while it is still among the last lines.
	var short stderrTail
	_, _ = short.Write([]byte("panic: short\nframe\n"))
	if got := short.last(); len(got) != 2 || got[0] != "panic: short" {
		t.Errorf("short: %q", got)
	}
	var none *stderrTail
	if none.last() != nil {
		t.Error("nil tail")
	}
}
