package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const (
	// watchBuffer is how many events a Watch channel holds before the watcher waits for its reader.
	watchBuffer = 64
	// watchSetupTimeout bounds creating a watcher's consumer on the server.
	watchSetupTimeout = 10 * time.Second
)

// NATS is the Registry over a JetStream key-value bucket. Each node is one key, "<role>.<id>", whose
// value is the Node as JSON. The bucket keeps one revision per key and expires a key that was not
// put again within the TTL; the server then writes a delete marker, so watchers learn that a
// process died without deregistering. It is safe for concurrent use.
type NATS struct {
	kv jetstream.KeyValue
}

var _ Registry = (*NATS)(nil)

// NewNATS creates the bucket, or updates its configuration if it exists, with history 1 and the
// given TTL (> 0): a node must be put again within ttl or it expires. Expiry leaves a delete marker
// (kept for max(ttl, 1s), the server's minimum) that watchers report as EventDelete.
func NewNATS(ctx context.Context, js jetstream.JetStream, bucket string, ttl time.Duration) (*NATS, error) {
	if ttl <= 0 {
		return nil, errors.New("creating registry bucket: ttl must be positive")
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "Plato service registry: live gateways and state servers",
		History:     1,
		TTL:         ttl,
		// Markers are what turn an expiry into an event; without them a dead node would linger in
		// every watcher.
		LimitMarkerTTL: max(ttl, time.Second),
		// The registry is soft state that every live node rewrites each report interval, so
		// there is nothing worth a disk write.
		Storage: jetstream.MemoryStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("creating registry bucket %q: %w", bucket, err)
	}
	return &NATS{kv: kv}, nil
}

// Put registers or refreshes n under its Role and ID.
func (r *NATS) Put(ctx context.Context, n Node) error {
	key, err := nodeKey(n.Role, n.ID)
	if err != nil {
		return fmt.Errorf("putting node: %w", err)
	}
	val, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("encoding node %s: %w", key, err)
	}
	if _, err := r.kv.Put(ctx, key, val); err != nil {
		return fmt.Errorf("putting node %s: %w", key, err)
	}
	return nil
}

// Delete deregisters a node. Deleting an unknown node is not an error.
func (r *NATS) Delete(ctx context.Context, role Role, id string) error {
	key, err := nodeKey(role, id)
	if err != nil {
		return fmt.Errorf("deleting node: %w", err)
	}
	if err := r.kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("deleting node %s: %w", key, err)
	}
	return nil
}

// List returns the live nodes of a role, in key order. Entries that do not decode are skipped.
func (r *NATS) List(ctx context.Context, role Role) ([]Node, error) {
	filter, err := roleFilter(role)
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	// One watcher reads every current value in a single pass, where keys-then-get would cost a
	// round trip per node.
	w, cancel, err := r.openWatcher(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("listing %s nodes: %w", role, err)
	}
	defer stopWatcher(w, cancel)
	var nodes []Node
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("listing %s nodes: %w", role, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("listing %s nodes: watcher closed", role)
			}
			if e == nil { // every current value has been delivered
				return nodes, nil
			}
			if ev, ok := toEvent(e); ok && ev.Type == EventPut {
				nodes = append(nodes, ev.Node)
			}
		}
	}
}

// Watch streams the current nodes of role as EventPut, then every put, delete, purge and TTL
// expiry, until ctx ends or the NATS connection is closed for good; the channel is closed then.
// Entries that do not decode are skipped.
func (r *NATS) Watch(ctx context.Context, role Role) (<-chan Event, error) {
	filter, err := roleFilter(role)
	if err != nil {
		return nil, fmt.Errorf("watching nodes: %w", err)
	}
	w, cancel, err := r.openWatcher(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("watching %s nodes: %w", role, err)
	}
	out := make(chan Event, watchBuffer)
	go forward(ctx, w, cancel, out)
	return out, nil
}

// openWatcher starts a key-value watcher whose lifetime this package controls. nats.go
// unsubscribes a watcher when the context it was created with ends, and if that happens while
// Watch is still setting up it closes the updates channel while sending on it (a data race, at
// worst a panic). So the watcher gets a private context, ended only by stopWatcher or by
// watchSetupTimeout (or ctx's deadline, if sooner) while the consumer is being created; the
// caller's ctx is honoured by our own loops instead.
func (r *NATS) openWatcher(ctx context.Context, filter string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, context.CancelFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	timeout := watchSetupTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	timer := time.AfterFunc(timeout, cancel)
	w, err := r.kv.Watch(wctx, filter, opts...)
	timer.Stop()
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return w, cancel, nil
}

// forward turns watcher entries into Events until ctx ends or the watcher closes.
func forward(ctx context.Context, w jetstream.KeyWatcher, cancel context.CancelFunc, out chan<- Event) {
	defer close(out)
	defer stopWatcher(w, cancel)
	initial := true
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				initial = false
				continue
			}
			ev, ok := toEvent(e)
			// The snapshot may hold delete markers of nodes this watcher never saw; they are noise.
			if !ok || (initial && ev.Type == EventDelete) {
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}
}

// stopWatcher stops w, ends its private context and drains it in the background: the nats
// client may be blocked handing us an entry, and only closes the channel once that delivery
// returns.
func stopWatcher(w jetstream.KeyWatcher, cancel context.CancelFunc) {
	_ = w.Stop() // fails only if already stopped or the connection is closed: both are stopped
	cancel()
	go func() {
		for range w.Updates() {
		}
	}()
}

// toEvent decodes a watcher entry; ok is false for keys or values that are not ours.
func toEvent(e jetstream.KeyValueEntry) (ev Event, ok bool) {
	role, id, err := parseKey(e.Key())
	if err != nil {
		return Event{}, false
	}
	switch e.Operation() {
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		return Event{Type: EventDelete, Node: Node{ID: id, Role: role}}, true
	}
	var n Node
	if err := json.Unmarshal(e.Value(), &n); err != nil {
		return Event{}, false
	}
	// The key is authoritative, so a put and its later delete always name the node alike.
	n.ID, n.Role = id, role
	return Event{Type: EventPut, Node: n}, true
}

// nodeKey is "<role>.<id>" with both parts escaped to NATS key characters.
func nodeKey(role Role, id string) (string, error) {
	if role == "" {
		return "", errors.New("role is empty")
	}
	if id == "" {
		return "", errors.New("node id is empty")
	}
	return escapeKey(string(role)) + "." + escapeKey(id), nil
}

func roleFilter(role Role) (string, error) {
	if role == "" {
		return "", errors.New("role is empty")
	}
	return escapeKey(string(role)) + ".*", nil
}

func parseKey(key string) (Role, string, error) {
	r, i, ok := strings.Cut(key, ".")
	if !ok {
		return "", "", fmt.Errorf("key %q has no role", key)
	}
	role, err := unescapeKey(r)
	if err != nil {
		return "", "", err
	}
	id, err := unescapeKey(i)
	if err != nil {
		return "", "", err
	}
	return Role(role), id, nil
}

// escapeKey maps s onto NATS key characters without collisions: [-/_a-zA-Z0-9] stay as they are,
// every other byte (including '.', which separates key tokens, and '=' itself) becomes "=XX" in
// upper-case hex. The mapping is reversible, so a delete event names the original ID.
func escapeKey(s string) string {
	if !needsEscape(s) {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plainKeyByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0x0f])
	}
	return b.String()
}

func unescapeKey(s string) (string, error) {
	if strings.IndexByte(s, '=') < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("key part %q: truncated escape", s)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("key part %q: bad escape", s)
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	return string(b), nil
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainKeyByte(s[i]) {
			return true
		}
	}
	return false
}

func plainKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '/'
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
