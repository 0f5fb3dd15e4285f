package tick

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/poll"
)

func TestEveryTicksUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(ctx, time.Millisecond, func(time.Time) { n.Add(1) })
	}()
	poll.Until(t, "three ticks", func() bool { return n.Load() >= 3 })
	cancel()
	select {
	case <-done:
	case <-time.After(poll.Timeout):
		t.Fatal("Every did not return after its context ended")
	}
	after := n.Load()
	time.Sleep(10 * time.Millisecond) // nothing to wait for: the point is that nothing happens
	if n.Load() != after {
		t.Error("f ran after Every returned")
	}
}
