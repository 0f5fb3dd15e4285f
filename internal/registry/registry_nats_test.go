package registry

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/platoim/plato/internal/natsd"
	"github.com/platoim/plato/sdk/poll"
)

// startNATS runs an embedded server on a random port and returns a JetStream context on it.
func startNATS(t *testing.T) jetstream.JetStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	srv, err := natsd.Start(ctx, natsd.Config{StoreDir: t.TempDir()}, logger)
	if err != nil {
		t.Fatalf("starting nats: %v", err)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	nc, js, err := Connect(ctx, srv.ClientURL(), "registry-test", logger)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return js
}

func newTestNATS(t *testing.T, ttl time.Duration) *NATS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := NewNATS(ctx, startNATS(t), NATSConfig{Bucket: "test_registry", TTL: ttl, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("NewNATS: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// nextEvent waits for one event, failing the test after a generous timeout.
func nextEvent(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return Event{}
}

func gateway(id string, conns int64) Node {
	return Node{
		ID: id, Role: RoleGateway, Endpoint: "127.0.0.1:8900", RPCNetwork: "tcp", RPCAddr: "127.0.0.1:9000",
		Load:      Load{Conns: conns, BandwidthBytesPerSec: 1e9},
		StartedAt: time.Unix(1_790_000_000, 0).UTC(), UpdatedAt: time.Unix(1_790_000_001, 0).UTC(),
	}
}

func TestNATSPutListWatchDelete(t *testing.T) {
	r := newTestNATS(t, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// An ID with key-hostile characters must survive the round trip, including in delete events.
	odd := "gw.1:a=b c"
	for _, n := range []Node{gateway("gw-1", 1), gateway(odd, 2), {ID: "st-1", Role: RoleState, RPCNetwork: "unix", RPCAddr: "/tmp/st.sock"}} {
		if err := r.Put(ctx, n); err != nil {
			t.Fatalf("Put %s: %v", n.ID, err)
		}
	}

	nodes, err := r.List(ctx, RoleGateway)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(nodes) != 2 {
		t.Fatalf("List returned %d gateways, want 2: %+v", len(nodes), nodes)
	}
	got := map[string]Node{}
	for _, n := range nodes {
		got[n.ID] = n
	}
	if n := got[odd]; n.Load.Conns != 2 || n.Role != RoleGateway || !n.StartedAt.Equal(gateway("", 0).StartedAt) {
		t.Errorf("listed node %q = %+v", odd, n)
	}
	if states, err := r.List(ctx, RoleState); err != nil || len(states) != 1 || states[0].RPCNetwork != "unix" {
		t.Errorf("List(state) = %+v, %v", states, err)
	}

	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	ch, err := r.Watch(wctx, RoleGateway)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	initial := map[string]bool{}
	for range 2 {
		ev := nextEvent(t, ch)
		if ev.Type != EventPut {
			t.Fatalf("initial event %+v, want a put", ev)
		}
		initial[ev.Node.ID] = true
	}
	if !initial["gw-1"] || !initial[odd] {
		t.Fatalf("initial events named %v", initial)
	}
	// Then, once, that these were all the nodes registered.
	if ev := nextEvent(t, ch); ev.Type != EventSynced {
		t.Fatalf("after the initial puts got %+v, want synced", ev)
	}

	if err := r.Put(ctx, gateway("gw-1", 42)); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, ch); ev.Type != EventPut || ev.Node.ID != "gw-1" || ev.Node.Load.Conns != 42 {
		t.Fatalf("after refresh got %+v", ev)
	}

	if err := r.Delete(ctx, RoleGateway, odd); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, ch); ev.Type != EventDelete || ev.Node.ID != odd || ev.Node.Role != RoleGateway {
		t.Fatalf("after delete got %+v", ev)
	}
	if nodes, err := r.List(ctx, RoleGateway); err != nil || len(nodes) != 1 || nodes[0].ID != "gw-1" {
		t.Fatalf("List after delete = %+v, %v", nodes, err)
	}

	// A new watcher does not replay the deleted node.
	ch2, err := r.Watch(wctx, RoleGateway)
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, ch2); ev.Type != EventPut || ev.Node.ID != "gw-1" {
		t.Fatalf("second watcher's first event = %+v", ev)
	}
	if ev := nextEvent(t, ch2); ev.Type != EventSynced {
		t.Fatalf("second watcher's second event = %+v, want synced", ev)
	}

	wcancel()
	for _, c := range []<-chan Event{ch, ch2} {
		deadline := time.After(10 * time.Second)
	drain:
		for {
			select {
			case _, ok := <-c:
				if !ok {
					break drain
				}
			case <-deadline:
				t.Fatal("watch channel not closed after ctx ended")
			}
		}
	}
}

func TestNATSTTLExpiry(t *testing.T) {
	r := newTestNATS(t, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ch, err := r.Watch(ctx, RoleGateway)
	if err != nil {
		t.Fatal(err)
	}
	// No node yet: the watch says so before anything else.
	if ev := nextEvent(t, ch); ev.Type != EventSynced {
		t.Fatalf("got %+v, want synced", ev)
	}
	if err := r.Put(ctx, gateway("gw-dying", 1)); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, ch); ev.Type != EventPut || ev.Node.ID != "gw-dying" {
		t.Fatalf("got %+v, want the put", ev)
	}
	// Not refreshed: the server expires it and its marker reaches the watcher. (Meanwhile the
	// watch, holding a node and hearing nothing for half the TTL, may suspect itself and open
	// again: stale, the node again from the snapshot, fresh. Nothing else.)
	for {
		ev := nextEvent(t, ch)
		if ev.Type == EventDelete && ev.Node.ID == "gw-dying" {
			break
		}
		if ev.Type == EventStale || ev.Type == EventFresh || ev.Type == EventPut && ev.Node.ID == "gw-dying" {
			continue
		}
		t.Fatalf("got %+v, want the expiry as a delete", ev)
	}
	if nodes, err := r.List(ctx, RoleGateway); err != nil || len(nodes) != 0 {
		t.Fatalf("List after expiry = %+v, %v", nodes, err)
	}
}

func TestNATSRejectsEmptyNames(t *testing.T) {
	r := newTestNATS(t, time.Minute)
	ctx := context.Background()
	if err := r.Put(ctx, Node{Role: RoleGateway}); err == nil {
		t.Error("Put with empty ID succeeded")
	}
	if err := r.Put(ctx, Node{ID: "x"}); err == nil {
		t.Error("Put with empty role succeeded")
	}
	if _, err := r.Watch(ctx, ""); err == nil {
		t.Error("Watch with empty role succeeded")
	}
}

func TestKeyEscaping(t *testing.T) {
	for _, id := range []string{"gw-1", "a.b", "=", "=41", "x y\x00\xff", "路由", "a/b_c"} {
		key, err := nodeKey(RoleGateway, id)
		if err != nil {
			t.Fatal(err)
		}
		if !validKey(key) {
			t.Errorf("key %q for id %q is not a valid NATS key", key, id)
		}
		role, got, err := parseKey(key)
		if err != nil || role != RoleGateway || got != id {
			t.Errorf("parseKey(%q) = %q, %q, %v; want %q", key, role, got, err, id)
		}
	}
	if a, b := escapeKey("a=2Eb"), escapeKey("a.b"); a == b {
		t.Errorf("escaping collides: %q", a)
	}
	for _, bad := range []string{"gateway", "gateway.=", "gateway.=4", "gateway.=zz"} {
		if _, _, err := parseKey(bad); err == nil {
			t.Errorf("parseKey(%q) succeeded", bad)
		}
	}
}

func validKey(k string) bool {
	if k == "" || k[0] == '.' || k[len(k)-1] == '.' {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !plainKeyByte(k[i]) && k[i] != '=' && k[i] != '.' {
			return false
		}
	}
	return true
}

// Cancelling while Watch is being set up (ipconf shutting down just after starting) must neither
// race nor leave the channel open. nats.go's own context handling races there; see openWatcher.
func TestNATSWatchCancelledDuringSetup(t *testing.T) {
	r := newTestNATS(t, time.Minute)
	if err := r.Put(context.Background(), gateway("gw-1", 1)); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		ctx, cancel := context.WithCancel(context.Background())
		// Jitter, not synchronisation: the cancel should land at varying points of the setup.
		go func() {
			time.Sleep(time.Duration(i%20) * 50 * time.Microsecond)
			cancel()
		}()
		// With no state node the snapshot is empty, where nats.go sends its end-of-snapshot
		// marker from inside Watch: that is the racy case.
		role := RoleState
		if i%3 == 0 {
			role = RoleGateway
		}
		ch, err := r.Watch(ctx, role)
		if err != nil {
			if ctx.Err() == nil {
				t.Fatalf("Watch %d: %v", i, err)
			}
			continue
		}
		deadline := time.After(10 * time.Second)
	drain:
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					break drain
				}
			case <-deadline:
				t.Fatalf("watch %d not closed after cancel", i)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Watch(ctx, RoleGateway); err == nil {
		t.Error("Watch with a cancelled context succeeded")
	}
	if _, err := r.List(ctx, RoleGateway); err == nil {
		t.Error("List with a cancelled context succeeded")
	}
}

// Follow returns knowing the nodes registered when it started: a gateway that starts must not
// refuse logins for want of state servers it has not heard of yet. Later changes still follow.
func TestFollowReturnsWithTheRegisteredNodes(t *testing.T) {
	r := newTestNATS(t, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range []string{"st-1", "st-2"} {
		if err := r.Put(ctx, Node{ID: id, Role: RoleState, RPCNetwork: "tcp", RPCAddr: "127.0.0.1:1"}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	known := map[string]bool{}
	put := func(n Node) { mu.Lock(); known[n.ID] = true; mu.Unlock() }
	remove := func(id string) { mu.Lock(); delete(known, id); mu.Unlock() }
	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel()
	if err := Follow(fctx, r, RoleState, put, remove); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := len(known)
	mu.Unlock()
	if got != 2 {
		t.Fatalf("Follow returned knowing %d of the 2 registered state servers", got)
	}
	if err := r.Delete(ctx, RoleState, "st-1"); err != nil {
		t.Fatal(err)
	}
	poll.Within(t, 10*time.Second, "the delete to follow", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return !known["st-1"] && known["st-2"]
	})

	// An empty role: Follow returns too, and what registers later is followed.
	var gws sync.Map
	if err := Follow(fctx, r, RoleGateway, func(n Node) { gws.Store(n.ID, true) }, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if err := r.Put(ctx, gateway("gw-1", 1)); err != nil {
		t.Fatal(err)
	}
	poll.Within(t, 10*time.Second, "a gateway registered later to follow", func() bool {
		_, ok := gws.Load("gw-1")
		return ok
	})
}
