// Package registry is where Plato's processes find each other: gateways and state servers announce
// themselves and their live load; ipconf, gateways and state servers watch. The implementation is a
// NATS JetStream key-value bucket (registry_nats.go), so a process that dies without deregistering
// disappears once its entry's TTL passes.
package registry

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/platoim/plato/internal/tick"
)

// Role is what a registered process does.
type Role string

const (
	RoleGateway Role = "gateway"
	RoleState   Role = "state"
	// RoleIPConf entries are for the ops console's fleet view only: nothing routes by them.
	RoleIPConf Role = "ipconf"
)

// Load is a gateway's live load, reported every second.
type Load struct {
	// Conns is the number of open device connections.
	Conns int64 `json:"conns"`
	// BytesInPerSec and BytesOutPerSec are device traffic over the last second.
	BytesInPerSec  float64 `json:"bytes_in_ps"`
	BytesOutPerSec float64 `json:"bytes_out_ps"`
	// BandwidthBytesPerSec is the capacity the gateway was configured with; remaining bandwidth is
	// this minus in+out.
	BandwidthBytesPerSec float64 `json:"bandwidth_bps"`
	// Overloaded is set while the gateway refuses logins for overload: ipconf hands it out only
	// when every gateway is.
	Overloaded bool `json:"overloaded,omitempty"`
	// Draining is set while the gateway moves its devices to others (`plato ops drain`, or it is
	// stopping): ipconf never hands it out, and no gateway redirects devices to it.
	Draining bool `json:"draining,omitempty"`
}

// Node is one registered process.
type Node struct {
	ID   string `json:"id"`
	Role Role   `json:"role"`
	// Endpoint is the device-facing "host:port" (gateways), or ipconf's HTTP "host:port".
	Endpoint string `json:"endpoint,omitempty"`
	// WSEndpoint is the device-facing WebSocket URL, "ws://host:port/plato" (gateways with a
	// WebSocket listener only).
	WSEndpoint string `json:"ws_endpoint,omitempty"`
	// RPCNetwork ("tcp" or "unix") and RPCAddr are where its Kitex service listens.
	RPCNetwork string `json:"rpc_network"`
	RPCAddr    string `json:"rpc_addr"`
	// AdminAddr is the "host:port" of the process's admin HTTP server, where the ops API and the
	// ops console answer (empty when admin.addr is off). `plato ops` finds a gateway by ID with
	// it, and the console asks each node for its pipelines and faults there.
	AdminAddr string `json:"admin_addr,omitempty"`
	// Version is the build the process runs (internal/buildinfo), for the fleet view and for
	// spotting a half-finished upgrade.
	Version   string    `json:"version,omitempty"`
	Load      Load      `json:"load"`
	StartedAt time.Time `json:"started_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// EventType says whether a node appeared/changed or went away, or whether the watcher's view
// went stale or became current again.
type EventType int

const (
	EventPut EventType = iota
	EventDelete
	// EventStale says the watch lost the registry (NATS unreachable, the bucket gone, the watch
	// broken): the nodes seen so far are the last known view, and no EventDelete comes until the
	// registry is back. Event.At is when the watch last heard from the registry. Node is empty.
	EventStale
	// EventFresh follows an EventStale once the watch is back and every node of the last known
	// view either registered again or was reported gone (EventDelete): the view is current.
	EventFresh
	// EventSynced comes once, after the EventPut of every node registered when the watch
	// opened: from then on the reader knows the role as the registry does. Only At is set.
	EventSynced
)

// String names the event type in logs.
func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	case EventStale:
		return "stale"
	case EventFresh:
		return "fresh"
	case EventSynced:
		return "synced"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change seen by a watcher. For EventDelete only Node.ID and Node.Role are set; for
// EventStale and EventFresh only At.
type Event struct {
	Type EventType
	Node Node
	At   time.Time
}

// Registry registers this process and watches the others.
type Registry interface {
	// Put registers or refreshes n; an entry not refreshed within the TTL expires.
	Put(ctx context.Context, n Node) error
	// Delete deregisters a node (clean shutdown).
	Delete(ctx context.Context, role Role, id string) error
	// List returns the live nodes of a role.
	List(ctx context.Context, role Role) ([]Node, error)
	// Watch streams the current nodes of a role as EventPut, then every change, until ctx ends;
	// the channel is closed then. When the registry goes away and comes back the watch carries
	// on by itself: EventStale, then (once every node re-registered or was given up on)
	// EventFresh. Watch fails only if the first watch cannot be set up.
	Watch(ctx context.Context, role Role) (<-chan Event, error)
	// Resets returns a channel closed the next time the registry may have lost what was put in
	// it (NATS came back after an outage, the bucket was re-created): Keep puts again at once
	// rather than at its next tick. Call it again for the reset after that. A registry that never
	// loses anything returns nil.
	Resets() <-chan struct{}
}

// Follow watches role and calls put for every node that appears or changes and remove for every
// node that goes away, one call at a time, until ctx ends. It returns once the nodes registered
// when the watch opened were put (EventSynced), or after followSyncWait if the registry is slow to
// list them: a role that starts with the registry's view, rather than an empty one for its first
// moments, does not refuse what it could serve (a gateway answering logins with 1210 because it
// has not heard of the state servers yet). While the registry is unreachable nothing is removed:
// the last known nodes stay (the watch logs the outage, and the process's registry metrics show
// it).
func Follow(ctx context.Context, r Registry, role Role, put func(Node), remove func(id string)) error {
	events, err := r.Watch(ctx, role)
	if err != nil {
		return err
	}
	apply := func(ev Event) bool {
		switch ev.Type {
		case EventPut:
			put(ev.Node)
		case EventDelete:
			remove(ev.Node.ID)
		case EventSynced:
			return true
		}
		return false
	}
	bound := time.NewTimer(followSyncWait)
	defer bound.Stop()
initial:
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return nil // ctx ended
			}
			if apply(ev) {
				break initial
			}
		case <-bound.C:
			break initial // the rest is applied as it comes
		case <-ctx.Done():
			break initial
		}
	}
	go func() {
		for ev := range events {
			apply(ev)
		}
	}()
	return nil
}

// followSyncWait bounds how long Follow waits for the registry's current nodes. Their listing
// takes a NATS round trip or a few; the bound only keeps a starting role from hanging on a
// registry that answers but does not list.
const followSyncWait = 5 * time.Second

// Keep registers the node that node() describes, then registers it again every interval until
// ctx ends, so the entry lives exactly as long as the process keeps it fresh, and at once when the
// registry reset (Registry.Resets: NATS came back after an outage and may have lost the entry). It
// returns the first registration's error; later failures are logged and retried at the next tick
// or reset. Each later put is bounded by the interval (at least putTimeout), so a put stuck on a
// dead connection cannot hold back the next one. The returned channel is closed when the
// refreshing stops.
func Keep(ctx context.Context, r Registry, interval time.Duration, node func() Node, log *slog.Logger) (<-chan struct{}, error) {
	return KeepNudged(ctx, r, interval, node, nil, log)
}

// KeepNudged is Keep that also registers again at once whenever nudge receives: a change the
// others must not learn a report interval late (a gateway that starts or stops taking logins).
func KeepNudged(ctx context.Context, r Registry, interval time.Duration, node func() Node, nudge <-chan struct{}, log *slog.Logger) (<-chan struct{}, error) {
	n := node()
	// Asked before the first put, so that a reset during it is not missed.
	first := r.Resets()
	if err := firstPut(ctx, r, n); err != nil {
		return nil, fmt.Errorf("registering %s %s: %w", n.Role, n.ID, err)
	}
	resets := func() <-chan struct{} {
		if c := first; c != nil {
			first = nil
			return c
		}
		return r.Resets()
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		failing := false
		tick.EveryOrNudged(ctx, interval, resets, nudge, func(time.Time) {
			pctx, cancel := context.WithTimeout(ctx, max(interval, putTimeout))
			err := r.Put(pctx, node())
			cancel()
			switch {
			case err != nil && ctx.Err() == nil:
				// Once per outage, not once a second.
				if !failing {
					log.Warn("refreshing the registry entry failed; retrying every report interval", "err", err)
				}
				failing = true
			case err == nil && failing:
				log.Info("registry entry refreshed again")
				failing = false
			}
		})
	}()
	return stopped, nil
}

// firstPut registers n, waiting out a JetStream that cannot take it yet (a bucket just created on
// a cluster, whose stream has no leader for a moment, answers "no response from stream") for up to
// bucketReadyTimeout, as EnsureBucket does: a process started with its cluster must not fail for
// that. Any other error is returned at once.
func firstPut(ctx context.Context, r Registry, n Node) error {
	deadline := time.Now().Add(bucketReadyTimeout)
	for {
		err := r.Put(ctx, n)
		if err == nil || !transient(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(checkRetry):
		}
	}
}

// putTimeout is the least time Keep gives one put.
const putTimeout = time.Second
