package state

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cloudwego/kitex/client/callopt"

	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc"
	stateservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/state/state"
)

// peer is another state server of the fleet: a business call to this one also reaches the
// connections the peer holds (dids hash to state servers, so a session's members, a user's devices
// and the named dids are spread over all of them).
type peer struct {
	id, addr string
	cli      stateservice.Client
}

// peers tracks the other state servers from the registry.
type peers struct {
	s    *Server
	mu   sync.RWMutex
	byID map[string]*peer
}

func (p *peers) watch(ctx context.Context) error {
	if err := registry.Follow(ctx, p.s.reg, registry.RoleState, p.put, p.remove); err != nil {
		return fmt.Errorf("watching state servers: %w", err)
	}
	return nil
}

func (p *peers) put(n registry.Node) {
	if n.ID == p.s.cfg.ID {
		return
	}
	p.mu.RLock()
	old := p.byID[n.ID]
	p.mu.RUnlock()
	if old != nil && old.addr == n.RPCAddr {
		return
	}
	cli, err := stateservice.NewClient("plato-state", rpc.Client(n.RPCAddr, p.s.cfg.RPCTimeout)...)
	if err != nil {
		p.s.log.Error("cannot reach state server", "state", n.ID, "addr", n.RPCAddr, "err", err)
		return
	}
	p.mu.Lock()
	p.byID[n.ID] = &peer{id: n.ID, addr: n.RPCAddr, cli: cli}
	p.mu.Unlock()
	p.s.log.Info("state server peer joined", "peer", n.ID, "rpc", n.RPCAddr)
}

func (p *peers) remove(id string) {
	p.mu.Lock()
	_, ok := p.byID[id]
	delete(p.byID, id)
	p.mu.Unlock()
	if ok {
		p.s.log.Info("state server peer left", "peer", id)
	}
}

func (p *peers) list() []*peer {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]*peer, 0, len(p.byID))
	for _, pr := range p.byID {
		out = append(out, pr)
	}
	return out
}

// Peers lists the IDs of the other state servers this one knows.
func (s *Server) Peers() []string {
	var ids []string
	for _, p := range s.peers.list() {
		ids = append(ids, p.id)
	}
	return ids
}

// peerTimeout bounds a call to a peer that may wait up to wait for device ACKs.
func (s *Server) peerTimeout(wait time.Duration) callopt.Option {
	return callopt.WithRPCTimeout(s.cfg.RPCTimeout + wait)
}

// gather runs local on this server and call on every peer concurrently, and returns the peers'
// answers (nil for a peer that failed, with its error) after local's.
func gather[R any](ctx context.Context, s *Server, local func() R, call func(ctx context.Context, p *peer) (R, error)) (mine R, theirs []R, failed []error) {
	ps := s.peers.list()
	theirs = make([]R, len(ps))
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := call(ctx, p)
			if err != nil {
				s.metrics.rpcError(peerState, err)
				errs[i] = fmt.Errorf("state server %s: %w", p.id, err)
				return
			}
			theirs[i] = r
		}()
	}
	mine = local()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	return mine, theirs, failed
}
