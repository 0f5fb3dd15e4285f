// Package appstore keeps apps in a NATS key-value bucket so that they change without a restart:
// one key per app ID, whose value is the app's settings as YAML (or JSON) text, the body that
// would sit under apps.<id> in the configuration file. `plato apps set|delete` write it (Store);
// every role follows it (Follow) and overlays its apps on the file's in an apps.Table.
//
// The values hold the apps' business keys and credential secrets: whoever can read the bucket can
// act as any app's business server, and whoever can write it can let any device in. The NATS
// account must be kept as private as the configuration file (docs/security.md).
package appstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/registry"
)

// ErrNotFound is what Get and Delete fail with for an app that is not in the bucket.
var ErrNotFound = errors.New("no such app in the apps bucket")

// Config says which bucket.
type Config struct {
	// Bucket is the bucket's name (registry.apps_bucket). Required.
	Bucket string
	// Replicas is how many servers of a NATS cluster keep it: 0 picks 3 in a cluster, 1 on a lone
	// server (registry.replicas, as for the registry's bucket).
	Replicas int
}

// kvConfig is the bucket: on disk, unlike the registry's, since it is the only copy of the apps
// set there; one revision per key, so that an old secret does not linger after a change.
func kvConfig(nc *nats.Conn, c Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:       c.Bucket,
		Description:  "Plato apps that change live: one key per app ID, the value its settings as YAML",
		History:      1,
		MaxValueSize: config.MaxAppText,
		Storage:      jetstream.FileStorage,
		Replicas:     registry.AutoReplicas(nc, c.Replicas),
	}
}

// Store reads and writes the apps bucket.
type Store struct {
	kv jetstream.KeyValue
}

// Open creates the bucket if it is missing (or updates its configuration), waiting for a
// JetStream that is not ready yet as the registry does.
func Open(ctx context.Context, js jetstream.JetStream, c Config) (*Store, error) {
	if c.Bucket == "" {
		return nil, errors.New("opening the apps bucket: no bucket name (registry.apps_bucket is empty)")
	}
	kv, _, err := registry.EnsureBucket(ctx, js, kvConfig(js.Conn(), c))
	if err != nil {
		return nil, fmt.Errorf("opening the apps bucket: %w", err)
	}
	return &Store{kv: kv}, nil
}

// Entry is one app as the bucket holds it.
type Entry struct {
	ID string
	// Text is the value as it was set.
	Text     []byte
	Revision uint64
	Updated  time.Time
}

// Parse reads and checks text as app id's settings exactly as every role will when it arrives:
// parsed and validated like the configuration file's apps.<id>, then compiled by internal/apps.
func Parse(id string, text []byte) (config.App, error) {
	a, err := config.ParseApp(id, text)
	if err != nil {
		return config.App{}, err
	}
	if err := apps.Check(id, a, apps.Options{}); err != nil {
		return config.App{}, err
	}
	return a, nil
}

// Put checks text (Parse) and stores it as app id's settings; what the roles would refuse is
// refused here, with the error naming the key. It returns the new revision.
func (s *Store) Put(ctx context.Context, id string, text []byte) (uint64, error) {
	if _, err := Parse(id, text); err != nil {
		return 0, err
	}
	rev, err := s.kv.Put(ctx, id, text)
	if err != nil {
		return 0, fmt.Errorf("storing app %s: %w", id, err)
	}
	return rev, nil
}

// Get returns app id's entry.
func (s *Store) Get(ctx context.Context, id string) (Entry, error) {
	if !config.ValidAppID(id) {
		return Entry{}, fmt.Errorf("%q is not a valid app ID: up to 64 lower-case letters, digits, '_' and '-'", id)
	}
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Entry{}, fmt.Errorf("app %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("reading app %s: %w", id, err)
	}
	return Entry{ID: id, Text: e.Value(), Revision: e.Revision(), Updated: e.Created()}, nil
}

// Delete removes app id and its history: the roles stop serving it (or serve the file's app of
// that ID again).
func (s *Store) Delete(ctx context.Context, id string) error {
	if _, err := s.Get(ctx, id); err != nil {
		return err
	}
	if err := s.kv.Purge(ctx, id); err != nil {
		return fmt.Errorf("deleting app %s: %w", id, err)
	}
	return nil
}

// List returns every app in the bucket, sorted by ID, with values as they are (even ones the
// roles refuse: Parse says why).
func (s *Store) List(ctx context.Context) ([]Entry, error) {
	// A private context: nats.go must not see it end while it sets the watcher up (see
	// registry.openWatcher); ctx is honoured by the loop.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	w, err := s.kv.WatchAll(wctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("listing the apps: %w", err)
	}
	defer func() {
		_ = w.Stop()
		go func() { // the client may be handing over an entry; it closes the channel after
			for range w.Updates() {
			}
		}()
	}()
	var out []Entry
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("listing the apps: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("listing the apps: the watcher closed")
			}
			if e == nil {
				slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.ID, b.ID) })
				return out, nil
			}
			out = append(out, Entry{ID: e.Key(), Text: e.Value(), Revision: e.Revision(), Updated: e.Created()})
		}
	}
}
