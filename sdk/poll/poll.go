// Package poll waits, in tests, for what happens asynchronously: a message to arrive, a server to
// see a peer, a process to exit. It checks a condition until it holds instead of sleeping a fixed
// time, so a test is as fast as the system allows and still passes on a loaded machine. Plato's own
// tests use it; so can yours, for a business server or a plugin tested against Plato.
package poll

import (
	"testing"
	"time"
)

// Timeout is how long Until waits. It is generous on purpose: tests run under -race on busy
// machines, and a condition that holds ends the wait at once anyway.
const Timeout = 15 * time.Second

// maxInterval bounds the pause between two checks; the first pauses are shorter, so a condition
// that holds a moment later is seen a moment later.
const maxInterval = 20 * time.Millisecond

// Until checks cond until it holds, and fails the test after Timeout, saying what it waited for.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, Timeout, what, cond)
}

// Within is Until with a timeout of its own.
func Within(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Wait(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Wait checks cond until it holds or timeout passes, and reports whether it held: for a test that
// must go on either way.
func Wait(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, maxInterval)
	}
	return true
}
