package appstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/natsd/natsdtest"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/testkit"
	"github.com/platoim/plato/sdk/poll"
)

const jwtSecret = "an-appstore-test-jwt-secret-32-bytes"

func appText(key string) []byte {
	return []byte("keys: {dev: " + key + "}\nauth: {jwt: {secrets: {dev: " + jwtSecret + "}}}\n")
}

// within is a generous bound for what happens within a NATS round trip on an idle machine.
const within = 20 * time.Second

// TestFollowerThroughChangesAndARestartOfNATS stores apps, follows them into a Table, changes
// and deletes them, writes a value the roles refuse behind the CLI's back, restarts NATS (the
// bucket is on disk and survives), then deletes the bucket by hand.
func TestFollowerThroughChangesAndARestartOfNATS(t *testing.T) {
	log := testkit.Logger(t)
	node := natsdtest.Standalone(t, log)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nc, js, err := registry.Connect(ctx, node.URL(), "appstore-test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cfg := Config{Bucket: "test_apps"}
	store, err := Open(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, "early", appText("early-key-of-16-bytes")); err != nil {
		t.Fatal(err)
	}
	// What the roles would refuse is refused, naming the key, and nothing is stored.
	if _, err := store.Put(ctx, "bad", []byte("keys: {dev: short}\nauth: {callback: true}")); err == nil ||
		!strings.Contains(err.Error(), "apps.bad.keys.dev") || !strings.Contains(err.Error(), "apps.bad.auth.callback") {
		t.Errorf("a bad app: %v", err)
	}
	if _, err := store.Get(ctx, "bad"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the refused app was stored: %v", err)
	}

	table, err := apps.New(map[string]config.App{"file": config.SimpleApp("file-key-of-16-bytes", jwtSecret, "")}, apps.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := NewFollower(js, cfg, table, log)
	fctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); f.Run(fctx) }()
	defer func() { stop(); <-done }()
	select {
	case <-f.Loaded():
	case <-time.After(within):
		t.Fatal("the bucket was not read")
	}
	if table.Get("early") == nil || table.Get("file") == nil {
		t.Fatalf("after the first read: %v", table.IDs())
	}
	key := func(id, k string) func() bool {
		return func() bool { a := table.Get(id); return a != nil && a.CheckKey(k) }
	}

	// A new app, a changed one, one over the file's.
	for id, k := range map[string]string{"news": "news-key-of-16-bytes", "early": "early-key2-of-16-bytes", "file": "file-live-key-of-16"} {
		if _, err := store.Put(ctx, id, appText(k)); err != nil {
			t.Fatal(err)
		}
		poll.Within(t, within, id+" set", key(id, k))
	}
	// A value written behind the CLI's back that no role can use: logged, skipped; the app
	// keeps its last good settings and the others carry on.
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "news", []byte("keys: {dev: short}")); err != nil {
		t.Fatal(err)
	}
	poll.Within(t, within, "the bad value counted", func() bool { return f.Stats().Refused >= 1 })
	if !key("news", "news-key-of-16-bytes")() {
		t.Fatal("a bad value changed the app")
	}
	if _, err := store.Put(ctx, "later", appText("later-key-of-16-bytes")); err != nil {
		t.Fatal(err)
	}
	poll.Within(t, within, "an app set after the bad value", key("later", "later-key-of-16-bytes"))
	entries, err := store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.ID)
	}
	if got := strings.Join(ids, ","); got != "early,file,later,news" {
		t.Errorf("List: %s", got)
	}

	// Delete: the file's app comes back under its ID, a live-only app goes.
	if err := store.Delete(ctx, "file"); err != nil {
		t.Fatal(err)
	}
	poll.Within(t, within, "the file's app back", key("file", "file-key-of-16-bytes"))
	if err := store.Delete(ctx, "later"); err != nil {
		t.Fatal(err)
	}
	poll.Within(t, within, "later gone", func() bool { return table.Get("later") == nil })
	if err := store.Delete(ctx, "later"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting twice: %v", err)
	}

	// NATS goes away: the apps stay as they were.
	node.Stop()
	poll.Within(t, within, "the follower to notice", func() bool { return !f.Stats().Up })
	if !key("early", "early-key2-of-16-bytes")() || table.Get("news") == nil {
		t.Fatal("the apps changed while NATS was away")
	}
	reads := f.Stats().Reads
	node.Start()
	poll.Within(t, within, "the follower back", func() bool { return f.Stats().Up && f.Stats().Reads > reads })
	// The watch resumed: a change after the restart arrives.
	if _, err := store.Put(ctx, "after", appText("after-key-of-16-bytes")); err != nil {
		t.Fatal(err)
	}
	poll.Within(t, within, "an app set after the restart", key("after", "after-key-of-16-bytes"))
	if !key("early", "early-key2-of-16-bytes")() {
		t.Fatal("an app stored before the restart was lost")
	}

	// The bucket deleted by hand: created again, empty; the live apps are what it holds.
	if err := js.DeleteKeyValue(ctx, cfg.Bucket); err != nil {
		t.Fatal(err)
	}
	poll.Within(t, within, "the bucket created again and read", func() bool {
		_, err := js.KeyValue(ctx, cfg.Bucket)
		return err == nil && table.Get("early") == nil && table.Get("file") != nil
	})
	if _, err := js.KeyValue(ctx, cfg.Bucket); errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatal("the bucket was not created again")
	}
}
