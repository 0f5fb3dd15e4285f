package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrUnavailable is what a put or delete fails with while the NATS connection is down.
var ErrUnavailable = errors.New("registry unavailable: not connected to NATS")

const (
	// watchBuffer is how many events a Watch channel holds before the watcher waits for its reader.
	watchBuffer = 64
	// watchSetupTimeout bounds one attempt at creating a watcher's consumer on the server.
	watchSetupTimeout = 2 * time.Second
)

// NATSConfig configures the registry's bucket.
type NATSConfig struct {
	// Bucket is the key-value bucket's name. Required.
	Bucket string
	// TTL is how long an entry lives without being put again. Required, > 0.
	TTL time.Duration
	// Replicas is how many servers of a NATS cluster keep the bucket: 0 picks 3 when connected
	// to a cluster and 1 to a lone server (ADR 0002). A cluster of fewer than three JetStream
	// servers needs it set.
	Replicas int
	// Log receives the registry's account of outages and recoveries. Nil: slog.Default().
	Log *slog.Logger
}

// NATS is the Registry over a JetStream key-value bucket. Each node is one key, "<role>.<id>", whose
// value is the Node as JSON. The bucket keeps one revision per key and expires a key that was not
// put again within the TTL; the server then writes a delete marker, so watchers learn that a
// process died without deregistering. It is safe for concurrent use.
//
// The bucket is soft state in memory: a NATS server that restarts comes back without it. A
// monitor (registry_nats_monitor.go) notices that and every other outage, re-creates the bucket,
// and tells the watches (registry_nats_watch.go) to start again and Keep to put at once. Close
// stops it.
type NATS struct {
	js  jetstream.JetStream
	nc  *nats.Conn
	kvc jetstream.KeyValueConfig
	ttl time.Duration
	log *slog.Logger

	mu      sync.Mutex
	kv      jetstream.KeyValue
	st      natsState
	watches map[*watch]struct{}

	// kick asks the monitor to check the bucket now (a put or a watch failed).
	kick          chan struct{}
	stopMonitor   context.CancelFunc
	monitorDone   chan struct{}
	bucketCreates atomic.Int64
	watchReopens  atomic.Int64
}

var _ Registry = (*NATS)(nil)

// NewNATS creates the bucket, or updates its configuration if it exists, with history 1 and the
// given TTL: a node must be put again within the TTL or it expires. Expiry leaves a delete marker
// (kept for max(ttl, 1s), the server's minimum) that watchers report as EventDelete. A JetStream
// that is not ready yet (a cluster still electing its leader) is waited for, within ctx and at
// most bucketReadyTimeout. Close the registry when done.
func NewNATS(ctx context.Context, js jetstream.JetStream, cfg NATSConfig) (*NATS, error) {
	if cfg.TTL <= 0 {
		return nil, errors.New("creating registry bucket: ttl must be positive")
	}
	if cfg.Replicas < 0 || cfg.Replicas > 5 {
		return nil, fmt.Errorf("creating registry bucket: replicas %d: must be 0 (automatic) to 5", cfg.Replicas)
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	nc := js.Conn()
	replicas := cfg.Replicas
	if replicas == 0 {
		replicas = 1
		// A cluster loses a node now and then; the registry must outlive that (ADR 0002).
		if nc.ConnectedClusterName() != "" {
			replicas = 3
		}
	}
	r := &NATS{
		js: js, nc: nc, ttl: cfg.TTL, log: log.With("component", "registry", "bucket", cfg.Bucket),
		kvc: jetstream.KeyValueConfig{
			Bucket:      cfg.Bucket,
			Description: "Plato service registry: live gateways and state servers",
			History:     1,
			TTL:         cfg.TTL,
			// Markers are what turn an expiry into an event; without them a dead node would
			// linger in every watcher.
			LimitMarkerTTL: max(cfg.TTL, time.Second),
			// The registry is soft state that every live node rewrites each report interval,
			// so there is nothing worth a disk write. A server that restarts loses it; the
			// monitor re-creates it and the nodes put themselves again.
			Storage:  jetstream.MemoryStorage,
			Replicas: replicas,
		},
		watches: map[*watch]struct{}{},
		kick:    make(chan struct{}, 1),
	}
	kv, created, err := r.createBucket(ctx)
	if err != nil {
		return nil, err
	}
	r.kv = kv
	r.st = natsState{up: true, created: created, reconnects: nc.Stats().Reconnects, changed: make(chan struct{}), reset: make(chan struct{})}
	mctx, cancel := context.WithCancel(context.Background())
	r.stopMonitor, r.monitorDone = cancel, make(chan struct{})
	go r.monitor(mctx)
	return r, nil
}

// bucketReadyTimeout bounds how long NewNATS waits for JetStream to take the bucket.
const bucketReadyTimeout = 30 * time.Second

// createBucket creates or updates the bucket, waiting out a JetStream that is not ready yet, and
// returns it with its stream's creation time.
func (r *NATS) createBucket(ctx context.Context) (jetstream.KeyValue, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, bucketReadyTimeout)
	defer cancel()
	for {
		kv, created, err := r.ensureBucket(ctx)
		if err == nil {
			return kv, created, nil
		}
		if !transient(err) {
			return nil, time.Time{}, err
		}
		select {
		case <-ctx.Done():
			return nil, time.Time{}, fmt.Errorf("%w (waited %v for JetStream)", err, bucketReadyTimeout)
		case <-time.After(checkRetry):
		}
	}
}

// ensureBucket creates the bucket, or updates it to the configuration, once.
func (r *NATS) ensureBucket(ctx context.Context) (jetstream.KeyValue, time.Time, error) {
	return ensureKV(ctx, r.js, r.kvc, "registry bucket")
}

// created is the creation time of the bucket's stream: a bucket re-created by anyone has a new one.
func created(st jetstream.KeyValueStatus) time.Time {
	if s, ok := st.(*jetstream.KeyValueBucketStatus); ok && s.StreamInfo() != nil {
		return s.StreamInfo().Created
	}
	return time.Time{}
}

// transient reports whether err is JetStream not being ready or reachable yet, as opposed to a
// configuration it refuses.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10005: // no suitable peers for placement (cluster peers not all up yet)
			return true
		}
		// 503: JetStream temporarily unavailable (a cluster without a meta leader), insufficient
		// resources (peers not caught up).
		return apiErr.Code == 503
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		// a stream without a leader yet (just created, or electing one) does not answer
		errors.Is(err, jetstream.ErrNoStreamResponse)
}

// Close stops the monitor. Watches end with their own contexts.
func (r *NATS) Close() {
	r.stopMonitor()
	<-r.monitorDone
}

// current is the bucket handle to use.
func (r *NATS) current() jetstream.KeyValue {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.kv
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
	// A put while disconnected would wait in the client's reconnect buffer and be replayed, stale,
	// when NATS is back; Keep puts a fresh one then.
	if !r.nc.IsConnected() {
		return fmt.Errorf("putting node %s: %w", key, ErrUnavailable)
	}
	if _, err := r.current().Put(ctx, key, val); err != nil {
		r.checkSoon()
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
	if !r.nc.IsConnected() {
		return fmt.Errorf("deleting node %s: %w", key, ErrUnavailable)
	}
	if err := r.current().Delete(ctx, key); err != nil {
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
		r.checkSoon()
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
	w, err := r.current().Watch(wctx, filter, opts...)
	timedOut := !timer.Stop()
	if err != nil {
		cancel()
		if timedOut && ctx.Err() == nil {
			// Our timer, not the caller: a server that did not answer in time (transient).
			err = fmt.Errorf("creating the watcher took over %v: %w (%w)", timeout, context.DeadlineExceeded, err)
		}
		return nil, nil, err
	}
	return w, cancel, nil
}

// stopWatcher stops w, ends its private context and drains it, in the background: the nats
// client may be blocked handing us an entry, and only closes the channel once that delivery
// returns; and stopping deletes the watcher's consumer with a request that, while NATS is away,
// waits out its timeout.
func stopWatcher(w jetstream.KeyWatcher, cancel context.CancelFunc) {
	go func() {
		_ = w.Stop() // fails only if already stopped or the connection is closed: both are stopped
		cancel()
	}()
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
