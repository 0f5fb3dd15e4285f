package gateway

import (
	"testing"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/protocol"
)

func TestStallVerdict(t *testing.T) {
	const limit = 1000
	stall := 5 * time.Second
	s := int64(time.Second)
	for _, tc := range []struct {
		name               string
		lower, upper       int
		since, now         int64
		wantSince          int64
		wantWatch, wantCut bool
	}{
		{"drained: no longer watched", 0, 0, 3 * s, 9 * s, 0, false, false},
		{"at most the limit: no longer watched", 900, 1000, 3 * s, 9 * s, 0, false, false},
		{"maybe above: watched, clock reset", 1000, 1500, 3 * s, 9 * s, 0, true, false},
		{"surely above, first time: clock starts", 1001, 1500, 0, 9 * s, 9 * s, true, false},
		{"above for less than the stall", 5000, 5000, 3 * s, 8*s - 1, 3 * s, true, false},
		{"above for the stall: cut", 5000, 5000, 3 * s, 8 * s, 3 * s, true, true},
		{"dipped below, back above: starts again", 1001, 1001, 0, 20 * s, 20 * s, true, false},
	} {
		since, watch, cut := stallVerdict(tc.lower, tc.upper, limit, tc.since, tc.now, stall)
		if since != tc.wantSince || watch != tc.wantWatch || cut != tc.wantCut {
			t.Errorf("%s: got since %v watch %v cut %v, want %v %v %v", tc.name, since, watch, cut, tc.wantSince, tc.wantWatch, tc.wantCut)
		}
	}
}

func TestSweepInterval(t *testing.T) {
	for stall, want := range map[time.Duration]time.Duration{
		10 * time.Millisecond: 20 * time.Millisecond,
		time.Second:           200 * time.Millisecond,
		5 * time.Second:       time.Second,
		time.Minute:           time.Second,
	} {
		if got := sweepInterval(stall); got != want {
			t.Errorf("sweepInterval(%v) = %v, want %v", stall, got, want)
		}
	}
}

// downFrame is a Downlink of n body bytes.
func downFrame(n int) *fleet.DownFrame {
	return &fleet.DownFrame{Signal: int8(protocol.SigDownlink), Body: make([]byte, n)}
}

// idleConn is a logged-in connection of an unstarted gateway whose flusher is marked running, so
// what is queued stays queued.
func idleConn(gw *Gateway) *conn {
	return &conn{id: 1, gw: gw, fd: -1, state: stateLoggedIn, flushing: true}
}

func TestQueueIsBoundedInBytes(t *testing.T) {
	gw := newIdleGateway(t)
	gw.cfg.WriteQueue, gw.cfg.WriteQueueBytes = 1000, 10_000
	c := idleConn(gw)
	frame := protocol.HeaderLen + 1000
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range 10_000 / frame {
		if _, full := c.appendLocked(outFrame{down: downFrame(1000)}, false); full {
			t.Fatalf("frame %d refused with %d bytes queued", i, c.queued)
		}
	}
	if _, full := c.appendLocked(outFrame{down: downFrame(1000)}, false); !full {
		t.Fatalf("a frame over %d bytes was queued (%d queued)", gw.cfg.WriteQueueBytes, c.queued)
	}
	// A Close must get out whatever the bound.
	if _, full := c.appendLocked(outFrame{down: downFrame(10)}, true); full || int(c.queued) != 9*frame+protocol.HeaderLen+10 {
		t.Fatalf("forced frame: full %v, %d bytes queued", full, c.queued)
	}
	// The batch being written counts: it is still the gateway's memory.
	c.queue, c.queued, c.writing = nil, 0, 9_000
	if _, full := c.appendLocked(outFrame{down: downFrame(1000)}, false); !full {
		t.Fatal("the batch being written was not counted against the bound")
	}
	// A frame larger than the bound still fits in an empty queue.
	c.writing = 0
	if _, full := c.appendLocked(outFrame{down: downFrame(50_000)}, false); full {
		t.Fatal("a large frame was refused by an empty queue")
	}
}

func TestConnectionsAreWatchedOnlyWhenTheyMayBeAboveTheThreshold(t *testing.T) {
	gw := newIdleGateway(t)
	gw.slow.limit = 5000
	c := idleConn(gw)
	c.flushing = false // the test plays the flusher's part by hand
	watched := func() bool {
		gw.slow.mu.Lock()
		defer gw.slow.mu.Unlock()
		_, in := gw.slow.conns[c]
		if in != c.watched {
			t.Fatalf("conn.watched %v, in the set %v", c.watched, in)
		}
		return in
	}
	enqueue := func(n int) {
		c.mu.Lock()
		c.appendLocked(outFrame{down: downFrame(n)}, false)
		c.mu.Unlock()
	}
	// The flusher takes the queue, writes it, and the kernel has it.
	write := func() {
		c.mu.Lock()
		c.sent += c.writing
		c.writing, c.queued, c.queue = c.queued, 0, nil
		c.sent += c.writing
		c.writing = 0
		c.mu.Unlock()
	}
	enqueue(2000)
	write()
	enqueue(2000)
	write()
	if watched() {
		t.Fatal("watched with 4 KB ever written, under the 5 KB threshold")
	}
	enqueue(2000)
	if !watched() {
		t.Fatal("not watched with 6 KB written or queued since the last look, over the 5 KB threshold")
	}
	// The watch looks: the device read everything (no socket: the kernel's part reads 0) and only
	// the queued frame is left, under the threshold: it lets go and starts counting again.
	if unsent, cut := c.checkUnsent(gw.slow, 1); unsent != protocol.HeaderLen+2000 || cut || watched() {
		t.Fatalf("after a look: unsent %d, cut %v, watched %v", unsent, cut, c.watched)
	}
	if c.sent != 0 {
		t.Fatalf("sent %d after a look that found the kernel's queue empty", c.sent)
	}
	write()
	enqueue(2000)
	if watched() {
		t.Fatal("watched again with 4 KB since the last look")
	}
	// Closing lets go of a watched connection.
	enqueue(2000)
	if !watched() {
		t.Fatal("not watched with 6 KB since the last look")
	}
	c.mu.Lock()
	gw.slow.unwatchLocked(c)
	c.mu.Unlock()
	if watched() || gw.slow.watched.Load() != 0 {
		t.Fatal("still watched")
	}
}

func TestAStalledConnectionIsCutAfterTheStall(t *testing.T) {
	gw := newIdleGateway(t)
	gw.slow.limit, gw.slow.maxStall = 1000, time.Second
	c := idleConn(gw)
	c.mu.Lock()
	c.appendLocked(outFrame{down: downFrame(5000)}, false)
	c.mu.Unlock()
	s := int64(time.Second)
	for _, step := range []struct {
		at      int64
		wantCut bool
	}{{s, false}, {s + s/2, false}, {2*s - 1, false}, {2 * s, true}} {
		if _, cut := c.checkUnsent(gw.slow, step.at); cut != step.wantCut {
			t.Fatalf("at %v: cut %v, want %v", time.Duration(step.at), cut, step.wantCut)
		}
	}
}
