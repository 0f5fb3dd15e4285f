package state

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// The unit tests build a Server with New and never Start it: no listener, no NATS, no timing
// wheel running. Its gateway, business and peer links are real links whose Kitex clients are
// swapped for in-memory fakes (fakes_test.go) before first use, so everything between Deliver and
// the bytes a gateway would get runs as in production.

const (
	testApp = "app"
	testKey = "unit-key-of-app-0123456789"
	// otherApp has a key too: its calls must never reach testApp's devices.
	otherApp = "other"
	otherKey = "unit-key-of-other-0123456789"
	testGW   = "gw-1"
)

// testServer is a Server with one fake gateway (testGW) and, unless disabled, a fake business
// server for every app.
type testServer struct {
	*Server
	gw  *fakeGateway
	biz *fakeBusiness
}

// testApps are the apps of a test server: testApp and otherApp, each with its key and the fake
// business server.
func testApps() map[string]config.App {
	app := func(key string) config.App {
		return config.App{
			Keys: map[string]string{"k": key}, Business: fakeBusinessAddr,
			Auth: config.AppAuth{JWT: config.JWTAuth{Secrets: map[string]string{"k": "a-unit-test-jwt-secret-of-32-bytes"}}},
		}
	}
	return map[string]config.App{testApp: app(testKey), otherApp: app(otherKey)}
}

// newTestServer builds a Server; adjust may change its configuration before New.
func newTestServer(t testing.TB, adjust ...func(*Config)) *testServer {
	t.Helper()
	return newTestServerApps(t, testApps(), adjust...)
}

// newTestServerApps is newTestServer with apps of the test's own.
func newTestServerApps(t testing.TB, appsCfg map[string]config.App, adjust ...func(*Config)) *testServer {
	t.Helper()
	table, err := apps.New(appsCfg, apps.Options{})
	if err != nil {
		t.Fatalf("apps: %v", err)
	}
	cfg := Config{State: config.Default().State}
	cfg.ID = "state-unit"
	cfg.Addr = "127.0.0.1:0"
	cfg.HTTPAddr = "" // the HTTP API has tests of its own (httpapi, core/platform)
	cfg.MaxInflight = 8
	cfg.PushTimeout = poll.Timeout // a wait for ACKs ends with the last ACK, not this
	cfg.Apps = table
	// Frames leave at once: tests wait for them by polling, never for a linger.
	cfg.Batch = config.Batch{MaxSize: 128, MaxDelay: -1, Lanes: 2}
	for _, f := range adjust {
		f(&cfg)
	}
	s, err := New(cfg, newMemRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	ts := &testServer{Server: s}
	ts.gw = ts.addGateway(t, testGW)
	ts.biz = ts.addBusiness(fakeBusinessAddr)
	return ts
}

// addGateway links the server to a fake gateway the way the registry watch would.
func (ts *testServer) addGateway(t testing.TB, id string) *fakeGateway {
	t.Helper()
	ts.gateways.Put(registry.Node{ID: id, Role: registry.RoleGateway, RPCNetwork: "tcp", RPCAddr: "fake-" + id})
	l, ok := ts.gateways.Get(id)
	if !ok {
		t.Fatalf("gateway %s not linked", id)
	}
	fg := &fakeGateway{id: id, gone: map[int64]bool{}}
	l.cli = fg // before any frame is queued: the link's batcher reads it on send
	return fg
}

// addPeer makes the server know another state server, answering through fake.
func (ts *testServer) addPeer(t testing.TB, id string, fake *fakePeer) {
	t.Helper()
	ts.peers.Put(registry.Node{ID: id, Role: registry.RoleState, RPCNetwork: "tcp", RPCAddr: "fake-" + id})
	p, ok := ts.peers.Get(id)
	if !ok {
		t.Fatalf("peer %s not linked", id)
	}
	p.cli = fake
}

// deliver hands events to the server as gateway gw does.
func (ts *testServer) deliver(t testing.TB, gw string, evs ...*fleet.UpEvent) {
	t.Helper()
	if _, err := (&handler{ts.Server}).Deliver(context.Background(), &fleet.DeliverRequest{GatewayId: gw, Events: evs}); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	reuse(evs)
}

// reuse does to events what a gateway in the same process does once its Deliver call returned:
// the request is only lent (internal/colocal's requestLent), and the gateway takes its events
// back for the next frames. A server that kept one would see it wiped. Bodies stay: the gateway
// makes one per frame and never reuses it.
func reuse(evs []*fleet.UpEvent) {
	for _, ev := range evs {
		for i := range ev.Sessions {
			ev.Sessions[i] = "reused"
		}
		for _, f := range ev.Unacked {
			if f != nil {
				*f = fleet.DownFrame{Seq: -1}
			}
		}
		*ev = fleet.UpEvent{ConnId: -1, Did: "reused"}
	}
}

// login logs a device in on testGW and returns its connection, which must then be its did's.
func (ts *testServer) loginDevice(t testing.TB, connID uint64, app, did, uid string) *connState {
	t.Helper()
	ts.deliver(t, testGW, loginEvent(connID, app, did, uid))
	cs := ts.conns.get(connKey{gw: testGW, id: connID})
	if cs == nil || ts.conns.byDID(app, did) != cs {
		t.Fatalf("login of %s/%s on conn %d: not the did's connection", app, did, connID)
	}
	return cs
}

func loginEvent(connID uint64, app, did, uid string) *fleet.UpEvent {
	body := (&protocol.Login{AppID: app, DID: did, UID: uid, Token: "t", Platform: "unit"}).Append(nil)
	return &fleet.UpEvent{
		ConnId: int64(connID), Signal: int8(protocol.SigLogin), Seq: 1, Body: body,
		AppId: app, Did: did, Uid: uid, RemoteAddr: "10.0.0.1:5000",
	}
}

func frameEvent(connID uint64, sig protocol.Signal, seq uint64, body []byte) *fleet.UpEvent {
	return &fleet.UpEvent{ConnId: int64(connID), Signal: int8(sig), Seq: int64(seq), Body: body}
}

func closedEvent(connID uint64, reason protocol.Code) *fleet.UpEvent {
	return &fleet.UpEvent{ConnId: int64(connID), Kind: fleet.UpKind_CLOSED, Reason: int32(reason)}
}

// noReconnectWindow makes every drop end its connection at once.
func noReconnectWindow(c *Config) { c.ReconnectWindow = 0 }

// newConn is a connection as login makes it, on testGW, without going through Deliver.
func newConn(id uint64, app, did, uid string) *connState {
	return newConnState(connKey{gw: testGW, id: id}, app, did, uid, "", nil)
}

// pipeFunc is a Pipeline whose Run is the function itself.
type pipeFunc func(ev stage.Event, done func(pipeline.Outcome)) error

func (f pipeFunc) Run(ev stage.Event, done func(pipeline.Outcome)) error { return f(ev, done) }

func (f pipeFunc) RunReserved(ev stage.Event, done func(pipeline.Outcome)) error { return f(ev, done) }

// memRegistry is an in-memory registry.Registry. Its Watch sends the current nodes and no later
// change: the unit tests never Start the server, which is what watches.
type memRegistry struct {
	mu    sync.Mutex
	nodes map[registry.Role]map[string]registry.Node
}

var _ registry.Registry = (*memRegistry)(nil)

func newMemRegistry() *memRegistry {
	return &memRegistry{nodes: map[registry.Role]map[string]registry.Node{}}
}

func (r *memRegistry) Put(_ context.Context, n registry.Node) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.nodes[n.Role] == nil {
		r.nodes[n.Role] = map[string]registry.Node{}
	}
	r.nodes[n.Role][n.ID] = n
	return nil
}

func (r *memRegistry) Delete(_ context.Context, role registry.Role, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.nodes[role], id)
	return nil
}

func (r *memRegistry) List(_ context.Context, role registry.Role) ([]registry.Node, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []registry.Node
	for _, n := range r.nodes[role] {
		out = append(out, n)
	}
	return out, nil
}

func (r *memRegistry) Watch(ctx context.Context, role registry.Role) (<-chan registry.Event, error) {
	nodes, _ := r.List(ctx, role)
	ch := make(chan registry.Event, len(nodes)+1)
	for _, n := range nodes {
		ch <- registry.Event{Type: registry.EventPut, Node: n}
	}
	ch <- registry.Event{Type: registry.EventSynced}
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}

// Resets never fires: nothing is lost from memory.
func (r *memRegistry) Resets() <-chan struct{} { return nil }

// within is how long a test waits for something that happens on another goroutine at once.
const within = poll.Timeout

// untilFrames waits for n frames of a connection on fg that match.
func untilFrames(t testing.TB, fg *fakeGateway, connID uint64, n int, what string, match func(*fleet.DownFrame) bool) []*fleet.DownFrame {
	t.Helper()
	var got []*fleet.DownFrame
	poll.Within(t, within, what, func() bool {
		got = fg.framesOf(connID, match)
		return len(got) >= n
	})
	return got
}

// untilFrame waits for the first frame of a connection with sig and seq.
func untilFrame(t testing.TB, fg *fakeGateway, connID uint64, sig protocol.Signal, seq uint64) *fleet.DownFrame {
	t.Helper()
	return untilFrames(t, fg, connID, 1, sig.String(), func(f *fleet.DownFrame) bool {
		return protocol.Signal(f.Signal) == sig && uint64(f.Seq) == seq
	})[0]
}

// untilEvents waits for n business events of a kind for a did.
func untilEvents(t testing.TB, fb *fakeBusiness, kind api.EventKind, did string, n int) []*api.Event {
	t.Helper()
	var got []*api.Event
	poll.Within(t, within, kind.String()+" events of "+did, func() bool {
		got = fb.eventsOf(kind, did)
		return len(got) >= n
	})
	return got
}

func decodeAck(t testing.TB, f *fleet.DownFrame) protocol.Ack {
	t.Helper()
	var a protocol.Ack
	if err := a.Decode(f.Body); err != nil {
		t.Fatalf("decoding UplinkAck: %v", err)
	}
	return a
}

func decodeClose(t testing.TB, f *fleet.DownFrame) protocol.Close {
	t.Helper()
	var c protocol.Close
	if err := c.Decode(f.Body); err != nil {
		t.Fatalf("decoding Close: %v", err)
	}
	return c
}

// ctxT is a context for calls that must not hang a broken test forever.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func (ts *testServer) gatewayLinkOf(t testing.TB, id string) *gatewayLink {
	t.Helper()
	l, ok := ts.gateways.Get(id)
	if !ok {
		t.Fatalf("no link to %s", id)
	}
	return l
}
