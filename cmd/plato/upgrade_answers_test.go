package main

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestRetiredGatewayWaitsForItsControlAnswers: a gateway process retired by an upgrade exits only
// once the control connection that asked for it is answered, and takes no new one meanwhile.
func TestRetiredGatewayWaitsForItsControlAnswers(t *testing.T) {
	u := &upgrader{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if !u.take() {
		t.Fatal("a live process refused a control connection")
	}
	exited := make(chan struct{})
	go func() { u.awaitAnswers(); close(exited) }()
	select {
	case <-exited:
		t.Fatal("the process exited with a control connection unanswered")
	case <-time.After(200 * time.Millisecond):
	}
	for !func() bool { u.mu.Lock(); defer u.mu.Unlock(); return u.retired }() {
		time.Sleep(time.Millisecond)
	}
	if u.take() {
		t.Fatal("a retired process took a new control connection")
	}
	u.answeredOne()
	select {
	case <-exited:
	case <-time.After(answersBound):
		t.Fatal("the process did not exit once its control connection was answered")
	}
}
