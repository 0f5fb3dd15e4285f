package gateway

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/platoim/plato/internal/batch"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/common"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/state"
	stateservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/state/state"
	"github.com/platoim/plato/sdk/protocol"
)

// stateLink forwards device events to one state server in ordered micro-batches.
type stateLink struct {
	node  registry.Node
	cli   stateservice.Client
	batch *batch.Batcher[*common.UpEvent]
	gone  chan struct{}
}

// stateLinks tracks the live state servers from the registry and picks one per did, so a device
// that reconnects lands on the state server that knew it.
type stateLinks struct {
	gw     *Gateway
	mu     sync.RWMutex
	byID   map[string]*stateLink
	sorted []*stateLink
}

func newStateLinks(gw *Gateway) *stateLinks {
	return &stateLinks{gw: gw, byID: map[string]*stateLink{}}
}

// pick chooses the state server for did by rendezvous hashing, or nil when none is live.
func (s *stateLinks) pick(did string) *stateLink {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best *stateLink
	var bestScore uint64
	for _, l := range s.sorted {
		h := fnv.New64a()
		h.Write([]byte(l.node.ID))
		h.Write([]byte{0})
		h.Write([]byte(did))
		if sc := mix64(h.Sum64()); best == nil || sc > bestScore {
			best, bestScore = l, sc
		}
	}
	return best
}

// watch follows the registry until ctx ends.
func (s *stateLinks) watch(ctx context.Context) error {
	if err := registry.Follow(ctx, s.gw.reg, registry.RoleState, s.put, s.remove); err != nil {
		return fmt.Errorf("watching state servers: %w", err)
	}
	return nil
}

func (s *stateLinks) put(n registry.Node) {
	s.mu.Lock()
	old := s.byID[n.ID]
	if old != nil && old.node.RPCAddr == n.RPCAddr {
		old.node = n
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	l, err := s.gw.newStateLink(n)
	if err != nil {
		s.gw.log.Error("cannot reach state server", "state", n.ID, "addr", n.RPCAddr, "err", err)
		return
	}
	s.mu.Lock()
	s.byID[n.ID] = l
	s.rebuild()
	s.mu.Unlock()
	s.gw.log.Info("state server joined", "state", n.ID, "addr", n.RPCAddr)
	if old != nil {
		s.gw.dropLink(old)
	}
}

func (s *stateLinks) remove(id string) {
	s.mu.Lock()
	l := s.byID[id]
	delete(s.byID, id)
	s.rebuild()
	s.mu.Unlock()
	if l != nil {
		s.gw.log.Warn("state server left; closing its connections", "state", id)
		s.gw.dropLink(l)
	}
}

func (s *stateLinks) rebuild() {
	s.sorted = s.sorted[:0]
	for _, l := range s.byID {
		s.sorted = append(s.sorted, l)
	}
}

func (s *stateLinks) closeAll(ctx context.Context) {
	s.mu.Lock()
	links := s.sorted
	s.byID, s.sorted = map[string]*stateLink{}, nil
	s.mu.Unlock()
	for _, l := range links {
		_ = l.batch.Close(ctx)
	}
}

func (gw *Gateway) newStateLink(n registry.Node) (*stateLink, error) {
	cli, err := stateservice.NewClient("plato-state", rpc.Client(n.RPCAddr, gw.cfg.RPCTimeout)...)
	if err != nil {
		return nil, fmt.Errorf("creating state client for %s: %w", n.RPCAddr, err)
	}
	l := &stateLink{node: n, cli: cli, gone: make(chan struct{})}
	l.batch = batch.New(batch.Config{
		MaxSize: gw.cfg.Batch.MaxSize, MaxDelay: gw.cfg.Batch.MaxDelay, Lanes: gw.cfg.Batch.Lanes,
	}, func(ctx context.Context, events []*common.UpEvent) { gw.deliver(ctx, l, events) })
	return l, nil
}

// deliver sends one batch, retrying a few times while the state server is still registered: the
// lane is blocked meanwhile, which keeps each connection's events in order.
func (gw *Gateway) deliver(ctx context.Context, l *stateLink, events []*common.UpEvent) {
	req := &state.DeliverRequest{GatewayId: gw.cfg.ID, Events: events, Proof: gw.proof}
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		_, err := l.cli.Deliver(ctx, req)
		if err == nil {
			return
		}
		gw.metrics.stateErrors[rpc.KindOf(err)].Add(1)
		select {
		case <-l.gone:
			return
		case <-ctx.Done():
			return
		default:
		}
		if attempt >= 5 {
			gw.log.Error("dropping events for unreachable state server", "state", l.node.ID, "events", len(events), "err", err)
			gw.metrics.deliverErrors.Add(1)
			return
		}
		gw.log.Warn("delivering to state server failed; retrying", "state", l.node.ID, "attempt", attempt, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-l.gone:
			t.Stop()
			return
		}
		backoff *= 2
	}
}

// dropLink closes every connection the departed state server held: their state is gone with it.
func (gw *Gateway) dropLink(l *stateLink) {
	close(l.gone)
	gw.conns.each(func(c *conn) {
		c.mu.Lock()
		mine := c.link == l
		c.mu.Unlock()
		if mine {
			c.closeWith(protocol.CodeStateLost, "state server left")
		}
	})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.batch.Close(ctx)
	}()
}

// mix64 is MurmurHash3's finalizer. FNV-1a alone barely mixes its last bytes into the high ones,
// so for dids with a common prefix the same state server would win almost every time; mixed, each
// wins its fair share.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
