package statetest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platoim/plato/internal/peerauth"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	gwservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/gateway"
	stateservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/state"
	"github.com/platoim/plato/internal/testkit"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// Frame is one frame the state server pushed to a device through the fake gateway.
type Frame struct {
	// ConnID is the device connection it is for.
	ConnID uint64
	// Signal, Flags, Seq and Body are the device frame (docs/protocol.md).
	Signal protocol.Signal
	Flags  uint16
	Seq    uint64
	Body   []byte
	// LoginOK is set on the LoginAck of an accepted login, DID with it: the gateway indexes the
	// connection by did then.
	LoginOK bool
	DID     string
	// Closes says the gateway is to close the connection once the frame is written.
	Closes bool
}

// SessionChange is one connection joining or leaving a session in the gateway's local index.
type SessionChange struct {
	ConnID  uint64
	Session string
	// Join is false for a leave.
	Join bool
}

// Gateway is a fake gateway: a real Kitex Gateway service, registered in the registry, that
// records what the state server pushes instead of writing it to sockets. Like a real gateway it
// holds connections (Connect) and answers the frames and session changes of one it does not
// hold as gone. It never closes a connection by itself: a frame that closes (Frame.Closes) is
// recorded, and the connection is no longer held; tell the state server with Device.Close when a
// test needs the gateway's close callback.
type Gateway struct {
	// ID is its registry ID (GatewayID); Addr its RPC address.
	ID, Addr string

	proof    string
	verifier *peerauth.Verifier
	reg      registry.Registry
	stopKeep context.CancelFunc
	kept     <-chan struct{}
	leave    sync.Once
	state    stateservice.Client
	nextConn atomic.Uint64

	mu        sync.Mutex
	held      map[uint64]bool
	frames    []Frame
	changes   []SessionChange
	badProofs int
}

func startGateway(t testing.TB, reg registry.Registry, log *slog.Logger, stops *stoppers) *Gateway {
	t.Helper()
	l := testkit.Listen(t)
	g := &Gateway{
		ID: GatewayID, Addr: l.Addr, reg: reg,
		proof:    peerauth.Proof([]byte(Secret), peerauth.Gateway, GatewayID),
		verifier: peerauth.NewVerifier([]byte(Secret), peerauth.State),
		held:     map[uint64]bool{},
	}
	stops.add(testkit.Serve(gwservice.NewServer(&gatewayService{g}, l.Options()...)))

	started := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	kept, err := registry.Keep(ctx, reg, time.Second, func() registry.Node {
		return registry.Node{
			ID: g.ID, Role: registry.RoleGateway, RPCNetwork: "tcp", RPCAddr: g.Addr,
			Load: registry.Load{Conns: int64(g.heldCount())}, StartedAt: started, UpdatedAt: time.Now(),
		}
	}, log)
	if err != nil {
		cancel()
		t.Fatalf("statetest: registering the fake gateway: %v", err)
	}
	g.stopKeep, g.kept = cancel, kept
	t.Cleanup(func() { cancel(); <-kept })
	return g
}

func (g *Gateway) connectState(t testing.TB, addr string) {
	t.Helper()
	c, err := stateservice.NewClient("plato-state", rpc.Client(addr, wait)...)
	if err != nil {
		t.Fatalf("statetest: %v", err)
	}
	g.state = c
}

// Connect opens a device connection on the gateway, with a connection ID of its own; nothing
// is sent until Login.
func (g *Gateway) Connect(app, did, uid string) *Device {
	id := g.nextConn.Add(1)
	g.mu.Lock()
	g.held[id] = true
	g.mu.Unlock()
	return &Device{ConnID: id, AppID: app, DID: did, UID: uid, g: g}
}

// Frames returns every frame pushed through the gateway so far, in the order they arrived.
func (g *Gateway) Frames() []Frame {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Frame(nil), g.frames...)
}

// SessionChanges returns the session changes the state server sent, in order.
func (g *Gateway) SessionChanges() []SessionChange {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]SessionChange(nil), g.changes...)
}

// BadProofs is how many calls the gateway refused because the caller did not prove it is a
// state server of the fleet. A state server that stops proving itself makes it non-zero.
func (g *Gateway) BadProofs() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.badProofs
}

// Forget drops a connection the way a gateway does when its socket closed before it could tell
// the state server: the next frame or session change for it is answered as gone.
func (g *Gateway) Forget(connID uint64) {
	g.mu.Lock()
	delete(g.held, connID)
	g.mu.Unlock()
}

// Leave deregisters the gateway, as one that shuts down or dies (once its entry expires) does:
// the state server then drops the connections it held through it. Its RPC service keeps running.
func (g *Gateway) Leave(t testing.TB) {
	t.Helper()
	var err error
	g.leave.Do(func() {
		g.stopKeep()
		<-g.kept // a refresh in flight must not put the entry back
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		err = g.reg.Delete(ctx, registry.RoleGateway, g.ID)
	})
	if err != nil {
		t.Fatalf("statetest: deregistering the fake gateway: %v", err)
	}
}

func (g *Gateway) heldCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.held)
}

// deliver sends events to the state server as the gateway, with its proof.
func (g *Gateway) deliver(t testing.TB, events ...*fleet.UpEvent) {
	t.Helper()
	if g.state == nil {
		t.Fatal("statetest: the gateway is not connected to a state server yet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := g.state.Deliver(ctx, &fleet.DeliverRequest{GatewayId: g.ID, Proof: g.proof, Events: events}); err != nil {
		t.Fatalf("statetest: Deliver: %v", err)
	}
}

// waitFrame polls until pick finds a frame among those recorded.
func (g *Gateway) waitFrame(t testing.TB, what string, pick func(frames []Frame) (Frame, bool)) Frame {
	t.Helper()
	var f Frame
	poll.Within(t, wait, what, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		var ok bool
		f, ok = pick(g.frames)
		return ok
	})
	return f
}

// gatewayService is the Kitex Gateway service of the fake.
type gatewayService struct{ g *Gateway }

var _ fleet.Gateway = (*gatewayService)(nil)

func (s *gatewayService) Push(_ context.Context, req *fleet.PushRequest) (*fleet.PushResponse, error) {
	g := s.g
	if err := g.check(req.StateId, req.Proof); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	resp := &fleet.PushResponse{}
	for _, f := range req.Frames {
		id := uint64(f.ConnId)
		if !g.held[id] {
			resp.Gone = append(resp.Gone, f.ConnId)
			continue
		}
		fr := Frame{
			ConnID: id, Signal: protocol.Signal(f.Signal), Flags: uint16(f.Flags), Seq: uint64(f.Seq), Body: bytes.Clone(f.Body),
			LoginOK: f.Action == fleet.DownAction_LOGIN_OK, DID: f.Did, Closes: f.Action == fleet.DownAction_SEND_AND_CLOSE,
		}
		g.frames = append(g.frames, fr)
		if fr.Closes {
			delete(g.held, id)
		}
	}
	return resp, nil
}

func (s *gatewayService) Sessions(_ context.Context, req *fleet.SessionsRequest) (*fleet.SessionsResponse, error) {
	g := s.g
	if err := g.check(req.StateId, req.Proof); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	resp := &fleet.SessionsResponse{}
	for _, c := range req.Changes {
		if !g.held[uint64(c.ConnId)] {
			resp.Gone = append(resp.Gone, c.ConnId)
			continue
		}
		g.changes = append(g.changes, SessionChange{ConnID: uint64(c.ConnId), Session: c.Session, Join: c.Join})
	}
	return resp, nil
}

func (g *Gateway) check(stateID, proof string) error {
	if err := g.verifier.Verify(stateID, proof); err != nil {
		g.mu.Lock()
		g.badProofs++
		g.mu.Unlock()
		return fmt.Errorf("call from state server %q refused: %w", stateID, err)
	}
	return nil
}
