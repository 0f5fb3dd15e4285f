package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kclient "github.com/cloudwego/kitex/client"
	kserver "github.com/cloudwego/kitex/server"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	bizservice "github.com/platoim/plato/sdk/business/rpc/plato/api/business"
	platoservice "github.com/platoim/plato/sdk/business/rpc/plato/api/plato"
	"github.com/platoim/plato/sdk/poll"
)

const (
	testApp = "demo"
	testKey = "0123456789abcdef-demo"
)

// fakePlato plays Plato's RPC for the demo: a set of online dids, sessions that only online dids
// can join, and a log of every push.
type fakePlato struct {
	mu       sync.Mutex
	online   map[string]bool
	sessions map[string][]string
	pushes   []*api.PushRequest
	unbinds  []*api.UnbindRequest
}

func (f *fakePlato) caller(c *api.Caller) error {
	if c == nil || c.AppId != testApp || c.Key != testKey {
		return &api.PlatoError{Code: 1402, Message: "wrong key"}
	}
	return nil
}

func (f *fakePlato) Push(_ context.Context, req *api.PushRequest) (*api.PushResponse, error) {
	if err := f.caller(req.Caller); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pushes = append(f.pushes, req)
	resp := &api.PushResponse{MsgId: int64(len(f.pushes))}
	for _, did := range req.Dids {
		st := api.PushStatus_SENT
		if !f.online[did] {
			st = api.PushStatus_OFFLINE
		}
		resp.Targets = append(resp.Targets, &api.PushTarget{Did: did, Status: st})
	}
	return resp, nil
}

func (f *fakePlato) Bind(_ context.Context, req *api.BindRequest) (*api.BindResponse, error) {
	if err := f.caller(req.Caller); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &api.BindResponse{}
	for _, did := range req.Dids {
		if !f.online[did] {
			resp.Offline = append(resp.Offline, did)
		} else if !slices.Contains(f.sessions[req.Session], did) {
			f.sessions[req.Session] = append(f.sessions[req.Session], did)
		}
	}
	resp.Members = int32(len(f.sessions[req.Session]))
	return resp, nil
}

func (f *fakePlato) Unbind(_ context.Context, req *api.UnbindRequest) (*api.UnbindResponse, error) {
	if err := f.caller(req.Caller); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unbinds = append(f.unbinds, req)
	f.sessions[req.Session] = slices.DeleteFunc(f.sessions[req.Session], func(d string) bool { return slices.Contains(req.Dids, d) })
	return &api.UnbindResponse{Members: int32(len(f.sessions[req.Session]))}, nil
}

// PushBatch is not used by the demo.
func (f *fakePlato) PushBatch(context.Context, *api.PushBatchRequest) (*api.PushBatchResponse, error) {
	return nil, &api.PlatoError{Code: 1401, Message: "the demo does not batch"}
}

func (f *fakePlato) Kick(context.Context, *api.KickRequest) (*api.KickResponse, error) {
	return &api.KickResponse{}, nil
}

func (f *fakePlato) Online(_ context.Context, req *api.OnlineRequest) (*api.OnlineResponse, error) {
	if err := f.caller(req.Caller); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &api.OnlineResponse{}
	for _, did := range f.sessions[req.Session] {
		resp.Devices = append(resp.Devices, &api.Device{Did: did, Sessions: []string{req.Session}})
	}
	return resp, nil
}

// pushesSince returns the pushes after the first n, as (target, payload) pairs.
func (f *fakePlato) pushesSince(n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.pushes[min(n, len(f.pushes)):] {
		target := "session:" + p.Session
		if p.Session == "" {
			target = fmt.Sprint(p.Dids)
		}
		out = append(out, target+" "+string(p.Payload))
	}
	return out
}

func (f *fakePlato) pushCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pushes)
}

func startFakePlato(t *testing.T, f *fakePlato) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	quit := make(chan error)
	svr := platoservice.NewServer(f, kserver.WithListener(ln), kserver.WithExitSignal(func() <-chan error { return quit }))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = svr.Run()
	}()
	t.Cleanup(func() {
		close(quit)
		<-done
	})
	return ln.Addr().String()
}

// harness is a demo in front of a fake Plato, and Plato's side of the Business service.
type harness struct {
	t         *testing.T
	plato     *fakePlato
	biz       bizservice.Client
	stateAsks *atomic.Int32
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	f := &fakePlato{online: map[string]bool{"alice": true, "bob": true}, sessions: map[string][]string{}}
	addr := startFakePlato(t, f)
	asks := &atomic.Int32{}
	s := New(Config{
		Addr:      "127.0.0.1:0",
		StateAddr: func() string { asks.Add(1); return addr },
		Keys:      map[string]string{testApp: testKey},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	cli, err := bizservice.NewClient("demo", kclient.WithHostPorts(s.Addr()), kclient.WithRPCTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, plato: f, biz: cli, stateAsks: asks}
}

// send delivers one uplink from did and returns its result code.
func (h *harness) send(app, did string, payload string) int32 {
	h.t.Helper()
	resp, err := h.biz.Deliver(context.Background(), &api.DeliverRequest{Events: []*api.Event{
		{Kind: api.EventKind_UPLINK, AppId: app, Did: did, Payload: []byte(payload)},
	}})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.Results[0].Code
}

// expect sends an accepted uplink and waits for the pushes it causes.
func (h *harness) expect(did, payload string, want ...string) {
	h.t.Helper()
	before := h.plato.pushCount()
	if code := h.send(testApp, did, payload); code != 0 {
		h.t.Fatalf("%s sending %s: refused with %d", did, payload, code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.plato.pushCount()-before < len(want) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := h.plato.pushesSince(before); !slices.Equal(got, want) {
		h.t.Fatalf("%s sending %s pushed\n%q\nwant\n%q", did, payload, got, want)
	}
}

func (h *harness) sessionsOf(did string) []string {
	h.t.Helper()
	resp, err := h.biz.Sessions(context.Background(), &api.SessionsRequest{AppId: testApp, Did: did})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.Sessions
}

func TestDirectMessage(t *testing.T) {
	h := newHarness(t)
	if n := h.stateAsks.Load(); n != 0 {
		t.Fatalf("the state address was asked %d times before the first push", n)
	}
	h.expect("alice", `{"to":"bob","text":"hi"}`, `[bob] {"from":"alice","text":"hi"}`)
	h.expect("alice", `{"to":"carol","text":"are you there?"}`,
		`[carol] {"from":"alice","text":"are you there?"}`,
		`[alice] {"from":"plato-demo","text":"carol is offline"}`)
	if n := h.stateAsks.Load(); n != 1 {
		t.Errorf("the state address was asked %d times, want once", n)
	}
}

func TestRooms(t *testing.T) {
	h := newHarness(t)
	if code := h.send(testApp, "alice", `{"room":"lobby","text":"hi"}`); code != CodeNotInRoom {
		t.Fatalf("writing to a room not joined: %d, want %d", code, CodeNotInRoom)
	}
	h.expect("alice", `{"join":"lobby"}`, `session:lobby {"from":"plato-demo","room":"lobby","text":"alice joined"}`)
	h.expect("bob", `{"join":"lobby"}`, `session:lobby {"from":"plato-demo","room":"lobby","text":"bob joined"}`)
	if got := h.sessionsOf("alice"); !slices.Equal(got, []string{"lobby"}) {
		t.Errorf("alice's sessions at login: %q", got)
	}
	h.expect("alice", `{"room":"lobby","text":"hi all"}`, `session:lobby {"from":"alice","room":"lobby","text":"hi all"}`)
	h.expect("bob", `{"who":"lobby"}`,
		`[bob] {"from":"plato-demo","room":"lobby","text":"in lobby: alice, bob","who":["alice","bob"]}`)
	h.expect("bob", `{"leave":"lobby"}`, `session:lobby {"from":"plato-demo","room":"lobby","text":"bob left"}`)
	poll.Until(t, "bob unbound", func() bool {
		h.plato.mu.Lock()
		defer h.plato.mu.Unlock()
		return len(h.plato.unbinds) == 1 && h.plato.unbinds[0].Session == "lobby" && slices.Equal(h.plato.unbinds[0].Dids, []string{"bob"})
	})
	if got := h.sessionsOf("bob"); len(got) != 0 {
		t.Errorf("bob's sessions after leaving: %q", got)
	}
	if code := h.send(testApp, "bob", `{"leave":"lobby"}`); code != CodeNotInRoom {
		t.Errorf("leaving twice: %d, want %d", code, CodeNotInRoom)
	}
	h.expect("alice", `{"who":"empty"}`, `[alice] {"from":"plato-demo","room":"empty","text":"nobody is in empty"}`)
}

func TestRoomsAreRemembered(t *testing.T) {
	h := newHarness(t)
	// carol is offline: Plato cannot bind her now, the demo remembers for her next login.
	before := h.plato.pushCount()
	if code := h.send(testApp, "carol", `{"join":"night-shift"}`); code != 0 {
		t.Fatalf("join refused: %d", code)
	}
	poll.Until(t, "the join notice", func() bool { return h.plato.pushCount() > before })
	if got := h.sessionsOf("carol"); !slices.Equal(got, []string{"night-shift"}) {
		t.Errorf("carol's sessions: %q", got)
	}
	for i := range MaxRooms - 1 {
		if code := h.send(testApp, "carol", fmt.Sprintf(`{"join":"r%d"}`, i)); code != 0 {
			t.Fatalf("join %d refused: %d", i, code)
		}
	}
	if code := h.send(testApp, "carol", `{"join":"one-too-many"}`); code != CodeTooManyRooms {
		t.Errorf("join beyond MaxRooms: %d, want %d", code, CodeTooManyRooms)
	}
	if code := h.send(testApp, "carol", `{"join":"night-shift"}`); code != 0 {
		t.Errorf("joining a room again: %d, want accepted", code)
	}
}

func TestRefusals(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct {
		app, payload string
		want         int32
	}{
		{testApp, `hello`, CodeBadMessage},
		{testApp, `{}`, CodeBadMessage},
		{testApp, `{"to":"bob","join":"lobby"}`, CodeBadMessage},
		{testApp, `{"to":"bob","room":"lobby","text":"x"}`, CodeBadMessage},
		{testApp, `{"join":"no spaces"}`, CodeBadRoom},
		{testApp, `{"who":"a.b"}`, CodeBadRoom},
		{testApp, `{"join":"` + strings.Repeat("a", MaxName+1) + `"}`, CodeBadRoom},
		{"other-app", `{"to":"bob","text":"hi"}`, CodeUnknownApp},
	} {
		if got := h.send(c.app, "alice", c.payload); got != c.want {
			t.Errorf("%s %s: %d, want %d", c.app, c.payload, got, c.want)
		}
	}
}

func TestWorkersBusy(t *testing.T) {
	release := make(chan struct{})
	w := newWorkers(func(context.Context, job) { <-release })
	j := job{app: "a", did: "d"}
	queued := 0
	for w.add(j) {
		queued++
		if queued > laneQueue+1 {
			t.Fatal("a lane took more than its queue")
		}
	}
	// One job runs, laneQueue wait.
	if queued < laneQueue || queued > laneQueue+1 {
		t.Errorf("lane took %d jobs, want %d or %d", queued, laneQueue, laneQueue+1)
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w.stop(ctx)
	if w.add(j) {
		t.Error("a stopped lane took a job")
	}
}
