package registry

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/platoim/plato/internal/natsd/natsdtest"
	"github.com/platoim/plato/internal/testkit"
	"github.com/platoim/plato/sdk/poll"
)

// outageTTL is the registry TTL of the outage tests: also how long a resync waits for nodes.
const outageTTL = 2 * time.Second

// recorder keeps every event of a watch.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func record(t *testing.T, ch <-chan Event) *recorder {
	rec := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range ch {
			rec.mu.Lock()
			rec.events = append(rec.events, ev)
			rec.mu.Unlock()
		}
	}()
	t.Cleanup(func() { <-done })
	return rec
}

func (r *recorder) all() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// index is the position of the first event from from on that matches, or -1.
func (r *recorder) index(from int, typ EventType, id string) int {
	evs := r.all()
	for i := from; i < len(evs); i++ {
		if evs[i].Type == typ && evs[i].Node.ID == id {
			return i
		}
	}
	return -1
}

// waitFor waits for an event from position from on and returns its position.
func (r *recorder) waitFor(t *testing.T, within time.Duration, from int, typ EventType, id string) int {
	t.Helper()
	i := -1
	poll.Within(t, within, fmt.Sprintf("a %s event for %q", typ, id), func() bool {
		i = r.index(from, typ, id)
		return i >= 0
	})
	return i
}

// process is one process's registry on its own NATS connection.
func process(t *testing.T, url, name string, log *slog.Logger) *NATS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc, js, err := Connect(ctx, url, name, log)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	r, err := NewNATS(ctx, js, NATSConfig{Bucket: "outage_registry", TTL: outageTTL, Log: log.With("process", name)})
	if err != nil {
		t.Fatalf("NewNATS: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// keep keeps n registered through r until the test ends.
func keep(t *testing.T, r Registry, n Node) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stopped, err := Keep(ctx, r, 200*time.Millisecond, func() Node { return n }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-stopped })
}

func listed(ctx context.Context, r Registry, role Role, id string) bool {
	nodes, err := r.List(ctx, role)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(nodes, func(n Node) bool { return n.ID == id })
}

// TestNATSRestartWithTheBucketInMemory stops the lone NATS server and starts it again on the same
// address: the registry bucket, kept in memory, is gone. The watch keeps its nodes while NATS is
// away (stale, no delete), the bucket is created again, the nodes kept by Keep put themselves
// again and the watch resumes and becomes fresh; a node that died meanwhile is dropped a TTL
// later, and one that arrives after the restart is seen.
func TestNATSRestartWithTheBucketInMemory(t *testing.T) {
	log := testkit.Logger(t)
	srv := natsdtest.Standalone(t, log)
	a := process(t, srv.URL(), "a", log)
	b := process(t, srv.URL(), "b", log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	keep(t, a, gateway("gw-kept", 1))
	keep(t, b, Node{ID: "state-kept", Role: RoleState, RPCNetwork: "tcp", RPCAddr: "127.0.0.1:1"})
	if err := a.Put(ctx, gateway("gw-dies", 2)); err != nil { // never put again: it "dies" during the outage
		t.Fatal(err)
	}
	ch, err := b.Watch(ctx, RoleGateway)
	if err != nil {
		t.Fatal(err)
	}
	rec := record(t, ch)
	rec.waitFor(t, 10*time.Second, 0, EventPut, "gw-kept")
	rec.waitFor(t, 10*time.Second, 0, EventPut, "gw-dies")

	down := len(rec.all())
	srv.Stop()
	rec.waitFor(t, 20*time.Second, down, EventStale, "")
	if h := b.Health(); h.Up || h.StaleSince.IsZero() || h.Nodes[RoleGateway] != 2 {
		t.Errorf("health during the outage: %+v", h)
	}
	if err := a.Put(ctx, gateway("gw-kept", 1)); err == nil {
		t.Error("a put while NATS is down succeeded")
	}
	// A publish (a session broadcast) fails at once rather than waiting to be replayed late.
	if err := a.nc.Publish("plato.broadcast", []byte("x")); err == nil {
		t.Error("a publish while NATS is down was accepted")
	}
	// Longer than the TTL: nothing expires in a watch's view while the registry is away.
	time.Sleep(2 * outageTTL)
	for _, ev := range rec.all()[down:] {
		if ev.Type == EventDelete {
			t.Fatalf("a node was deleted during the outage: %+v", ev)
		}
	}

	srv.Start()
	back := time.Now()
	poll.Within(t, 20*time.Second, "the bucket to be created again", func() bool {
		return a.Health().BucketCreates+b.Health().BucketCreates > 0
	})
	poll.Within(t, 20*time.Second, "the kept nodes to register again", func() bool {
		return listed(ctx, b, RoleGateway, "gw-kept") && listed(ctx, a, RoleState, "state-kept")
	})
	t.Logf("kept nodes registered again %v after NATS came back", time.Since(back).Round(time.Millisecond))
	gone := rec.waitFor(t, 20*time.Second, down, EventDelete, "gw-dies")
	fresh := rec.waitFor(t, 20*time.Second, down, EventFresh, "")
	if fresh < gone {
		t.Errorf("the view was fresh (event %d) before the dead node was dropped (event %d): %+v", fresh, gone, rec.all()[down:])
	}
	if i := rec.index(down, EventDelete, "gw-kept"); i >= 0 {
		t.Errorf("the kept gateway was deleted: %+v", rec.all()[down:])
	}
	if h := b.Health(); !h.Up || !h.StaleSince.IsZero() || h.WatchReopens == 0 || h.Nodes[RoleGateway] != 1 {
		t.Errorf("health after the outage: %+v", h)
	}

	// A node that arrives now is seen, and a clean delete is seen at once.
	if err := a.Put(ctx, gateway("gw-new", 3)); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, 10*time.Second, fresh, EventPut, "gw-new")
	if err := a.Delete(ctx, RoleGateway, "gw-new"); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, 10*time.Second, fresh, EventDelete, "gw-new")
	// The watch said it had listed the registry once, at its start, not again at the resync.
	synced := 0
	for _, ev := range rec.all() {
		if ev.Type == EventSynced {
			synced++
		}
	}
	if synced != 1 || rec.index(0, EventSynced, "") > down {
		t.Errorf("%d synced events, the first at %d (the outage began at %d): %+v", synced, rec.index(0, EventSynced, ""), down, rec.all())
	}
}

// TestNATSBucketDeletedByHand deletes the bucket under a running registry, as `nats kv del`
// would: it is created again and the watch carries on.
func TestNATSBucketDeletedByHand(t *testing.T) {
	log := testkit.Logger(t)
	srv := natsdtest.Standalone(t, log)
	r := process(t, srv.URL(), "a", log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keep(t, r, gateway("gw-1", 1))
	ch, err := r.Watch(ctx, RoleGateway)
	if err != nil {
		t.Fatal(err)
	}
	rec := record(t, ch)
	rec.waitFor(t, 10*time.Second, 0, EventPut, "gw-1")

	_, js, err := Connect(ctx, srv.URL(), "operator", log)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteKeyValue(ctx, "outage_registry"); err != nil {
		t.Fatal(err)
	}
	poll.Within(t, 20*time.Second, "the bucket to be created again", func() bool { return r.Health().BucketCreates > 0 })
	poll.Within(t, 20*time.Second, "gw-1 to register again", func() bool { return listed(ctx, r, RoleGateway, "gw-1") })
	if err := r.Put(ctx, gateway("gw-2", 1)); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, 20*time.Second, 1, EventPut, "gw-2")
	if i := rec.index(0, EventDelete, "gw-1"); i >= 0 {
		t.Errorf("gw-1 was deleted: %+v", rec.all())
	}
}

// TestNATSClusterLosesANode runs the registry on a three-node cluster: the bucket is replicated on
// all three, and when the node a process is connected to goes away the registry keeps working:
// the process reconnects to another, its nodes stay registered, and new ones are seen.
func TestNATSClusterLosesANode(t *testing.T) {
	log := testkit.Logger(t)
	nodes := natsdtest.Cluster(t, 3, log)
	url := natsdtest.URLs(nodes)
	a := process(t, url, "a", log)
	b := process(t, url, "b", log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	st, err := a.current().Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; r != 3 {
		t.Fatalf("the bucket has %d replicas on a cluster of three, want 3", r)
	}
	keep(t, a, gateway("gw-a", 1))
	ch, err := b.Watch(ctx, RoleGateway)
	if err != nil {
		t.Fatal(err)
	}
	rec := record(t, ch)
	rec.waitFor(t, 10*time.Second, 0, EventPut, "gw-a")

	// Lose the bucket's leader: the other two elect a new one. (Whoever was connected to it
	// reconnects to another node.)
	leader := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Cluster.Leader
	victim := slices.IndexFunc(nodes, func(n *natsdtest.Node) bool { return n.Name() == leader })
	if victim < 0 {
		t.Fatalf("the bucket's leader %q is not a node of the cluster", leader)
	}
	from := len(rec.all())
	nodes[victim].Stop()
	lost := time.Now()
	poll.Within(t, 30*time.Second, "a new gateway to be registered and seen", func() bool {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		if b.Put(pctx, gateway("gw-b", 2)) != nil {
			return false
		}
		return rec.index(from, EventPut, "gw-b") >= 0
	})
	poll.Within(t, 30*time.Second, "the registry to list both gateways", func() bool {
		return listed(ctx, b, RoleGateway, "gw-a") && listed(ctx, a, RoleGateway, "gw-b")
	})
	t.Logf("registry working %v after losing a node", time.Since(lost).Round(time.Millisecond))
	rec.waitFor(t, 10*time.Second, from, EventPut, "gw-a") // still refreshed
	if i := rec.index(0, EventDelete, "gw-a"); i >= 0 {
		t.Errorf("gw-a was deleted: %+v", rec.all())
	}
	if h := b.Health(); h.BucketCreates != 0 {
		t.Errorf("the bucket was created again (%d): the cluster should have kept it", h.BucketCreates)
	}
}
