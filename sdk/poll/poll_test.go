package poll

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	if !Wait(time.Minute, func() bool { return n.Add(1) == 5 }) {
		t.Fatal("Wait gave up on a condition that held")
	}
	if n.Load() != 5 {
		t.Errorf("cond was called %d times after it held, want 5 in all", n.Load())
	}
}

func TestWaitGivesUp(t *testing.T) {
	if Wait(30*time.Millisecond, func() bool { return false }) {
		t.Fatal("Wait reported a condition that never held")
	}
}

// failRecorder is a testing.TB that records Fatalf instead of stopping the test.
type failRecorder struct {
	testing.TB
	failed string
}

func (r *failRecorder) Helper() {}
func (r *failRecorder) Fatalf(format string, args ...any) {
	r.failed = format
}

func TestWithinFailsTheTest(t *testing.T) {
	r := &failRecorder{TB: t}
	Within(r, 10*time.Millisecond, "never", func() bool { return false })
	if r.failed == "" {
		t.Fatal("Within did not fail the test")
	}
	r.failed = ""
	Until(r, "at once", func() bool { return true })
	if r.failed != "" {
		t.Fatal("Until failed on a condition that held")
	}
}
