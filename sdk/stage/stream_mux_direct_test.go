package stage

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// directConn is a muxConn[[]byte, string] callers may write to themselves (directSender), as the
// data socket: it keeps every byte written, in order, and answers what the test tells it to.
type directConn struct {
	mu      sync.Mutex
	written bytes.Buffer
	half    bool          // the next trySend writes only half of its request
	hold    chan struct{} // closed: a trySend may return (it waits on it once entered)
	entered chan struct{} // a trySend has started
	replies chan uint64
	gone    chan struct{}
}

func (c *directConn) trySend(b []byte) (int, error) {
	c.entered <- struct{}{}
	<-c.hold
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(b)
	if c.half {
		c.half, n = false, len(b)/2
	}
	c.written.Write(b[:n])
	return n, nil
}

func (c *directConn) send(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.written.Write(b)
	return nil
}

func (c *directConn) recv() (uint64, string, error) {
	select {
	case id := <-c.replies:
		return id, "ok", nil
	case <-c.gone:
		return 0, "", errors.New("stream ended")
	}
}

// TestMuxDirectPartialWrite: a caller writes half its request and hands the rest to the sender
// while another caller's request is already queued for the sender. The rest must go first, whole,
// and neither call may hang (the sender must not wait for the token the first caller passed on).
func TestMuxDirectPartialWrite(t *testing.T) {
	c := &directConn{half: true, hold: make(chan struct{}), entered: make(chan struct{}, 2),
		replies: make(chan uint64, 2), gone: make(chan struct{})}
	s := newMuxStream[[]byte, string](c, func() { close(c.gone) })
	t.Cleanup(func() { s.fail(ErrClosed) })
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()

	ends := make(chan callEnd, 2)
	go func() { _, end := s.call(ctx, 1, []byte("AAAAAAAA")); ends <- end }()
	<-c.entered // caller 1 holds the token, writing
	go func() { _, end := s.call(ctx, 2, []byte("BBBB")); ends <- end }()
	time.Sleep(50 * time.Millisecond) // caller 2 found the token taken and queued for the sender
	close(c.hold)                     // caller 1 writes half and hands the rest over
	for deadline := time.Now().Add(patience); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		n := c.written.Len()
		c.mu.Unlock()
		if n == len("AAAAAAAABBBB") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes written: the sender hung", n)
		}
	}
	c.replies <- 1
	c.replies <- 2
	for range 2 {
		select {
		case end := <-ends:
			if end != callAnswered {
				t.Fatalf("call ended %v", end)
			}
		case <-time.After(patience):
			t.Fatal("a call hung")
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if got := c.written.String(); got != "AAAAAAAABBBB" {
		t.Fatalf("written %q, want the first request whole, then the second", got)
	}
}
