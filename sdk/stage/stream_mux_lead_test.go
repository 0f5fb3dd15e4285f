package stage

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// leadConn is a muxConn[[]byte, string] whose callers may write their requests and read their
// results themselves (directSender, leadReader), as the data socket: recv returns the ids the test
// sends on replies, and a deadline in the past makes a blocked recv return as a socket's would.
type leadConn struct {
	replies  chan uint64
	deadline chan struct{}
	gone     chan struct{}
	onSend   func(b []byte) // called with each request a caller writes
}

func (c *leadConn) trySend(b []byte) (int, error) {
	c.onSend(b)
	return len(b), nil
}

func (c *leadConn) send([]byte) error { return nil }

func (c *leadConn) setReadDeadline(t time.Time) error {
	if !t.IsZero() && t.Before(time.Now()) {
		select {
		case c.deadline <- struct{}{}:
		default:
		}
	}
	return nil
}

func (c *leadConn) recv() (uint64, string, error) {
	select {
	case id := <-c.replies:
		return id, "ok", nil
	case <-c.deadline:
		return 0, "", os.ErrDeadlineExceeded
	case <-c.gone:
		return 0, "", errors.New("stream ended")
	}
}

// A caller reads its result itself only while it waits for it: when the receiver routed it
// between the caller's write and its look at the reading role (the receiver then gave the role up,
// nothing being due), reading would wait for a result that never comes.
func TestMuxLeadResultRoutedFirst(t *testing.T) {
	c := &leadConn{replies: make(chan uint64, 2), deadline: make(chan struct{}, 1), gone: make(chan struct{})}
	var s *muxStream[[]byte, string]
	c.onSend = func(b []byte) {
		if string(b) != "second" {
			return
		}
		c.replies <- 1 // the first call's late result, then this one's
		c.replies <- 2
		for deadline := time.Now().Add(patience); waiters(s) > 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	s = newMuxStream[[]byte, string](c, func() { close(c.gone) })
	t.Cleanup(func() { s.fail(ErrClosed) })

	// The first call reads for itself, leaves at its deadline, and passes the role to the
	// receiver, as its result is still due.
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, end := s.call(short, 1, []byte("first")); end != callCtxEnded {
		t.Fatalf("first call ended %v, want its ctx", end)
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), patience)
	defer cancel2()
	start := time.Now()
	if r, end := s.call(ctx, 2, []byte("second")); end != callAnswered || r != "ok" {
		t.Fatalf("second call: %q, ended %v", r, end)
	}
	if d := time.Since(start); d > patience/2 {
		t.Fatalf("the second call took %v: it waited to read a result already routed", d)
	}
}
