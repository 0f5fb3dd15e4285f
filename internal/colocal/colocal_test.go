package colocal_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/internal/colocal"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	gwservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/gateway"
	stateservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/state"
	"github.com/platoim/plato/internal/testkit"
	"github.com/platoim/plato/sdk/poll"
)

// gateway is a Gateway service whose Push keeps what it got and answers from a slice it keeps, to
// see whether anything is shared with the caller; it panics, fails or sleeps when told to.
type gateway struct {
	mu    sync.Mutex
	kept  []*fleet.PushRequest
	gone  []int64
	sleep time.Duration
}

func (g *gateway) Push(_ context.Context, req *fleet.PushRequest) (*fleet.PushResponse, error) {
	switch req.StateId {
	case "panic":
		panic("boom")
	case "fail":
		return nil, errors.New("proof refused")
	}
	time.Sleep(g.sleep)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.kept = append(g.kept, req)
	return &fleet.PushResponse{Gone: g.gone}, nil
}

func (g *gateway) Sessions(context.Context, *fleet.SessionsRequest) (*fleet.SessionsResponse, error) {
	return &fleet.SessionsResponse{}, nil
}

// serveKitex serves h over Kitex on loopback, as a gateway does, until the test ends or stop.
func serveKitex(t *testing.T, h fleet.Gateway) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svr := gwservice.NewServer(h, rpc.Server(ln)...)
	var wg sync.WaitGroup
	wg.Go(func() { _ = svr.Run() })
	var once sync.Once
	stop = func() { once.Do(func() { _ = svr.Stop(); wg.Wait() }) }
	t.Cleanup(stop)
	cli := wireClient(t, ln.Addr().String())
	poll.Until(t, "the Kitex server to answer", func() bool {
		_, err := cli.Sessions(context.Background(), &fleet.SessionsRequest{})
		return err == nil
	})
	return ln.Addr().String(), stop
}

func wireClient(t *testing.T, addr string) gwservice.Client {
	t.Helper()
	cli, err := gwservice.NewClient("plato-gateway", rpc.Client(addr, 2*time.Second)...)
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// freeAddr is a loopback address nothing listens at, below the ephemeral range (testkit.FreeAddr).
func freeAddr(t *testing.T) string { return testkit.FreeAddr(t) }

func node(id, addr string) registry.Node {
	return registry.Node{ID: id, Role: registry.RoleGateway, RPCNetwork: "tcp", RPCAddr: addr}
}

// What crosses is a copy both ways: the caller reuses its request, the handler its answer, and
// neither sees the other's change.
func TestCallsCopyBothWays(t *testing.T) {
	d := colocal.New()
	g := &gateway{gone: []int64{7, 8}}
	addr := freeAddr(t)
	d.ServeGateway("gw-1", addr, g)
	wire := wireClient(t, addr)
	cli := d.GatewayClient(node("gw-1", addr), wire, colocal.Options{Timeout: time.Second})
	if cli == wire {
		t.Fatal("a gateway in the directory got the wire client")
	}
	body := []byte("hello")
	req := &fleet.PushRequest{StateId: "s1", Frames: []*fleet.DownFrame{{ConnId: 1, Body: body, Did: "d1"}}}
	resp, err := cli.Push(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	// The caller reuses its buffers.
	copy(body, "XXXXX")
	req.Frames[0].ConnId = 99
	req.Frames = append(req.Frames, &fleet.DownFrame{ConnId: 2})
	g.mu.Lock()
	kept := g.kept[0]
	g.mu.Unlock()
	if kept == req || len(kept.Frames) != 1 || kept.Frames[0].ConnId != 1 || !bytes.Equal(kept.Frames[0].Body, []byte("hello")) || kept.Frames[0].Did != "d1" {
		t.Fatalf("the handler's request changed with the caller's: %+v", kept.Frames)
	}
	// The handler changes what it answered from.
	g.gone[0] = 100
	if len(resp.Gone) != 2 || resp.Gone[0] != 7 || resp.Gone[1] != 8 {
		t.Fatalf("the caller's answer changed with the handler's: %v", resp.Gone)
	}
	if n := d.Calls()["Push"]; n != 1 {
		t.Fatalf("Calls()[Push] = %d, want 1", n)
	}
}

// A handler's panic and a handler's error reach the caller as the same kind of error as over
// Kitex (rpc.KindOf), and the panic does not take the caller down.
func TestHandlerPanicAndErrorAreWireErrors(t *testing.T) {
	g := &gateway{}
	addr, _ := serveKitex(t, g)
	wire := wireClient(t, addr)
	d := colocal.New()
	d.ServeGateway("gw-1", addr, g)
	local := d.GatewayClient(node("gw-1", addr), wire, colocal.Options{Timeout: time.Second})
	for _, id := range []string{"panic", "fail"} {
		_, werr := wire.Push(context.Background(), &fleet.PushRequest{StateId: id})
		_, lerr := local.Push(context.Background(), &fleet.PushRequest{StateId: id})
		if werr == nil || lerr == nil {
			t.Fatalf("%s: wire %v, local %v: want errors", id, werr, lerr)
		}
		if rpc.KindOf(lerr) != rpc.KindOf(werr) || rpc.Refused(lerr) != rpc.Refused(werr) {
			t.Errorf("%s: local error %q is %v, the wire's %q is %v", id, lerr, rpc.KindOf(lerr), werr, rpc.KindOf(werr))
		}
	}
	// The local path was taken (the wire's calls are not counted).
	if n := d.Calls()["Push"]; n != 2 {
		t.Fatalf("Calls()[Push] = %d, want 2", n)
	}
}

// Once the local server stops, calls go to the wire: refused when nothing listens there any more,
// as a Kitex client's are (what failover acts on), and served when another process took the
// address over (an upgrade).
func TestStoppedServerIsRefusedLikeTheWire(t *testing.T) {
	g := &gateway{}
	addr := freeAddr(t)
	d := colocal.New()
	e := d.ServeGateway("gw-1", addr, g)
	wire := wireClient(t, addr)
	cli := d.GatewayClient(node("gw-1", addr), wire, colocal.Options{Timeout: time.Second})
	if _, err := cli.Push(context.Background(), &fleet.PushRequest{}); err != nil {
		t.Fatal(err)
	}
	e.Stop(time.Second)
	_, err := cli.Push(context.Background(), &fleet.PushRequest{})
	_, werr := wire.Push(context.Background(), &fleet.PushRequest{})
	if !rpc.Refused(err) || rpc.KindOf(err) != rpc.KindOf(werr) {
		t.Fatalf("after Stop: %v (%v), want refused like the wire's %v", err, rpc.KindOf(err), werr)
	}
	if d.GatewayClient(node("gw-1", addr), wire, colocal.Options{}) != wire {
		t.Fatal("a stopped gateway is still in the directory")
	}

	// Another server at the address: the stopped link's calls reach it.
	other := &gateway{}
	oaddr, _ := serveKitex(t, other)
	d2 := colocal.New()
	e2 := d2.ServeGateway("gw-2", oaddr, g)
	cli2 := d2.GatewayClient(node("gw-2", oaddr), wireClient(t, oaddr), colocal.Options{Timeout: time.Second})
	e2.Stop(time.Second)
	if _, err := cli2.Push(context.Background(), &fleet.PushRequest{StateId: "s"}); err != nil {
		t.Fatal(err)
	}
	other.mu.Lock()
	defer other.mu.Unlock()
	if len(other.kept) != 1 {
		t.Fatalf("the server at the address got %d calls, want 1", len(other.kept))
	}
}

// Stop waits for the calls in the handler, as a Kitex server's Stop waits for those in flight.
func TestStopWaitsForCallsInFlight(t *testing.T) {
	g := &gateway{sleep: 200 * time.Millisecond}
	addr := freeAddr(t)
	d := colocal.New()
	e := d.ServeGateway("gw-1", addr, g)
	cli := d.GatewayClient(node("gw-1", addr), wireClient(t, addr), colocal.Options{Timeout: 5 * time.Second})
	errc := make(chan error, 1)
	go func() {
		_, err := cli.Push(context.Background(), &fleet.PushRequest{})
		errc <- err
	}()
	poll.Until(t, "the call to enter the handler", func() bool { return d.Calls()["Push"] == 0 && colocal.InFlight(e) > 0 })
	e.Stop(5 * time.Second)
	// The handler has returned (it keeps the request as it does); the caller's goroutine may not
	// have its answer in hand yet.
	g.mu.Lock()
	done := len(g.kept)
	g.mu.Unlock()
	if done != 1 {
		t.Fatal("Stop returned before the call in flight did")
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("the call in flight failed: %v", err)
		}
	case <-time.After(poll.Timeout):
		t.Fatal("the call in flight never returned")
	}
}

// An answer later than the call's bound fails the call as a timeout (rpc.KindOf), as the wire's
// read deadline does; so does a context that had already ended.
func TestLateAnswerIsATimeout(t *testing.T) {
	g := &gateway{sleep: 100 * time.Millisecond}
	addr := freeAddr(t)
	d := colocal.New()
	d.ServeGateway("gw-1", addr, g)
	cli := d.GatewayClient(node("gw-1", addr), wireClient(t, addr), colocal.Options{Timeout: 20 * time.Millisecond})
	resp, err := cli.Push(context.Background(), &fleet.PushRequest{})
	if rpc.KindOf(err) != rpc.ErrTimeout || resp != nil {
		t.Fatalf("late answer: %v, %v; want a timeout", resp, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := cli.Push(ctx, &fleet.PushRequest{}); rpc.KindOf(err) != rpc.ErrTimeout {
		t.Fatalf("ended context: %v; want a timeout", err)
	}
}

// A node the directory does not hold, or holds at another address (another process took the ID),
// is called over the wire.
func TestUnknownNodesUseTheWire(t *testing.T) {
	d := colocal.New()
	d.ServeGateway("gw-1", "127.0.0.1:1", &gateway{})
	wire := wireClient(t, "127.0.0.1:2")
	if d.GatewayClient(node("gw-2", "127.0.0.1:1"), wire, colocal.Options{}) != wire {
		t.Error("another ID got a local client")
	}
	if d.GatewayClient(node("gw-1", "127.0.0.1:2"), wire, colocal.Options{}) != wire {
		t.Error("another address got a local client")
	}
	var none *colocal.Dir
	if none.GatewayClient(node("gw-1", "127.0.0.1:1"), wire, colocal.Options{}) != wire {
		t.Error("a nil directory gave a local client")
	}
	swire, err := stateservice.NewClient("plato-state", rpc.Client("127.0.0.1:2", time.Second)...)
	if err != nil {
		t.Fatal(err)
	}
	if d.StateClient(registry.Node{ID: "gw-1", RPCAddr: "127.0.0.1:1"}, swire, colocal.Options{}) != swire {
		t.Error("a gateway's entry answered for a state server")
	}
}

// BenchmarkLocalPush is one in-process Push of 4 frames of 64 bytes, both copies and the handler
// included: what replaces a Kitex round trip on loopback (ADR 0014: about 28 µs of CPU, both ends
// in one process).
func BenchmarkLocalPush(b *testing.B) {
	d := colocal.New()
	d.ServeGateway("gw-1", "127.0.0.1:1", noopGateway{})
	wire, err := gwservice.NewClient("plato-gateway", rpc.Client("127.0.0.1:1", time.Second)...)
	if err != nil {
		b.Fatal(err)
	}
	cli := d.GatewayClient(node("gw-1", "127.0.0.1:1"), wire, colocal.Options{Timeout: time.Second})
	req := &fleet.PushRequest{StateId: "state-host-1234", Proof: "0123456789abcdef0123456789abcdef"}
	for i := range 4 {
		req.Frames = append(req.Frames, &fleet.DownFrame{ConnId: int64(i), Signal: 4, Seq: int64(i), Body: make([]byte, 64)})
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cli.Push(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

type noopGateway struct{}

func (noopGateway) Push(context.Context, *fleet.PushRequest) (*fleet.PushResponse, error) {
	return &fleet.PushResponse{}, nil
}

func (noopGateway) Sessions(context.Context, *fleet.SessionsRequest) (*fleet.SessionsResponse, error) {
	return &fleet.SessionsResponse{}, nil
}

// state is a State service whose Deliver keeps what it got and answers with a response it keeps,
// and whose Ping does the same, to see which answers cross as they are.
type state struct {
	mu      sync.Mutex
	kept    *fleet.DeliverRequest
	deliver *fleet.DeliverResponse
	ping    *fleet.PingResponse
}

func (s *state) Deliver(_ context.Context, req *fleet.DeliverRequest) (*fleet.DeliverResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kept = req
	return s.deliver, nil
}

func (s *state) Ping(context.Context, *fleet.PingRequest) (*fleet.PingResponse, error) {
	return s.ping, nil
}

func (*state) LocalPush(context.Context, *fleet.LocalPushRequest) (*fleet.LocalPushResponse, error) {
	return &fleet.LocalPushResponse{}, nil
}

func (*state) LocalPushBatch(context.Context, *fleet.LocalPushBatchRequest) (*fleet.LocalPushBatchResponse, error) {
	return &fleet.LocalPushBatchResponse{}, nil
}

func (*state) LocalSession(context.Context, *fleet.LocalSessionRequest) (*fleet.LocalSessionResponse, error) {
	return &fleet.LocalSessionResponse{}, nil
}

// Deliver crosses uncopied both ways: its request is lent to the handler (which copies what it
// keeps) and its answer handed to the caller (the state server builds it for the call and keeps
// none of it). Any other method's answer is copied.
func TestDeliverCrossesUncopied(t *testing.T) {
	d := colocal.New()
	acks := []*fleet.DownFrame{{ConnId: 1, Body: []byte("ok")}, {ConnId: 2}, {ConnId: 3}}
	s := &state{deliver: &fleet.DeliverResponse{Acks: acks}, ping: &fleet.PingResponse{Boot: "b1"}}
	addr := freeAddr(t)
	d.ServeState("state-1", addr, s)
	wire, err := stateservice.NewClient("plato-state", rpc.Client(addr, 2*time.Second)...)
	if err != nil {
		t.Fatal(err)
	}
	cli := d.StateClient(registry.Node{ID: "state-1", Role: registry.RoleState, RPCNetwork: "tcp", RPCAddr: addr}, wire, colocal.Options{Timeout: time.Second})
	req := &fleet.DeliverRequest{GatewayId: "gw-1", Events: []*fleet.UpEvent{{ConnId: 1, Body: []byte("hello")}}}
	resp, err := cli.Deliver(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	kept := s.kept
	s.mu.Unlock()
	if kept != req {
		t.Fatal("the Deliver request was copied; it is lent to the handler as it is")
	}
	if resp != s.deliver {
		t.Fatal("the Deliver answer was copied; it is handed over as it is")
	}
	ping, err := cli.Ping(context.Background(), &fleet.PingRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if ping == s.ping || ping.Boot != "b1" {
		t.Fatalf("the Ping answer %+v was not a copy of the handler's", ping)
	}
}
