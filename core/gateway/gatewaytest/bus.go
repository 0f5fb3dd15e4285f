package gatewaytest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/natsd"
	"github.com/platoim/plato/internal/registry"
)

// bus is the embedded NATS server with what the harness uses of it: the gateway's connection (the
// registry and its broadcast subscription) and a publisher of its own, as a state server has.
type bus struct {
	url string
	nc  *nats.Conn
	reg registry.Registry
	pub *nats.Conn
}

func startBus(ctx context.Context, t testing.TB, log *slog.Logger) *bus {
	t.Helper()
	ns, err := natsd.Start(ctx, natsd.Config{StoreDir: t.TempDir()}, log)
	if err != nil {
		t.Fatalf("starting nats: %v", err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	b := &bus{url: ns.ClientURL()}
	nc, js, err := registry.Connect(ctx, b.url, "gateway-test", log)
	if err != nil {
		t.Fatalf("connecting to nats: %v", err)
	}
	t.Cleanup(nc.Close)
	b.nc = nc
	if b.pub, err = nats.Connect(b.url); err != nil {
		t.Fatalf("connecting the broadcast publisher to nats: %v", err)
	}
	t.Cleanup(b.pub.Close)
	// A TTL longer than any test, so the fake state server need not refresh its entry.
	reg, err := registry.NewNATS(ctx, js, registry.NATSConfig{Bucket: config.DefaultRegistryBucket, TTL: time.Minute, Log: log})
	if err != nil {
		t.Fatalf("opening the registry: %v", err)
	}
	t.Cleanup(reg.Close)
	b.reg = reg
	return b
}
