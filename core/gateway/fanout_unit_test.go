package gateway

import (
	"log/slog"
	"testing"
	"time"

	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/fanout"
	"github.com/platoim/plato/sdk/delivery"
	"github.com/platoim/plato/sdk/protocol"
)

func TestRecentIDsExpireAndEvictOldest(t *testing.T) {
	r := newRecentIDs(time.Minute, 3)
	t0 := time.Unix(1000, 0)
	r.add(1, t0)
	r.add(2, t0.Add(time.Second))
	if !r.has(1, t0.Add(59*time.Second)) || r.has(1, t0.Add(time.Minute)) {
		t.Fatal("id 1 must be remembered for exactly a minute")
	}
	if r.has(3, t0) {
		t.Fatal("an id never added is remembered")
	}
	// Re-adding extends the expiry; the older entry must not evict the newer one.
	r.add(1, t0.Add(30*time.Second))
	r.add(3, t0.Add(31*time.Second)) // fifo full (1, 2, 1): the stale 1 goes, id 1 stays
	if !r.has(1, t0.Add(80*time.Second)) {
		t.Fatal("re-added id 1 lost its new expiry")
	}
	r.add(4, t0.Add(32*time.Second)) // evicts the oldest, 2
	if r.has(2, t0.Add(32*time.Second)) {
		t.Fatal("the oldest id was not evicted past the bound")
	}
	for _, id := range []uint64{1, 3, 4} {
		if !r.has(id, t0.Add(33*time.Second)) {
			t.Fatalf("id %d lost", id)
		}
	}
	// Everything expired goes on the next add.
	r.add(5, t0.Add(10*time.Minute))
	if n := r.len(); n != 1 {
		t.Fatalf("%d ids remembered, want 1", n)
	}
}

func TestRecentIDsStayBounded(t *testing.T) {
	r := newRecentIDs(time.Hour, 100)
	now := time.Now()
	for i := range uint64(100_000) {
		r.add(i%150, now)
	}
	if n := r.len(); n > 100 {
		t.Fatalf("%d ids remembered, bound 100", n)
	}
	if len(r.fifo) > 2*100+ackMinTrim {
		t.Fatalf("fifo grew to %d", len(r.fifo))
	}
}

func TestLogLimiter(t *testing.T) {
	var l logLimiter
	t0 := time.Unix(1000, 0)
	if !l.allow(t0, time.Second) || l.allow(t0.Add(999*time.Millisecond), time.Second) || !l.allow(t0.Add(time.Second), time.Second) {
		t.Fatal("logLimiter must let one call through per interval")
	}
}

// newIdleGateway is a gateway that is never started: enough to drive the index and fan-out.
func newIdleGateway(t testing.TB) *Gateway {
	t.Helper()
	gc := config.Default().Gateway
	gc.ID, gc.RPCAddr = "gw-unit", "127.0.0.1:0"
	gw, err := New(Config{Gateway: gc, Apps: &apps.Table{}}, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return gw
}

// fakeMembers adds n logged-in connections of app to session. Their flusher is marked running so
// queued frames stay in the queue for the test to inspect.
func fakeMembers(gw *Gateway, app, session string, n int) []*conn {
	conns := make([]*conn, n)
	for i := range conns {
		c := &conn{id: uint64(i + 1), gw: gw, fd: -1, state: stateLoggedIn, key: didKey(app, "d"), flushing: true}
		gw.joinSession(c, session)
		conns[i] = c
	}
	return conns
}

func TestSnapshotFollowsChanges(t *testing.T) {
	gw := newIdleGateway(t)
	conns := fakeMembers(gw, "a", "s", 3)
	key := sessionKey("a", "s")
	first := gw.sessions.members(key)
	if again := gw.sessions.members(key); &again[0] != &first[0] {
		t.Fatal("an unchanged session must reuse its snapshot")
	}
	gw.leaveSession(conns[0], "s")
	if got := gw.sessions.members(key); len(got) != 2 || len(first) != 3 {
		t.Fatalf("after a leave: snapshot %d members, old snapshot %d (must not change)", len(got), len(first))
	}
	gw.joinSession(conns[0], "s")
	if got := gw.sessions.members(key); len(got) != 3 {
		t.Fatalf("after a join: %d members", len(got))
	}
}

// A session of 100k members on one gateway: one frame, encoded once, queued on each logged-in
// member exactly once.
func TestFanOutLargeSessionSharesOneFrame(t *testing.T) {
	gw := newIdleGateway(t)
	const n = 100_000
	conns := fakeMembers(gw, "a", "big", n)
	conns[7].state = statePending
	conns[8].state = stateClosing
	msg := &fanout.Message{AppID: "a", Session: "big", MsgID: 99, QoS: delivery.AtLeastOnce, Payload: []byte("hi")}
	if got := gw.fanOut(msg); got != n-2 {
		t.Fatalf("reached %d members, want %d", got, n-2)
	}
	var frame []byte
	for i, c := range conns {
		if i == 7 || i == 8 {
			if len(c.queue) != 0 {
				t.Fatalf("member %d (not logged in) got %d frames", i, len(c.queue))
			}
			continue
		}
		if len(c.queue) != 1 {
			t.Fatalf("member %d got %d frames", i, len(c.queue))
		}
		b := c.queue[0].broadcast
		if frame == nil {
			frame = b
		} else if &b[0] != &frame[0] {
			t.Fatalf("member %d got its own copy of the frame", i)
		}
	}
	h, err := protocol.ParseHeader(frame, protocol.DefaultMaxBody)
	if err != nil || h.Signal != protocol.SigDownlink || h.Flags != protocol.FlagBroadcast || h.Seq != 99 {
		t.Fatalf("frame header %+v, %v", h, err)
	}
	if !gw.acks.has(99, time.Now()) {
		t.Fatal("an at-least-once broadcast is not awaiting ACKs")
	}
}

func BenchmarkFanOut100k(b *testing.B) {
	gw := newIdleGateway(b)
	gw.cfg.WriteQueue, gw.cfg.WriteQueueBytes = 1<<30, 1<<30
	conns := fakeMembers(gw, "a", "big", 100_000)
	msg := &fanout.Message{AppID: "a", Session: "big", MsgID: 1, QoS: delivery.AtMostOnce, Payload: make([]byte, 128)}
	b.ReportAllocs()
	for b.Loop() {
		gw.fanOut(msg)
		for _, c := range conns {
			c.queue, c.queued = c.queue[:0], 0
		}
	}
}
