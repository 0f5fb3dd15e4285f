package ipconf

import (
	"context"
	"time"

	"github.com/platoim/plato/internal/registry"
)

const (
	rewatchMin = time.Second
	rewatchMax = 30 * time.Second
)

// watch feeds gateway events into the scorer until ctx ends. If the registry's watch breaks (its
// channel closes early, e.g. the NATS connection was closed), it starts a new one with backoff;
// gateways that left meanwhile go stale and are pruned.
func (s *Server) watch(ctx context.Context) {
	backoff := rewatchMin
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	for ctx.Err() == nil {
		events, err := s.reg.Watch(ctx, registry.RoleGateway)
		if err != nil {
			s.log.Error("watching gateways", "err", err, "retry_in", backoff)
		} else {
			backoff = rewatchMin
			s.consume(ctx, events, prune.C)
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("gateway watch ended; watching again", "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		s.watchRestarts.Add(1)
		backoff = min(backoff*2, rewatchMax)
	}
}

func (s *Server) consume(ctx context.Context, events <-chan registry.Event, prune <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-prune:
			if n := s.scorer.Prune(now.Add(-max(pruneAfter, 10*s.cfg.StaleAfter))); n > 0 {
				s.log.Warn("pruned gateways that stopped reporting without leaving", "count", n)
			}
		case ev, ok := <-events:
			if !ok {
				return
			}
			switch ev.Type {
			case registry.EventPut:
				// Samples are stamped with our clock, not the gateway's, so clock skew between
				// machines cannot make a live gateway look stale.
				s.scorer.Observe(ev.Node, time.Now())
			case registry.EventDelete:
				s.scorer.Remove(ev.Node.ID)
			}
		}
	}
}
