package gateway

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cloudwego/kitex/pkg/klog"
	"github.com/nats-io/nats.go"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/fanout"
	"github.com/platoim/plato/internal/natsd"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	gwservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/gateway"
	stateservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/state"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

// The harness runs a real gateway against a real embedded NATS (registry and broadcasts), a fake
// Kitex state server that records what the gateway delivers, and raw-socket devices, all on
// loopback ports the system picks.

// wait is the generous bound of every wait in these tests: they run under -race on busy machines.
const wait = 15 * time.Second

var kitexOnce sync.Once

func testLogger(t testing.TB) *slog.Logger {
	// Kitex's process-wide logger setter is not synchronised: set it once, before any server.
	kitexOnce.Do(func() { klog.SetLevel(klog.LevelWarn) })
	if os.Getenv("PLATO_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

type harness struct {
	t      *testing.T
	gw     *Gateway
	state  *fakeState
	rpc    gwservice.Client
	signer *token.Signer
	// pub publishes broadcasts from a connection of its own, as a state server would.
	pub *nats.Conn
}

type harnessOpts struct {
	noNATS  bool
	maxBody int
	// wrapFrame, when set, wraps the gateway's handling of each frame (guard_test.go).
	wrapFrame func(next func(c *conn, h protocol.Header, body []byte)) func(c *conn, h protocol.Header, body []byte)
}

func newHarness(t *testing.T, opts harnessOpts) *harness {
	t.Helper()
	log := testLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	ns, err := natsd.Start(ctx, natsd.Config{StoreDir: t.TempDir()}, log)
	if err != nil {
		t.Fatalf("starting nats: %v", err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, js, err := registry.Connect(ctx, ns.ClientURL(), "gateway-test", log)
	if err != nil {
		t.Fatalf("connecting to nats: %v", err)
	}
	t.Cleanup(nc.Close)
	pub, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatalf("connecting the publisher: %v", err)
	}
	t.Cleanup(pub.Close)
	// A TTL longer than any test, so the fake state server need not refresh its entry.
	reg, err := registry.NewNATS(ctx, js, config.DefaultRegistryBucket, time.Minute)
	if err != nil {
		t.Fatalf("opening the registry: %v", err)
	}

	fs := &fakeState{}
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ssrv := stateservice.NewServer(fs, rpc.Server(sln)...)
	go func() { _ = ssrv.Run() }()
	t.Cleanup(func() { _ = ssrv.Stop() })
	now := time.Now()
	if err := reg.Put(ctx, registry.Node{
		ID: "state-test", Role: registry.RoleState, RPCNetwork: "tcp", RPCAddr: sln.Addr().String(),
		StartedAt: now, UpdatedAt: now,
	}); err != nil {
		t.Fatalf("registering the fake state server: %v", err)
	}

	signer, err := token.NewSigner([]byte("gateway-test-secret-0123456789"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gc := config.Default().Gateway
	gc.ID, gc.Addr, gc.RPCAddr = "gw-test", "127.0.0.1:0", "127.0.0.1:0"
	gc.ReportInterval = 200 * time.Millisecond
	if opts.maxBody > 0 {
		gc.MaxBody = opts.maxBody
	}
	cfg := Config{Gateway: gc, RPCTimeout: 5 * time.Second}
	if !opts.noNATS {
		cfg.NATS = nc
	}
	gw, err := New(cfg, reg, signer, log)
	if err != nil {
		t.Fatal(err)
	}
	if opts.wrapFrame != nil {
		gw.onFrame = opts.wrapFrame(gw.onFrame)
	}
	if err := gw.Start(context.Background()); err != nil {
		t.Fatalf("starting the gateway: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = gw.Shutdown(ctx)
	})
	poll.Until(t, "the gateway sees the state server", func() bool { return pick(gw.links.List(), "any") != nil })

	cli, err := gwservice.NewClient("plato-gateway", rpc.Client(gw.RPCAddr(), 5*time.Second)...)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, gw: gw, state: fs, rpc: cli, signer: signer, pub: pub}
}

// publish sends a broadcast as a state server would, and flushes so it is on its way.
func (h *harness) publish(m fanout.Message) {
	h.t.Helper()
	if err := m.Validate(); err != nil {
		h.t.Fatal(err)
	}
	h.publishRaw(m.Append(nil))
}

func (h *harness) publishRaw(b []byte) {
	h.t.Helper()
	if err := h.pub.Publish(fanout.Subject, b); err != nil {
		h.t.Fatalf("publishing: %v", err)
	}
	if err := h.pub.FlushTimeout(wait); err != nil {
		h.t.Fatalf("flushing: %v", err)
	}
}

// sessions calls the gateway's Sessions RPC as the state server does.
func (h *harness) sessions(changes ...*fleet.SessionChange) []int64 {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := h.rpc.Sessions(ctx, &fleet.SessionsRequest{Changes: changes})
	if err != nil {
		h.t.Fatalf("Sessions: %v", err)
	}
	return resp.Gone
}

func join(d *device, session string) *fleet.SessionChange {
	return &fleet.SessionChange{ConnId: int64(d.id), Session: session, Join: true}
}

func leave(d *device, session string) *fleet.SessionChange {
	return &fleet.SessionChange{ConnId: int64(d.id), Session: session}
}

func (h *harness) push(frames ...*fleet.DownFrame) []int64 {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := h.rpc.Push(ctx, &fleet.PushRequest{Frames: frames})
	if err != nil {
		h.t.Fatalf("Push: %v", err)
	}
	return resp.Gone
}

// fakeState is a Kitex State server that records every event gateways deliver.
type fakeState struct {
	mu     sync.Mutex
	events []*fleet.UpEvent
}

func (f *fakeState) Deliver(_ context.Context, req *fleet.DeliverRequest) (*fleet.DeliverResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range req.Events {
		ev.Body = bytes.Clone(ev.Body)
		f.events = append(f.events, ev)
	}
	return &fleet.DeliverResponse{}, nil
}

// find returns the recorded events match accepts.
// LocalPush and LocalSession are state-to-state calls; the gateway never makes them.
func (f *fakeState) LocalPush(context.Context, *fleet.LocalPushRequest) (*fleet.LocalPushResponse, error) {
	return &fleet.LocalPushResponse{}, nil
}

func (f *fakeState) LocalSession(context.Context, *fleet.LocalSessionRequest) (*fleet.LocalSessionResponse, error) {
	return &fleet.LocalSessionResponse{}, nil
}

func (f *fakeState) find(match func(*fleet.UpEvent) bool) []*fleet.UpEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fleet.UpEvent
	for _, ev := range f.events {
		if match(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// device is a raw protocol client, so tests see exactly the frames the gateway writes.
type device struct {
	t        *testing.T
	nc       net.Conn
	br       *bufio.Reader
	id       uint64
	app, did string
}

// connect dials the gateway and sends Login; the login is pending until accept.
func (h *harness) connect(app, did string) *device {
	h.t.Helper()
	nc, err := net.DialTimeout("tcp", h.gw.Addr(), wait)
	if err != nil {
		h.t.Fatalf("dialing the gateway: %v", err)
	}
	h.t.Cleanup(func() { nc.Close() })
	d := &device{t: h.t, nc: nc, br: bufio.NewReader(nc), app: app, did: did}
	tok, _ := h.signer.Issue(app, did, time.Now())
	d.send(protocol.SigLogin, 0, 1, (&protocol.Login{AppID: app, DID: did, UID: "u-" + did, Token: tok}).Append(nil))
	var login []*fleet.UpEvent
	poll.Until(h.t, "the state server sees the login of "+did, func() bool {
		login = h.state.find(func(ev *fleet.UpEvent) bool {
			return protocol.Signal(ev.Signal) == protocol.SigLogin && ev.AppId == app && ev.Did == did
		})
		return len(login) > 0
	})
	d.id = uint64(login[len(login)-1].ConnId)
	return d
}

// accept answers the pending login as the state server does, and reads the device's LoginAck.
func (h *harness) accept(d *device) {
	h.t.Helper()
	ack := (&protocol.LoginAck{ConnID: d.id, HeartbeatMs: 30000}).Append(nil)
	if gone := h.push(&fleet.DownFrame{
		ConnId: int64(d.id), Action: fleet.DownAction_LOGIN_OK, Signal: int8(protocol.SigLoginAck), Seq: 1, Body: ack,
	}); len(gone) != 0 {
		h.t.Fatalf("LOGIN_OK for %s: gone %v", d.did, gone)
	}
	if f := d.read(); f.Signal != protocol.SigLoginAck {
		h.t.Fatalf("%s: first frame %v, want LoginAck", d.did, f)
	}
}

// login connects a device and accepts its login.
func (h *harness) login(app, did string) *device {
	h.t.Helper()
	d := h.connect(app, did)
	h.accept(d)
	return d
}

func (d *device) send(sig protocol.Signal, flags uint16, seq uint64, body []byte) {
	d.t.Helper()
	_ = d.nc.SetWriteDeadline(time.Now().Add(wait))
	if _, err := d.nc.Write(protocol.AppendFrame(nil, sig, flags, seq, body)); err != nil {
		d.t.Fatalf("%s: writing %s: %v", d.did, sig, err)
	}
}

func (d *device) read() protocol.Frame {
	d.t.Helper()
	_ = d.nc.SetReadDeadline(time.Now().Add(wait))
	f, _, err := protocol.ReadFrame(d.br, protocol.HardMaxBody, nil)
	if err != nil {
		d.t.Fatalf("%s: reading a frame: %v", d.did, err)
	}
	return f
}

// readBroadcast reads the next frame, which must be a broadcast Downlink, and returns its body.
func (d *device) readBroadcast() (protocol.Frame, protocol.Downlink) {
	d.t.Helper()
	f := d.read()
	var dl protocol.Downlink
	if f.Signal != protocol.SigDownlink || f.Flags != protocol.FlagBroadcast {
		d.t.Fatalf("%s: got %v, want a broadcast Downlink", d.did, f)
	}
	if err := dl.Decode(f.Body); err != nil {
		d.t.Fatalf("%s: decoding the Downlink: %v", d.did, err)
	}
	if f.Seq != dl.MsgID {
		d.t.Fatalf("%s: broadcast seq %d, msg_id %d: want equal", d.did, f.Seq, dl.MsgID)
	}
	return f, dl
}

// expectClosed reads until the gateway closes the socket.
func (d *device) expectClosed() {
	d.t.Helper()
	_ = d.nc.SetReadDeadline(time.Now().Add(wait))
	for {
		if _, _, err := protocol.ReadFrame(d.br, protocol.HardMaxBody, nil); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				d.t.Fatalf("%s: still open", d.did)
			}
			return
		}
	}
}
