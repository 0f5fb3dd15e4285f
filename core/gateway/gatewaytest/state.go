package gatewaytest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	stateservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/state"
	"github.com/platoim/plato/internal/testkit"
	"github.com/platoim/plato/sdk/protocol"
)

// StateID is the fake state server's ID in the registry, and the caller the harness's Push and
// Sessions calls name.
const StateID = "state-test"

// State is a fake state server: a real Kitex State service that records every event the gateway
// delivers and answers nothing else. It checks no proof and never refuses a batch. Its methods are
// safe to call from any goroutine.
type State struct {
	// Addr is where the gateway reaches it.
	Addr string

	mu     sync.Mutex
	events []*fleet.UpEvent
	reply  func(*fleet.DeliverRequest) *fleet.DeliverResponse
	gone   []int64
	moved  []int64
}

// SetReply makes Deliver answer each batch with what reply returns (nil: an empty answer), as a
// state server that returns UplinkAcks in the reply (DeliverResponse.acks) does.
func (s *State) SetReply(reply func(*fleet.DeliverRequest) *fleet.DeliverResponse) {
	s.mu.Lock()
	s.reply = reply
	s.mu.Unlock()
}

// Reports returns the connections the gateway reported gone or moved in its Deliver calls.
func (s *State) Reports() (gone, moved []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.gone...), append([]int64(nil), s.moved...)
}

var _ fleet.State = (*State)(nil)

// startState serves a State on a free loopback port and puts it in the registry.
func startState(ctx context.Context, t testing.TB, reg registry.Registry) *State {
	t.Helper()
	l := testkit.Listen(t)
	s := &State{Addr: l.Addr}
	t.Cleanup(testkit.Serve(stateservice.NewServer(s, l.Options()...)))
	now := time.Now()
	if err := reg.Put(ctx, registry.Node{
		ID: StateID, Role: registry.RoleState, RPCNetwork: "tcp", RPCAddr: s.Addr, StartedAt: now, UpdatedAt: now,
	}); err != nil {
		t.Fatalf("registering the fake state server: %v", err)
	}
	return s
}

// Deliver records the batch, in order, and the connections reported gone or moved.
func (s *State) Deliver(_ context.Context, req *fleet.DeliverRequest) (*fleet.DeliverResponse, error) {
	s.mu.Lock()
	// A copy: the request is only lent, as to a real state server (core/state's Deliver). In
	// process the gateway takes its events back once the call returns; over Kitex the body may
	// point into the read buffer, which is reused. One array per call, as Kitex's reader makes:
	// the allocation tests count this record too.
	kept := make([]fleet.UpEvent, len(req.Events))
	for i, ev := range req.Events {
		if err := kept[i].DeepCopy(ev); err != nil {
			s.mu.Unlock()
			return nil, err
		}
		s.events = append(s.events, &kept[i])
	}
	s.gone = append(s.gone, req.Gone...)
	s.moved = append(s.moved, req.Moved...)
	reply := s.reply
	s.mu.Unlock()
	if reply != nil {
		if resp := reply(req); resp != nil {
			return resp, nil
		}
	}
	return &fleet.DeliverResponse{}, nil
}

// Ping answers that the fake state server is alive, always as the same run.
func (s *State) Ping(context.Context, *fleet.PingRequest) (*fleet.PingResponse, error) {
	return &fleet.PingResponse{Boot: "gatewaytest"}, nil
}

// LocalPush answers nothing: it is a state-to-state call, which a gateway never makes.
func (s *State) LocalPush(context.Context, *fleet.LocalPushRequest) (*fleet.LocalPushResponse, error) {
	return &fleet.LocalPushResponse{}, nil
}

// LocalPushBatch answers nothing either, for the same reason.
func (s *State) LocalPushBatch(context.Context, *fleet.LocalPushBatchRequest) (*fleet.LocalPushBatchResponse, error) {
	return &fleet.LocalPushBatchResponse{}, nil
}

// LocalSession answers nothing: it is a state-to-state call, which a gateway never makes.
func (s *State) LocalSession(context.Context, *fleet.LocalSessionRequest) (*fleet.LocalSessionResponse, error) {
	return &fleet.LocalSessionResponse{}, nil
}

// Find returns the events delivered so far that match accepts, in the order they arrived; a nil
// match accepts all. The events are shared: do not modify them.
func (s *State) Find(match func(*fleet.UpEvent) bool) []*fleet.UpEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*fleet.UpEvent
	for _, ev := range s.events {
		if match == nil || match(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// Received returns the frames of signal sig that connection connID sent so far, in order.
func (s *State) Received(connID uint64, sig protocol.Signal) []*fleet.UpEvent {
	return s.Find(func(ev *fleet.UpEvent) bool {
		return ev.ConnId == int64(connID) && ev.Kind == fleet.UpKind_FRAME && protocol.Signal(ev.Signal) == sig
	})
}

// Forget drops the events recorded so far: a benchmark that holds thousands of devices measures
// the gateway, not this record of their logins.
func (s *State) Forget() {
	s.mu.Lock()
	s.events = nil
	s.mu.Unlock()
}

// Delivered is how many events were delivered since the start or the last Forget.
func (s *State) Delivered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

// Count is how many events delivered so far match accepts, without copying them.
func (s *State) Count(match func(*fleet.UpEvent) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ev := range s.events {
		if match(ev) {
			n++
		}
	}
	return n
}
