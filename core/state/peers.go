package state

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/kitex/client/callopt"

	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc"
	stateservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/state"
)

// peer is another state server of the fleet: a business call to this one also reaches the
// connections the peer holds (dids hash to state servers, so a session's members, a user's devices
// and the named dids are spread over all of them).
type peer struct {
	id, addr string
	cli      stateservice.Client
	// goneSince is when the peer first refused connections (unix ns; 0 while it answers).
	goneSince atomic.Int64
}

// movingGrace is how long after a peer state server is found gone its devices may still be on
// their way to the others (the gateways notice within state_ping_interval × state_pings_lost, 750 ms
// by default, and move them): a call meanwhile fails rather than miss them.
const movingGrace = 2 * time.Second

// newPeers follows the other state servers in the registry.
func newPeers(s *Server) *registry.Table[*peer] {
	return registry.NewTable(registry.TableConfig[*peer]{
		Role: registry.RoleState, Self: s.cfg.ID, Log: s.log,
		Dial: func(n registry.Node) (*peer, error) {
			cli, err := stateservice.NewClient("plato-state", rpc.Client(n.RPCAddr, s.cfg.RPCTimeout)...)
			if err != nil {
				return nil, fmt.Errorf("creating state client for %s: %w", n.RPCAddr, err)
			}
			return &peer{id: n.ID, addr: n.RPCAddr, cli: cli}, nil
		},
	})
}

// Peers lists the IDs of the other state servers this one knows.
func (s *Server) Peers() []string { return s.peers.IDs() }

// peerTimeout bounds a call to a peer that may wait up to wait for device ACKs.
func (s *Server) peerTimeout(wait time.Duration) callopt.Option {
	return callopt.WithRPCTimeout(s.cfg.RPCTimeout + wait)
}

// gather runs local on this server and call on every peer concurrently, and returns the peers'
// answers (nil for a peer that failed, with its error) after local's. A peer whose address has
// refused connections for movingGrace is gone: nil, without an error.
func gather[R any](ctx context.Context, s *Server, local func() R, call func(ctx context.Context, p *peer) (R, error)) (mine R, theirs []R, failed []error) {
	ps := s.peers.List()
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
				if rpc.Refused(err) {
					// Nothing listens at its address: the process is gone, with every connection it
					// held. Once its gateways have moved them, it holds nothing to answer for.
					now := time.Now().UnixNano()
					p.goneSince.CompareAndSwap(0, now)
					if time.Duration(now-p.goneSince.Load()) >= movingGrace {
						return
					}
					errs[i] = fmt.Errorf("state server %s is gone and its connections are moving to the others; retry", p.id)
					return
				}
				errs[i] = fmt.Errorf("state server %s: %w", p.id, err)
				return
			}
			p.goneSince.Store(0)
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
