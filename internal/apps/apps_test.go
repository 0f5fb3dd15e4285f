package apps

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/poll"
)

const secret = "an-apps-test-jwt-secret-of-32-bytes"

func TestTableKeysAndLimits(t *testing.T) {
	a := config.SimpleApp("first-key-of-16-bytes", secret, "127.0.0.1:1")
	a.Keys["second"] = "second-key-of-16-bytes"
	table, err := New(map[string]config.App{"chat": a, "game": config.SimpleApp("game-key-of-16-bytes", secret, "")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ids := table.IDs(); !slices.Equal(ids, []string{"chat", "game"}) {
		t.Fatalf("IDs %v", ids)
	}
	chat := table.Get("chat")
	for key, want := range map[string]bool{
		"first-key-of-16-bytes": true, "second-key-of-16-bytes": true, "game-key-of-16-bytes": false,
		"": false, "first-key-of-16-byte": false, "first-key-of-16-bytes!": false,
	} {
		if got := chat.CheckKey(key); got != want {
			t.Errorf("CheckKey(%q) = %v", key, got)
		}
	}
	if l := chat.Limits; l.DeviceUplinksPerSec != config.DefaultDeviceUplinksPerSec || l.DeviceUplinkBurst != config.DefaultDeviceUplinkBurst {
		t.Errorf("per-device defaults not filled: %+v", l)
	}
	if table.Get("nope") != nil || (&Table{}).Get("chat") != nil {
		t.Error("an app not declared was found")
	}
}

func TestReplaceIsAllOrNothing(t *testing.T) {
	table, err := New(map[string]config.App{"chat": config.SimpleApp("first-key-of-16-bytes", secret, "")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]config.App{
		"game": config.SimpleApp("game-key-of-16-bytes", secret, ""),
		"oops": {Keys: map[string]string{"k": "oops-key-of-16-bytes"}, Auth: config.AppAuth{JWT: config.JWTAuth{PublicKeys: map[string]string{"k": "not a key"}}}},
	}
	err = table.Replace(bad, Options{})
	if err == nil || !strings.Contains(err.Error(), "apps.oops") {
		t.Fatalf("Replace with a bad app: %v", err)
	}
	if table.Get("chat") == nil || table.Get("game") != nil {
		t.Fatal("a failed Replace changed the table")
	}
}

func TestWatchReloadsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plato.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(path+".tmp", []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	app := func(id string) string {
		return "apps: {" + id + ": {keys: {k: " + id + "-key-of-16-bytes}, auth: {jwt: {secrets: {k: " + secret + "}}}}}\n"
	}
	write(app("chat"))
	load := func() (config.Config, error) {
		c, _, err := config.Load(path, []string{"PLATO_AUTH__TOKEN_SECRET=an-apps-test-token-secret"}, nil)
		return c, err
	}
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	table, err := New(cfg.Apps, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		table.Watch(ctx, path, load, Options{}, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(10 * time.Millisecond) // a new modification time, even on a coarse clock
	write(app("game"))
	poll.Until(t, "the new app", func() bool { return table.Get("game") != nil && table.Get("chat") == nil })
	write("apps: {game: {keys: {}}}\n")
	poll.Until(t, "the broken file to be refused", func() bool { _, failed := table.Reloads(); return failed == 1 })
	if table.Get("game") == nil {
		t.Fatal("a refused reload changed the apps")
	}
}
