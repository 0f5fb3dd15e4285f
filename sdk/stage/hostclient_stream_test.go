package stage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/platoim/plato/sdk/stage/internal/pb"
)

// fakeHost is the host's Host in these tests: state, timers, an echoing Push, and Sessions and
// failures the test chooses.
type fakeHost struct {
	noHost
	mu       sync.Mutex
	kv       map[string][]byte
	timers   map[string][]byte
	sessions func(ctx context.Context, conn Conn) ([]string, error)
	fail     func(op string) error
}

func newFakeHost() *fakeHost {
	return &fakeHost{kv: map[string][]byte{}, timers: map[string][]byte{}}
}

func (h *fakeHost) failure(op string) error {
	h.mu.Lock()
	f := h.fail
	h.mu.Unlock()
	if f == nil {
		return nil
	}
	return f(op)
}

func (h *fakeHost) Push(_ context.Context, appID string, dids []string, payload []byte) (PushResult, error) {
	if err := h.failure("push"); err != nil {
		return PushResult{}, err
	}
	res := PushResult{MsgID: uint64(len(payload))}
	for i, did := range dids {
		res.Targets = append(res.Targets, PushTarget{DID: did + "@" + appID, ConnID: uint64(i), Seq: 7})
	}
	return res, nil
}

func (h *fakeHost) Sessions(ctx context.Context, conn Conn) ([]string, error) {
	h.mu.Lock()
	f := h.sessions
	h.mu.Unlock()
	if f == nil {
		return []string{"s-" + conn.DID}, nil
	}
	return f(ctx, conn)
}

func (h *fakeHost) Join(context.Context, Conn, []string) error { return h.failure("join") }

func (h *fakeHost) SetTimer(_ context.Context, appID, key string, _ time.Duration, data []byte) error {
	if err := h.failure("set timer"); err != nil {
		return err
	}
	h.mu.Lock()
	h.timers[appID+"/"+key] = bytes.Clone(data)
	h.mu.Unlock()
	return nil
}

func (h *fakeHost) CancelTimer(_ context.Context, appID, key string) error {
	h.mu.Lock()
	delete(h.timers, appID+"/"+key)
	h.mu.Unlock()
	return nil
}

func (h *fakeHost) Get(_ context.Context, appID, key string) ([]byte, bool, error) {
	if err := h.failure("get"); err != nil {
		return nil, false, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.kv[appID+"/"+key]
	return bytes.Clone(v), ok, nil
}

func (h *fakeHost) Put(_ context.Context, appID, key string, value []byte, _ time.Duration) error {
	if err := h.failure("put"); err != nil {
		return err
	}
	h.mu.Lock()
	h.kv[appID+"/"+key] = bytes.Clone(value)
	h.mu.Unlock()
	return nil
}

func (h *fakeHost) Delete(_ context.Context, appID, key string) error {
	h.mu.Lock()
	delete(h.kv, appID+"/"+key)
	h.mu.Unlock()
	return nil
}

// hostPair is a hostServer over an in-memory connection with two plugin-side Hosts on it: stream
// (this SDK: the HostCalls stream) and unary (an older SDK: one unary RPC per call). It counts
// the HostCalls streams and the unary calls the server saw. A State call with key "break" makes
// the server end the stream it came on.
type hostPair struct {
	host    *fakeHost
	mux     *hostMux
	stream  *hostClient
	unary   *hostClient
	streams atomic.Int32
	unaries atomic.Int32
}

// newHostPair serves a fakeHost; oldHost makes the server answer HostCalls as a host built
// before it does (Unimplemented).
func newHostPair(t testing.TB, oldHost bool) *hostPair {
	t.Helper()
	p := &hostPair{host: newFakeHost()}
	srv := grpc.NewServer(
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if oldHost {
				return refuseHostCalls(srv, ss, info, h)
			}
			p.streams.Add(1)
			return h(srv, &breakingStream{ServerStream: ss, breaks: func(m any) bool {
				c, ok := m.(*pb.HostCall)
				return ok && c.GetState().GetKey() == "break"
			}})
		}),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			p.unaries.Add(1)
			return h(ctx, req)
		}))
	pb.RegisterHostServer(srv, &hostServer{h: p.host})
	cc := serveInMemory(t, srv)
	p.mux = newHostMux(pb.NewHostClient(cc))
	t.Cleanup(p.mux.close)
	p.stream = &hostClient{c: p.mux}
	p.unary = &hostClient{c: unaryHost{pb.NewHostClient(cc)}}
	return p
}

// unaryHost is the Host service as an SDK before HostCalls called it.
type unaryHost struct{ c pb.HostClient }

func (u unaryHost) Push(ctx context.Context, r *pb.PushRequest) (*pb.PushResponse, error) {
	return u.c.Push(ctx, r)
}
func (u unaryHost) Resend(ctx context.Context, r *pb.ResendRequest) (*pb.Empty, error) {
	return u.c.Resend(ctx, r)
}
func (u unaryHost) Undelivered(ctx context.Context, r *pb.UndeliveredRequest) (*pb.Empty, error) {
	return u.c.Undelivered(ctx, r)
}
func (u unaryHost) Bind(ctx context.Context, r *pb.BindRequest) (*pb.Empty, error) {
	return u.c.Bind(ctx, r)
}
func (u unaryHost) Timer(ctx context.Context, r *pb.TimerRequest) (*pb.Empty, error) {
	return u.c.Timer(ctx, r)
}
func (u unaryHost) State(ctx context.Context, r *pb.StateRequest) (*pb.StateResponse, error) {
	return u.c.State(ctx, r)
}
func (u unaryHost) Sessions(ctx context.Context, r *pb.SessionsRequest) (*pb.SessionsResponse, error) {
	return u.c.Sessions(ctx, r)
}
func (u unaryHost) Join(ctx context.Context, r *pb.JoinRequest) (*pb.Empty, error) {
	return u.c.Join(ctx, r)
}

func TestHostCallsShareOneStream(t *testing.T) {
	p := newHostPair(t, false)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				key := fmt.Sprintf("k%d-%d", g, i)
				if err := p.stream.Put(ctx, "a", key, []byte("v"+key), 0); err != nil {
					t.Errorf("put %s: %v", key, err)
					return
				}
				v, ok, err := p.stream.Get(ctx, "a", key)
				if err != nil || !ok || string(v) != "v"+key {
					t.Errorf("get %s: %q %v %v", key, v, ok, err)
					return
				}
				res, err := p.stream.Push(ctx, "a", []string{key}, []byte(key))
				if err != nil || res.MsgID != uint64(len(key)) || len(res.Targets) != 1 || res.Targets[0].DID != key+"@a" {
					t.Errorf("push %s: %+v %v", key, res, err)
					return
				}
				s, err := p.stream.Sessions(ctx, Conn{AppID: "a", DID: key})
				if err != nil || len(s) != 1 || s[0] != "s-"+key {
					t.Errorf("sessions %s: %v %v", key, s, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := p.streams.Load(); n != 1 {
		t.Errorf("server saw %d streams, want 1", n)
	}
	if n := p.unaries.Load(); n != 0 {
		t.Errorf("server saw %d unary calls, want 0", n)
	}
	if n := waiters(p.mux.calls.cur.Load()); n != 0 {
		t.Errorf("%d waiters left registered", n)
	}
}

// The stream gives the stage what the unary calls give: the same values, and errors with the
// same messages and identities.
func TestHostCallsMatchUnary(t *testing.T) {
	p := newHostPair(t, false)
	p.host.fail = func(op string) error {
		switch op {
		case "push":
			return errors.New("no route")
		case "get":
			return errors.New("store \xffbroken") // not UTF-8: cleaned on the way
		case "set timer":
			return fmt.Errorf("too many timers: %w", context.DeadlineExceeded)
		}
		return nil
	}
	conn := Conn{AppID: "a", DID: "d"}
	bg := context.Background()
	calls := []struct {
		name string
		call func(h Host) (any, error)
	}{
		{"push", func(h Host) (any, error) { return h.Push(bg, "a", []string{"d"}, nil) }},
		{"get", func(h Host) (any, error) { v, ok, err := h.Get(bg, "a", "k"); return fmt.Sprint(v, ok), err }},
		{"set timer", func(h Host) (any, error) { return nil, h.SetTimer(bg, "a", "k", time.Second, nil) }},
		{"resend", func(h Host) (any, error) { return nil, h.Resend(bg, conn, 1, 2, nil) }},
		{"bind", func(h Host) (any, error) { return nil, h.Bind(bg, "a", "s", []string{"d"}) }},
		{"put", func(h Host) (any, error) { return nil, h.Put(bg, "a", "k", []byte{}, 0) }},
		{"sessions", func(h Host) (any, error) { return h.Sessions(bg, conn) }},
		{"join", func(h Host) (any, error) { return nil, h.Join(bg, conn, []string{"s"}) }},
		{"not UTF-8", func(h Host) (any, error) { return nil, h.Delete(bg, "a", "bad\xffkey") }},
		{"reset", func(Host) (any, error) { p.host.mu.Lock(); p.host.fail = nil; p.host.mu.Unlock(); return nil, nil }},
		{"get empty", func(h Host) (any, error) {
			v, ok, err := h.Get(bg, "a", "k")
			return fmt.Sprint(v == nil, len(v), ok), err
		}},
		{"get missing", func(h Host) (any, error) { v, ok, err := h.Get(bg, "a", "none"); return fmt.Sprint(v == nil, ok), err }},
	}
	for _, c := range calls {
		wantV, wantErr := c.call(p.unary)
		gotV, gotErr := c.call(p.stream)
		if fmt.Sprint(gotV) != fmt.Sprint(wantV) {
			t.Errorf("%s: stream gave %v, unary %v", c.name, gotV, wantV)
		}
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || status.Code(gotErr) != status.Code(wantErr) ||
			errors.Is(gotErr, context.DeadlineExceeded) != errors.Is(wantErr, context.DeadlineExceeded) {
			t.Errorf("%s: stream error %v (%v), unary %v (%v)", c.name, gotErr, status.Code(gotErr), wantErr, status.Code(wantErr))
		}
		t.Logf("%s: %v %v", c.name, gotV, gotErr)
	}
	p.host.mu.Lock()
	p.host.fail = func(string) error { return errors.New("no route") }
	p.host.mu.Unlock()
	if _, err := p.stream.Push(bg, "a", []string{"d"}, nil); err == nil || err.Error() != "host push: no route" {
		t.Errorf("push error = %v, want the host's message", err)
	}
	if n := p.streams.Load(); n != 1 {
		t.Errorf("server saw %d streams, want 1 (a call that cannot be marshalled must fail alone)", n)
	}
}

func TestHostCallDeadline(t *testing.T) {
	p := newHostPair(t, false)
	late := make(chan struct{})
	p.host.sessions = func(ctx context.Context, conn Conn) ([]string, error) {
		switch conn.DID {
		case "wait":
			<-ctx.Done()
			return nil, errors.New("business RPC gave up")
		case "late": // ignores its deadline and answers long after it
			<-late
			return []string{"late"}, nil
		}
		return []string{"s-" + conn.DID}, nil
	}
	for _, did := range []string{"wait", "late"} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		start := time.Now()
		_, err := p.stream.Sessions(ctx, Conn{AppID: "a", DID: did})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || err.Error() != "host sessions: context deadline exceeded" {
			t.Errorf("%s: %v, want a timeout", did, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: returned after %v", did, d)
		}
	}
	// The stream is still usable, with the late call outstanding and after its answer.
	for i := range 2 {
		got, err := p.stream.Sessions(context.Background(), Conn{AppID: "a", DID: "d"})
		if err != nil || len(got) != 1 || got[0] != "s-d" {
			t.Fatalf("call %d after the timeouts: %v %v", i, got, err)
		}
		if i == 0 {
			close(late)
			time.Sleep(50 * time.Millisecond) // let the late answer arrive, to be dropped
		}
	}
	if n := waiters(p.mux.calls.cur.Load()); n != 0 {
		t.Errorf("%d waiters left registered", n)
	}
	if n := p.streams.Load(); n != 1 {
		t.Errorf("server saw %d streams, want 1", n)
	}
	// An expired context fails at once, as a unary call does.
	ctx, cancel := context.WithTimeout(context.Background(), -1)
	defer cancel()
	if err := p.stream.Put(ctx, "a", "k", nil, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("expired: %v", err)
	}
}

// A cancelled caller returns at once, and the host's call is cancelled too, as with a unary call.
func TestHostCallCancel(t *testing.T) {
	p := newHostPair(t, false)
	hostErr := make(chan error, 1)
	p.host.sessions = func(ctx context.Context, _ Conn) ([]string, error) {
		<-ctx.Done()
		hostErr <- ctx.Err()
		return nil, ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	if _, err := p.stream.Sessions(ctx, Conn{AppID: "a", DID: "d"}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want Canceled", err)
	}
	select {
	case err := <-hostErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("host's ctx: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the host's call was never cancelled")
	}
}

func TestHostStreamBreaks(t *testing.T) {
	p := newHostPair(t, false)
	p.mux.reopen = 200 * time.Millisecond
	ctx := context.Background()
	if err := p.stream.Put(ctx, "a", "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	// Calls in flight when the host ends the stream fail with the stream's error, promptly.
	release := make(chan struct{})
	defer close(release)
	p.host.sessions = func(ctx context.Context, _ Conn) ([]string, error) {
		select {
		case <-ctx.Done():
		case <-release:
		}
		return nil, errors.New("released")
	}
	const inflight = 8
	errs := make(chan error, inflight)
	for range inflight {
		go func() {
			_, err := p.stream.Sessions(ctx, Conn{AppID: "a", DID: "d"})
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond) // let them reach the host
	_, _, err := p.stream.Get(ctx, "a", "break")
	if err == nil || !strings.HasPrefix(err.Error(), "host get: host call stream broken: ") || !strings.Contains(err.Error(), "broken on purpose") {
		t.Errorf("breaking call: %v", err)
	}
	for range inflight {
		select {
		case err := <-errs:
			if err == nil || !strings.Contains(err.Error(), "host sessions: host call stream broken") ||
				errors.Is(err, context.DeadlineExceeded) || status.Code(err) != codes.Unavailable {
				t.Errorf("in flight: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a call hung after the stream broke")
		}
	}
	// Right after the break, calls go unary; after the back-off, a new stream opens.
	unaries := p.unaries.Load()
	if v, ok, err := p.stream.Get(ctx, "a", "k"); err != nil || !ok || string(v) != "v" {
		t.Fatalf("after the break: %q %v %v", v, ok, err)
	}
	if p.unaries.Load() != unaries+1 {
		t.Errorf("the call right after the break was not unary")
	}
	time.Sleep(250 * time.Millisecond)
	if v, ok, err := p.stream.Get(ctx, "a", "k"); err != nil || !ok || string(v) != "v" {
		t.Fatalf("after reopening: %q %v %v", v, ok, err)
	}
	if n := p.streams.Load(); n != 2 {
		t.Errorf("streams = %d, want 2", n)
	}
	if p.unaries.Load() != unaries+1 {
		t.Errorf("the call after the back-off was unary")
	}
}

// Against a host built before HostCalls, every call, including those already waiting on the
// refused stream, is made unary.
func TestHostCallsOldHost(t *testing.T) {
	p := newHostPair(t, true)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprint(g)
			if err := p.stream.Put(ctx, "a", key, []byte(key), 0); err != nil {
				t.Errorf("put: %v", err)
			}
			if v, ok, err := p.stream.Get(ctx, "a", key); err != nil || !ok || string(v) != key {
				t.Errorf("get: %q %v %v", v, ok, err)
			}
		}()
	}
	wg.Wait()
	if !p.mux.unsupported.Load() {
		t.Error("the mux did not learn the host has no HostCalls")
	}
	if n := p.unaries.Load(); n != 32 {
		t.Errorf("unary calls = %d, want 32", n)
	}
}

// After close (a new Init replaced the Host), calls no longer use the stream.
func TestHostMuxClose(t *testing.T) {
	p := newHostPair(t, false)
	if err := p.stream.Put(context.Background(), "a", "k", nil, 0); err != nil {
		t.Fatal(err)
	}
	p.mux.close()
	if err := p.stream.Put(context.Background(), "a", "k", nil, 0); err != nil {
		t.Fatal(err)
	}
	if n := p.unaries.Load(); n != 1 {
		t.Errorf("unary calls = %d, want 1", n)
	}
}
