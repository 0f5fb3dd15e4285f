// Package platformtest starts real Plato roles on free loopback ports for tests, and a real Kitex
// business server that records what Plato delivers to it.
package platformtest

import (
	"context"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/credential"
	"github.com/platoim/plato/internal/testkit"
)

// Apps are the app IDs whose business servers may call Plato's RPC on a test platform (Caller).
var Apps = []string{"demo", "app-a", "app-b", "bench"}

// Secret is the token secret test platforms use.
const Secret = "platformtest-secret-0123456789"

// Config returns a configuration with every listener on a free loopback port, data under a
// per-test directory, and short timeouts that keep tests quick.
func Config(t testing.TB) config.Config {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.NATS.Embedded.Port = 0
	cfg.Auth.TokenSecret = Secret
	cfg.IPConf.Addr = "127.0.0.1:0"
	cfg.Gateway.Addr = "127.0.0.1:0"
	cfg.Gateway.WSAddr = "127.0.0.1:0"
	cfg.State.Addr = "127.0.0.1:0"
	cfg.State.HTTPAddr = "127.0.0.1:0"
	cfg.Demo.Addr = "127.0.0.1:0"
	cfg.Admin.Addr = "127.0.0.1:0"
	cfg.Registry.TTL = 3 * time.Second
	cfg.Gateway.ReportInterval = 200 * time.Millisecond
	cfg.Apps = map[string]config.App{}
	for _, app := range Apps {
		a := config.SimpleApp(KeyOf(app), JWTSecret, "")
		// Tests send bursts far above a person's rate; the limits have tests of their own.
		a.Limits = config.AppLimits{DeviceUplinksPerSec: 1e6, DeviceUplinkBurst: 1e6, DeviceBytesPerSec: 1e9}
		cfg.Apps[app] = a
	}
	return cfg
}

// JWTSecret signs the test apps' device credentials (kid "dev"): Credential makes them.
const JWTSecret = "platformtest-jwt-secret-of-32-bytes"

// Credential is the credential of did (user uid) of app, as the app's backend would issue it:
// what a device presents to ipconf on a test platform.
func Credential(t testing.TB, app, did, uid string) string {
	t.Helper()
	c, err := credential.MintHS256(app, "dev", JWTSecret, did, uid, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// SetBusiness makes addr the business server of every app of cfg.
func SetBusiness(cfg *config.Config, addr string) {
	for id, a := range cfg.Apps {
		a.Business = addr
		cfg.Apps[id] = a
	}
}

// Start runs roles with cfg and stops them when the test ends.
func Start(t testing.TB, cfg config.Config, roles ...string) *platform.Platform {
	t.Helper()
	return StartWith(t, cfg, platform.Options{}, roles...)
}

// StartWith is Start with platform options (builtin stages, a meter).
func StartWith(t testing.TB, cfg config.Config, opts platform.Options, roles ...string) *platform.Platform {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := platform.Start(ctx, cfg, roles, testkit.Logger(t), opts)
	if err != nil {
		cancel()
		t.Fatalf("starting %v: %v", roles, err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer scancel()
		if err := p.Shutdown(sctx); err != nil {
			t.Errorf("shutting down: %v", err)
		}
		cancel()
	})
	return p
}
