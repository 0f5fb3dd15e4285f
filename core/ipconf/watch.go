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

// watch feeds gateway events into the scorer until ctx ends. The registry's watch rides out NATS
// outages by itself (it says when its view is stale and when it is current again); should it end
// early all the same (the NATS connection was closed for good), a new one is started with
// backoff, and gateways that left meanwhile go stale and are pruned.
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
		backoff = min(backoff*2, rewatchMax)
	}
}

func (s *Server) consume(ctx context.Context, events <-chan registry.Event, prune <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-prune:
			if s.staleSince.Load() != 0 {
				continue // nobody has reported: the registry has been away
			}
			if n := s.scorer.Prune(now.Add(-max(pruneAfter, 10*s.cfg.StaleAfter))); n > 0 {
				s.log.Warn("pruned gateways that stopped reporting without leaving", "count", n)
			}
		case ev, ok := <-events:
			if !ok {
				return
			}
			// While the view is stale, and until it is current again, gateways are ranked at when
			// the registry was last heard from: one gateway registering again must not make all
			// the others, not re-registered yet, look gone (ipconf would then answer 503).
			if ev.Type != registry.EventStale && (s.staleSince.Load() == 0 || ev.Type == registry.EventFresh) {
				s.heardAt.Store(time.Now().UnixNano())
			}
			switch ev.Type {
			case registry.EventPut:
				// Samples are stamped with our clock, not the gateway's, so clock skew between
				// machines cannot make a live gateway look stale.
				s.scorer.Observe(ev.Node, time.Now())
			case registry.EventDelete:
				s.scorer.Remove(ev.Node.ID)
			case registry.EventStale:
				s.heardAt.Store(ev.At.UnixNano())
				s.staleSince.Store(time.Now().UnixNano())
				keep := s.cfg.KeepStale.String()
				if s.cfg.KeepStale < 0 {
					keep = "0: only gateways heard from lately are handed out"
				}
				s.log.Warn("registry unreachable: answering with the gateways live when it was last heard from, marked stale",
					"gateways", s.scorer.Len(), "last_heard", ev.At.Format(time.RFC3339Nano), "keep_for", keep)
			case registry.EventFresh:
				if since := s.staleSince.Swap(0); since != 0 {
					s.log.Info("registry current again: answers are fresh", "stale_for", time.Since(time.Unix(0, since)).Round(time.Millisecond), "gateways", s.scorer.Len())
				}
			}
		}
	}
}
