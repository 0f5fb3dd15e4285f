package gateway

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/internal/batch"
	"github.com/platoim/plato/internal/colocal"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	stateservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/state"
)

// stateLink forwards device events to one state server in ordered micro-batches.
type stateLink struct {
	id    string
	cli   stateservice.Client
	batch *batch.Batcher[*fleet.UpEvent]
	// gone is closed when the link leaves the table (stop); lost is set while the state server does
	// not answer its pings (failover.go), and boot is its last answer.
	gone     chan struct{}
	stopOnce sync.Once
	lost     atomic.Bool
	boot     atomic.Pointer[string]
	// dctx is the batcher's context detached for the Deliver calls (pushpool.go).
	dctx dctxCache
}

// bootOf is the state server's last boot, "" before its first ping.
func (l *stateLink) bootOf() string {
	if b := l.boot.Load(); b != nil {
		return *b
	}
	return ""
}

func (l *stateLink) stop() { l.stopOnce.Do(func() { close(l.gone) }) }

// newStateLinks follows the live state servers in the registry. The gateway picks one per did
// (pick), so a device that reconnects lands on the state server that knew it.
func newStateLinks(gw *Gateway) *registry.Table[*stateLink] {
	return registry.NewTable(registry.TableConfig[*stateLink]{
		Role: registry.RoleState, Dial: gw.newStateLink, Log: gw.log,
		Drop:    func(l *stateLink, _ string, _ bool) { gw.dropLink(l) },
		Changed: gw.noteServable,
	})
}

// pick chooses the state server for did by rendezvous hashing, or nil when none is live.
func pick(links []*stateLink, did string) *stateLink {
	var best *stateLink
	var bestScore uint64
	for _, l := range links {
		if l.lost.Load() {
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(l.id))
		h.Write([]byte{0})
		h.Write([]byte(did))
		if sc := mix64(h.Sum64()); best == nil || sc > bestScore {
			best, bestScore = l, sc
		}
	}
	return best
}

// servable reports whether some state server takes this gateway's logins (pick finds one).
func (gw *Gateway) servable() bool {
	for _, l := range gw.links.List() {
		if !l.lost.Load() {
			return true
		}
	}
	return false
}

// servability tells the registry refresh when the gateway starts or stops taking logins. Its
// registry entry carries its endpoints only while it does (loadNode), and ipconf hands out, and
// a migration moves devices to, only a gateway whose entry does: a report interval late, a
// gateway just started or just linked again looks unavailable for that long, and one that lost
// every state server is still handed out.
type servability struct {
	nudge chan struct{} // capacity 1: registry.KeepNudged's
	// mu makes looking and noting one step: the registry watch and the failover pings note
	// changes from two goroutines, and a stale note would miss the next change.
	mu  sync.Mutex
	was bool
}

// noteServable nudges the registry refresh when servable changed since it was last noted: a state
// server joined or left the table, or was lost or answers again (failover.go).
func (gw *Gateway) noteServable() {
	sv := &gw.servability
	sv.mu.Lock()
	now := gw.servable()
	changed := now != sv.was
	sv.was = now
	sv.mu.Unlock()
	if !changed {
		return
	}
	select {
	case gw.servability.nudge <- struct{}{}:
	default: // one is pending: the refresh it makes reads the state then
	}
}

// StateServers lists, in no particular order, the IDs of the live state servers this gateway
// forwards devices to, as it last saw the registry. While it lists none, every Login is refused
// (LoginAck 1210).
func (gw *Gateway) StateServers() []string { return gw.links.IDs() }

func (gw *Gateway) newStateLink(n registry.Node) (*stateLink, error) {
	cli, err := stateservice.NewClient("plato-state", append(rpc.Client(n.RPCAddr, gw.cfg.RPCTimeout), gw.stateCalls.Option())...)
	if err != nil {
		return nil, fmt.Errorf("creating state client for %s: %w", n.RPCAddr, err)
	}
	cli = gw.cfg.Local.StateClient(n, cli, colocal.Options{Timeout: gw.cfg.RPCTimeout, Latency: gw.stateCalls})
	l := &stateLink{id: n.ID, cli: cli, gone: make(chan struct{})}
	l.batch = batch.New(batch.Config{
		MaxSize: gw.cfg.Batch.MaxSize, MaxDelay: gw.cfg.Batch.MaxDelay, Lanes: gw.cfg.Batch.Lanes,
		MergeWait: gw.cfg.Batch.MergeWait,
	}, func(ctx context.Context, events []*fleet.UpEvent) { gw.deliver(ctx, l, events) })
	go gw.watchState(l)
	return l, nil
}

// deliver sends one batch, retrying a few times while the state server is not known lost: the
// lane is blocked meanwhile, which keeps each connection's events in order. Events a lost state
// server never took are dropped, but for the CLOSED ones: the business must hear of those.
func (gw *Gateway) deliver(ctx context.Context, l *stateLink, events []*fleet.UpEvent) {
	// The request and, once the state server took them, the events are reused (pushpool.go):
	// nothing keeps them once the call has returned.
	req := gw.deliverRequest()
	req.GatewayId, req.Events, req.Proof, req.Boot, req.AcksInReply = gw.cfg.ID, events, gw.proof, l.bootOf(), true
	defer gw.freeDeliverRequest(req)
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		// Detached: a cancellable context would run the call on a Kitex pool goroutine; the
		// client's call timeout bounds it (internal/rpc/bound.go).
		resp, err := l.cli.Deliver(l.detached(ctx), req)
		if err == nil {
			if resp.Restarted {
				// Another run of the state server than these events were for: watchState moves the
				// connections to it; what was in these events is gone with the old run.
				gw.rerouteClosed(events)
			} else {
				gw.freeEvents(events)
			}
			if len(resp.Acks) > 0 {
				gw.writeReplyAcks(ctx, l, resp.Acks)
			}
			return
		}
		gw.metrics.stateErrors[rpc.KindOf(err)].Add(1)
		if rpc.Refused(err) {
			gw.stateLost(l, "nothing listens at its address any more")
		}
		if l.lost.Load() {
			// Expected: its connections moved, their uplinks in these events were answered 1210.
			gw.log.Warn("events for a lost state server dropped", "state", l.id, "events", len(events))
			gw.metrics.deliverErrors.Add(1)
			gw.rerouteClosed(events)
			return
		}
		if ctx.Err() != nil || attempt >= 5 {
			gw.log.Error("dropping events for an unreachable state server", "state", l.id, "events", len(events), "err", err)
			gw.metrics.deliverErrors.Add(1)
			gw.rerouteClosed(events)
			return
		}
		gw.log.Warn("delivering to state server failed; retrying", "state", l.id, "attempt", attempt, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-l.gone:
			t.Stop()
		}
		backoff *= 2
	}
}

// dropLink moves the connections of a state server that left the registry (it shut down, or its
// entry expired) to the others; its link stops.
func (gw *Gateway) dropLink(l *stateLink) {
	if !l.lost.Swap(true) {
		gw.moveConns(l)
	}
	l.stop()
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
