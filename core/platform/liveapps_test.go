package platform_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/internal/appstore"
	"github.com/platoim/plato/internal/natsd/natsdtest"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/testkit"
)

// TestAProcessStartsWithTheLiveApps: apps already in NATS KV are served from the moment a role's
// Start returns, over the file's, and a file reload keeps them over it.
func TestAProcessStartsWithTheLiveApps(t *testing.T) {
	node := natsdtest.Standalone(t, testkit.Logger(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc, js, err := registry.Connect(ctx, node.URL(), "test", testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cfg := platformtest.Config(t)
	cfg.NATS.URL = node.URL()
	store, err := appstore.Open(ctx, js, appstore.Config{Bucket: cfg.Registry.AppsBucket})
	if err != nil {
		t.Fatal(err)
	}
	for id, key := range map[string]string{"live": "live-key-of-16-bytes", "demo": "demo-live-key-16-bytes"} {
		text := fmt.Sprintf("keys: {dev: %s}\nauth: {jwt: {secrets: {dev: %s}}}\n", key, platformtest.JWTSecret)
		if _, err := store.Put(ctx, id, []byte(text)); err != nil {
			t.Fatal(err)
		}
	}
	p := platformtest.Start(t, cfg, platform.RoleIPConf)
	if a := p.Apps.Get("live"); a == nil || !a.CheckKey("live-key-of-16-bytes") {
		t.Fatal("the live app is not served when Start returns")
	}
	if a := p.Apps.Get("demo"); a == nil || !a.CheckKey("demo-live-key-16-bytes") || a.CheckKey(platformtest.KeyOf("demo")) {
		t.Fatal("the live demo does not replace the file's")
	}
	if err := p.Apps.Replace(cfg.Apps, apps.Options{CallbackTimeout: cfg.State.Business.Timeout}); err != nil {
		t.Fatal(err)
	}
	if !p.Apps.Get("demo").CheckKey("demo-live-key-16-bytes") || p.Apps.Get("live") == nil || p.Apps.Get("app-a") == nil {
		t.Fatal("a reload of the file's apps dropped the live ones")
	}
}
