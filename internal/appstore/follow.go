package appstore

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/registry"
)

// How a Follower looks after its watch.
const (
	// followRetry is the pause before opening the watch again after it was lost.
	followRetry = 500 * time.Millisecond
	// followTick is how often the connection is looked at (a local check, no round trip).
	followTick = 250 * time.Millisecond
	// followCheckEvery is how often the bucket is asked whether it is still the same one, so a
	// bucket deleted by hand (and so created again) is noticed.
	followCheckEvery = 5 * time.Second
	// watchSetupTimeout bounds the creation of the watch's consumer.
	watchSetupTimeout = 2 * time.Second
)

// Follower keeps a Table's live apps in step with the bucket: it reads every app once, then each
// change as it happens, within a NATS round trip. An app whose value the roles cannot use is
// logged and keeps its last good settings (or stays absent); the others are not affected. While
// NATS is away the live apps stay as they were; when it is back the bucket is created again if it
// is gone, read whole again, and what changed meanwhile (deletes included) takes effect.
type Follower struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	kvc   jetstream.KeyValueConfig
	table *apps.Table
	log   *slog.Logger

	loadOnce sync.Once
	loaded   chan struct{}
	down     atomic.Bool
	// created is the bucket's creation time when last opened (only Run's goroutine uses it).
	created time.Time

	applied, refused, reads atomic.Int64
}

// NewFollower returns a Follower of c's bucket into table; Run runs it.
func NewFollower(js jetstream.JetStream, c Config, table *apps.Table, log *slog.Logger) *Follower {
	if log == nil {
		log = slog.Default()
	}
	return &Follower{
		nc: js.Conn(), js: js, kvc: kvConfig(js.Conn(), c), table: table, loaded: make(chan struct{}),
		log: log.With("component", "apps", "bucket", c.Bucket),
	}
}

// Loaded is closed once the bucket has been read whole for the first time.
func (f *Follower) Loaded() <-chan struct{} { return f.loaded }

// Stats are what a Follower did, for metrics.
type Stats struct {
	// Applied counts changes of a live app that took effect (a whole read of the bucket that
	// changed something counts one); Refused the values that could not be used.
	Applied, Refused int64
	// Reads counts whole reads of the bucket: the first, then one after each loss of the watch.
	Reads int64
	// Up is false while the bucket cannot be followed (NATS away): the apps are the last known.
	Up bool
}

// Stats reports what the Follower did.
func (f *Follower) Stats() Stats {
	return Stats{Applied: f.applied.Load(), Refused: f.refused.Load(), Reads: f.reads.Load(), Up: !f.down.Load()}
}

// Run follows the bucket until ctx ends.
func (f *Follower) Run(ctx context.Context) {
	for {
		why := f.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		if !f.down.Swap(true) {
			f.log.Warn("live apps: lost the apps bucket; the apps stay as they are until it is back", "reason", why)
		} else {
			f.log.Debug("live apps: the apps bucket is still away", "reason", why)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(followRetry):
		}
	}
}

// follow opens the watch, applies the bucket's contents, then its changes, until the watch has to
// be opened again; it says why ("" when ctx ended).
func (f *Follower) follow(ctx context.Context) string {
	if !f.nc.IsConnected() {
		return "not connected to NATS (" + f.nc.Status().String() + ")"
	}
	reconnects := f.nc.Stats().Reconnects
	kv, created, err := registry.EnsureBucket(ctx, f.js, f.kvc)
	if err != nil {
		return err.Error()
	}
	if !f.created.IsZero() && !created.Equal(f.created) {
		f.log.Warn("live apps: the apps bucket is a new one (deleted by hand, or NATS lost its storage): the live apps are now what it holds; set them again with plato apps set")
	}
	f.created = created
	// A private context, ended by us alone (see registry.openWatcher for why), bounded while the
	// consumer is created.
	wctx, cancel := context.WithCancel(context.Background())
	timer := time.AfterFunc(watchSetupTimeout, cancel)
	w, err := kv.WatchAll(wctx)
	timer.Stop()
	if err != nil {
		cancel()
		return "watching the bucket: " + err.Error()
	}
	defer func() {
		go func() {
			_ = w.Stop()
			cancel()
		}()
		go func() {
			for range w.Updates() {
			}
		}()
	}()
	tick := time.NewTicker(followTick)
	defer tick.Stop()
	lastCheck := time.Now()
	snap, keep, inSnap := map[string]config.App{}, map[string]bool{}, true
	for {
		select {
		case <-ctx.Done():
			return ""
		case now := <-tick.C:
			if !f.nc.IsConnected() {
				return "disconnected from NATS"
			}
			if f.nc.Stats().Reconnects != reconnects {
				return "the NATS connection came back: reading the bucket again"
			}
			if now.Sub(lastCheck) >= followCheckEvery {
				lastCheck = now
				c, err := registry.BucketCreated(ctx, kv)
				if err != nil {
					return "looking at the bucket: " + err.Error()
				}
				if !c.Equal(created) {
					return "the bucket was deleted and created again: reading it again"
				}
			}
		case e, ok := <-w.Updates():
			if !ok {
				return "the watch was closed by the NATS client"
			}
			if e == nil {
				if inSnap {
					inSnap = false
					f.applyAll(snap, keep)
				}
				continue
			}
			id := e.Key()
			if e.Operation() != jetstream.KeyValuePut {
				if inSnap {
					delete(snap, id)
					delete(keep, id)
					continue
				}
				f.remove(id, e.Revision())
				continue
			}
			a, err := config.ParseApp(id, e.Value())
			if inSnap {
				if err != nil {
					f.refuse(id, e.Revision(), err)
					delete(snap, id)
					keep[id] = true
					continue
				}
				delete(keep, id)
				snap[id] = a
				continue
			}
			if err == nil {
				err = f.table.PutLive(id, a)
			}
			if err != nil {
				f.refuse(id, e.Revision(), err)
				continue
			}
			f.applied.Add(1)
			f.log.Info("live app set", "app", id, "revision", e.Revision())
		}
	}
}

// applyAll makes the bucket's contents, read whole, the live apps.
func (f *Follower) applyAll(snap map[string]config.App, keep map[string]bool) {
	f.reads.Add(1)
	ids := make([]string, 0, len(keep))
	for id := range keep {
		ids = append(ids, id)
	}
	changed, bad := f.table.SetLive(snap, ids)
	for id, err := range bad {
		f.refuse(id, 0, err)
	}
	if changed {
		f.applied.Add(1)
	}
	if f.down.Swap(false) {
		f.log.Info("live apps: the apps bucket is back and was read again", "live_apps", len(snap))
	} else {
		f.log.Info("live apps read", "live_apps", len(snap))
	}
	f.loadOnce.Do(func() { close(f.loaded) })
}

func (f *Follower) remove(id string, rev uint64) {
	ok, err := f.table.DeleteLive(id)
	if err != nil {
		f.refuse(id, rev, err)
		return
	}
	if ok {
		f.applied.Add(1)
		f.log.Info("live app deleted: its devices are refused at their next login", "app", id, "revision", rev)
	}
}

func (f *Follower) refuse(id string, rev uint64, err error) {
	f.refused.Add(1)
	f.log.Error("live apps: a value in the apps bucket cannot be used; that app keeps its last good settings (or stays absent), the others are not affected",
		"app", id, "revision", rev, "err", fmt.Sprint(err))
}
