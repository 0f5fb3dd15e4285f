package business

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	kserver "github.com/cloudwego/kitex/server"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	platoservice "github.com/platoim/plato/sdk/business/rpc/plato/api/plato"
)

const (
	testApp = "chat"
	testKey = "0123456789abcdef-chat"
)

// fakePlato is Plato's RPC as a test needs it: it checks the caller like a state server, records
// each request, and answers what the test set.
type fakePlato struct {
	mu       sync.Mutex
	requests []any
	push     *api.PushResponse
	bind     *api.BindResponse
	unbind   *api.UnbindResponse
	kick     *api.KickResponse
	online   *api.OnlineResponse
	delay    time.Duration // before answering Push
}

var _ api.Plato = (*fakePlato)(nil)

func (f *fakePlato) check(c *api.Caller, req any) error {
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	if c == nil || c.AppId != testApp || c.Key != testKey {
		return &api.PlatoError{Code: 1402, Message: "wrong key for app"}
	}
	return nil
}

func (f *fakePlato) last() any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

func (f *fakePlato) Push(ctx context.Context, req *api.PushRequest) (*api.PushResponse, error) {
	if err := f.check(req.Caller, req); err != nil {
		return nil, err
	}
	if len(req.Dids) == 0 && len(req.Uids) == 0 && req.Session == "" {
		return nil, &api.PlatoError{Code: 1401, Message: "no target"}
	}
	time.Sleep(f.delay)
	return f.push, nil
}

// PushBatch answers each push as Push would, so the client's mapping of results is tested;
// the real one is tested end to end in core/state (TestPushBatchEndToEnd).
func (f *fakePlato) PushBatch(ctx context.Context, req *api.PushBatchRequest) (*api.PushBatchResponse, error) {
	out := &api.PushBatchResponse{}
	for _, p := range req.Pushes {
		p.Caller = req.Caller
		resp, err := f.Push(ctx, p)
		if pe, ok := err.(*api.PlatoError); ok {
			out.Results = append(out.Results, &api.PushOutcome{Error: pe})
			continue
		} else if err != nil {
			return nil, err
		}
		out.Results = append(out.Results, &api.PushOutcome{Response: resp})
	}
	return out, nil
}

func (f *fakePlato) Bind(ctx context.Context, req *api.BindRequest) (*api.BindResponse, error) {
	if err := f.check(req.Caller, req); err != nil {
		return nil, err
	}
	return f.bind, nil
}

func (f *fakePlato) Unbind(ctx context.Context, req *api.UnbindRequest) (*api.UnbindResponse, error) {
	if err := f.check(req.Caller, req); err != nil {
		return nil, err
	}
	return f.unbind, nil
}

func (f *fakePlato) Kick(ctx context.Context, req *api.KickRequest) (*api.KickResponse, error) {
	if err := f.check(req.Caller, req); err != nil {
		return nil, err
	}
	return f.kick, nil
}

func (f *fakePlato) Online(ctx context.Context, req *api.OnlineRequest) (*api.OnlineResponse, error) {
	if err := f.check(req.Caller, req); err != nil {
		return nil, err
	}
	return f.online, nil
}

// startPlato serves f on a free loopback port and returns its address.
func startPlato(t *testing.T, f *fakePlato) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	quit := make(chan error)
	svr := platoservice.NewServer(f, kserver.WithListener(ln), kserver.WithExitWaitTime(time.Second),
		kserver.WithExitSignal(func() <-chan error { return quit }))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := svr.Run(); err != nil {
			t.Errorf("fake Plato: %v", err)
		}
	}()
	t.Cleanup(func() {
		close(quit)
		<-done
	})
	return ln.Addr().String()
}

func newTestClient(t *testing.T, addr, key string) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{Addr: addr, AppID: testApp, Key: key, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestClientPush(t *testing.T) {
	f := &fakePlato{push: &api.PushResponse{
		MsgId: 42, Route: api.Route_BROADCAST, Qos: api.QoS_AT_LEAST_ONCE, SessionMembers: 300,
		Targets: []*api.PushTarget{
			{Did: "bob", ConnId: 3, Status: api.PushStatus_ACKED, Seq: 8},
			{Did: "carol", Status: api.PushStatus_OFFLINE},
			{Did: "dave", Uid: "u-dave", ConnId: 5, Status: api.PushStatus_REJECTED, Code: 2101, Message: "muted"},
		},
	}}
	c := newTestClient(t, startPlato(t, f), testKey)
	res, err := c.Push(context.Background(), Push{
		DIDs: []string{"bob", "carol"}, UIDs: []string{"u-dave"}, Session: "lobby", Payload: []byte("hi"),
		QoS: QoSAtLeastOnce, WaitAck: true, Timeout: 1500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	req := f.last().(*api.PushRequest)
	if req.Caller.AppId != testApp || req.Caller.Key != testKey || !slices.Equal(req.Dids, []string{"bob", "carol"}) ||
		!slices.Equal(req.Uids, []string{"u-dave"}) || req.Session != "lobby" || string(req.Payload) != "hi" ||
		req.Qos != api.QoS_AT_LEAST_ONCE || !req.WaitAck || req.TimeoutMs != 1500 {
		t.Errorf("request = %+v", req)
	}
	if res.MsgID != 42 || res.Route != RouteBroadcast || res.QoS != QoSAtLeastOnce || res.SessionMembers != 300 {
		t.Errorf("result = %+v", res)
	}
	want := []Target{
		{DID: "bob", ConnID: 3, Status: StatusAcked, Seq: 8},
		{DID: "carol", Status: StatusOffline},
		{DID: "dave", UID: "u-dave", ConnID: 5, Status: StatusRejected, Code: 2101, Message: "muted"},
	}
	if !slices.Equal(res.Targets, want) {
		t.Errorf("targets = %+v, want %+v", res.Targets, want)
	}
	if got := res.Offline(); !slices.Equal(got, []string{"carol"}) {
		t.Errorf("Offline() = %q", got)
	}

	// Without WaitAck no wait is asked for; with it and no Timeout, the default wait is.
	if _, err := c.Push(context.Background(), Push{DIDs: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	if req := f.last().(*api.PushRequest); req.TimeoutMs != 0 || req.WaitAck {
		t.Errorf("plain push asked to wait: %+v", req)
	}
	if _, err := c.Push(context.Background(), Push{DIDs: []string{"bob"}, WaitAck: true}); err != nil {
		t.Fatal(err)
	}
	if req := f.last().(*api.PushRequest); req.TimeoutMs != int32(DefaultAckTimeout.Milliseconds()) {
		t.Errorf("wait_ack push without Timeout asked for %d ms", req.TimeoutMs)
	}
}

// TestClientPushWaitOutlivesTimeout: a push waiting for ACKs longer than the client's call timeout
// is not cut short by it.
func TestClientPushWaitOutlivesTimeout(t *testing.T) {
	f := &fakePlato{push: &api.PushResponse{MsgId: 1}, delay: 300 * time.Millisecond}
	c, err := NewClient(ClientConfig{Addr: startPlato(t, f), AppID: testApp, Key: testKey, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Push(context.Background(), Push{DIDs: []string{"bob"}, WaitAck: true, Timeout: time.Second}); err != nil {
		t.Fatalf("waiting push: %v", err)
	}
	if _, err := c.Push(context.Background(), Push{DIDs: []string{"bob"}}); err == nil || CodeOf(err) != 0 {
		t.Fatalf("a slow plain push should time out as a transport error, got %v", err)
	}
}

func TestClientSessions(t *testing.T) {
	f := &fakePlato{
		bind:   &api.BindResponse{Offline: []string{"carol"}, Members: 2},
		unbind: &api.UnbindResponse{Members: 1},
	}
	c := newTestClient(t, startPlato(t, f), testKey)
	ctx := context.Background()

	res, err := c.Bind(ctx, "lobby", "alice", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Offline, []string{"carol"}) || res.Members != 2 {
		t.Errorf("Bind = %+v", res)
	}
	if req := f.last().(*api.BindRequest); req.Caller.Key != testKey || req.Session != "lobby" || req.Replace ||
		!slices.Equal(req.Dids, []string{"alice", "bob", "carol"}) {
		t.Errorf("Bind request = %+v", req)
	}

	if _, err := c.SetMembers(ctx, "lobby", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	if req := f.last().(*api.BindRequest); !req.Replace || !slices.Equal(req.Dids, []string{"alice"}) {
		t.Errorf("SetMembers request = %+v", req)
	}

	members, err := c.Unbind(ctx, "lobby", "bob")
	if err != nil || members != 1 {
		t.Fatalf("Unbind = %d, %v", members, err)
	}
	if req := f.last().(*api.UnbindRequest); req.Caller.AppId != testApp || req.All || !slices.Equal(req.Dids, []string{"bob"}) {
		t.Errorf("Unbind request = %+v", req)
	}

	if err := c.Dissolve(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	if req := f.last().(*api.UnbindRequest); !req.All || len(req.Dids) != 0 || req.Session != "lobby" {
		t.Errorf("Dissolve request = %+v", req)
	}
}

func TestClientKickAndOnline(t *testing.T) {
	f := &fakePlato{
		kick: &api.KickResponse{Kicked: []string{"bob"}},
		online: &api.OnlineResponse{Devices: []*api.Device{
			{Did: "alice", Uid: "u1", GatewayId: "gw-1", ConnId: 4, RemoteAddr: "10.0.0.1:5000", Sessions: []string{"lobby"}},
		}},
	}
	c := newTestClient(t, startPlato(t, f), testKey)
	ctx := context.Background()

	kicked, err := c.Kick(ctx, "banned", "bob", "carol")
	if err != nil || !slices.Equal(kicked, []string{"bob"}) {
		t.Fatalf("Kick = %q, %v", kicked, err)
	}
	if req := f.last().(*api.KickRequest); req.Message != "banned" || !slices.Equal(req.Dids, []string{"bob", "carol"}) || req.Caller.Key != testKey {
		t.Errorf("Kick request = %+v", req)
	}

	devs, err := c.Online(ctx, "lobby")
	if err != nil {
		t.Fatal(err)
	}
	want := Device{DID: "alice", UID: "u1", GatewayID: "gw-1", ConnID: 4, RemoteAddr: "10.0.0.1:5000", Sessions: []string{"lobby"}}
	if len(devs) != 1 || devs[0].DID != want.DID || devs[0].UID != want.UID || devs[0].GatewayID != want.GatewayID ||
		devs[0].ConnID != want.ConnID || devs[0].RemoteAddr != want.RemoteAddr || !slices.Equal(devs[0].Sessions, want.Sessions) {
		t.Errorf("Online = %+v, want [%+v]", devs, want)
	}
	if req := f.last().(*api.OnlineRequest); req.Session != "lobby" || len(req.Dids) != 0 {
		t.Errorf("Online request = %+v", req)
	}

	if _, err := c.OnlineDIDs(ctx, "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	if req := f.last().(*api.OnlineRequest); req.Session != "" || !slices.Equal(req.Dids, []string{"alice", "bob"}) {
		t.Errorf("OnlineDIDs request = %+v", req)
	}
}

func TestClientErrors(t *testing.T) {
	f := &fakePlato{}
	addr := startPlato(t, f)
	ctx := context.Background()

	wrong := newTestClient(t, addr, "not-the-key")
	_, err := wrong.Bind(ctx, "lobby", "alice")
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != CodeAppMismatch || pe.Message != "wrong key for app" {
		t.Fatalf("wrong key: %v (%T)", err, err)
	}
	if CodeOf(err) != CodeAppMismatch {
		t.Errorf("CodeOf = %d", CodeOf(err))
	}
	if got := err.Error(); got != `binding 1 dids to session "lobby": plato refused (1402): wrong key for app` {
		t.Errorf("error text = %q", got)
	}

	right := newTestClient(t, addr, testKey)
	if _, err := right.Push(ctx, Push{Payload: []byte("x")}); CodeOf(err) != CodeInvalidArgument {
		t.Errorf("push without target: %v", err)
	}

	// Nothing listens on a closed port: a transport error, wrapped, with no code.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	down := newTestClient(t, dead, testKey)
	_, err = down.Kick(ctx, "bye", "alice")
	if err == nil || CodeOf(err) != 0 || errors.As(err, &pe) {
		t.Fatalf("Plato down: %v", err)
	}

	if _, err := NewClient(ClientConfig{AppID: testApp}); err == nil {
		t.Error("NewClient without a key succeeded")
	}
}

func TestClientContextDeadline(t *testing.T) {
	f := &fakePlato{push: &api.PushResponse{}, delay: 500 * time.Millisecond}
	c := newTestClient(t, startPlato(t, f), testKey)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Push(ctx, Push{DIDs: []string{"bob"}}); err == nil {
		t.Fatal("push outlived its context")
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Errorf("push took %v with a 50ms context", d)
	}
}
