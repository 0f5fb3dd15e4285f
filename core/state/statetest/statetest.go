// Package statetest starts a real state server for tests, in the manner of Caddy's caddytest:
// the server runs as in production, on a free loopback port, with its own embedded NATS for the
// registry and broadcasts. Around it, a fake gateway (registered in the registry, answering the
// state server's Push and Sessions calls) records every frame meant for devices and delivers
// device events with the gateway's proof, and a fake business server records what the state
// server delivers and answers uplinks. Everything stops when the test ends.
//
// A test drives the state server from both sides: devices through Harness.Gateway, business calls
// through Harness.Client (the business SDK's client).
//
//	h := statetest.Start(t, statetest.Options{})
//	d := h.Gateway.Connect(statetest.App, "phone", "alice")
//	if ack := d.Login(t); ack.Code != 0 { ... }
//	res, err := h.Client(t, statetest.App).Push(ctx, business.Push{DIDs: []string{"phone"}, Payload: p})
//	f, dl := d.NextDownlink(t) // f.Seq is the downlink's seq, dl.MsgID == res.MsgID
package statetest

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/platoim/plato/core/state"
	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/natsd"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/testkit"
	"github.com/platoim/plato/sdk/business"
	"github.com/platoim/plato/sdk/poll"
)

const (
	// App is the app ID the state server holds a key for when Options.Apps is empty.
	App = "app"
	// Secret is auth.token_secret of the harness: the fake gateway proves its Deliver calls with
	// it, and checks the state server's proof on Push and Sessions with it.
	Secret = "statetest-secret-0123456789"
	// GatewayID is the fake gateway's registry ID.
	GatewayID = "statetest-gw"
	// StateID is the state server's registry ID, unless Options.Configure changes it.
	StateID = "statetest-state"
	// wait bounds every call and wait of the harness: tests run under -race on busy machines.
	wait = poll.Timeout
)

// KeyOf is the business key the state server holds for app, one of Options.Apps.
func KeyOf(app string) string { return "statetest-key-of-" + app }

// Options configure Start. The zero Options start a state server for App, with a fake business
// server accepting every uplink, no pipeline, and logs discarded.
type Options struct {
	// Apps are the app IDs with a business key (KeyOf); the fake business server serves them all.
	// Empty: App alone.
	Apps []string
	// Configure, when set, adjusts the state server's configuration last, after Start filled in
	// Plato's defaults, a free loopback address, the keys of Apps, Secret, the embedded NATS and
	// the fake business server as every app's.
	Configure func(*state.Config)
	// Pipeline, when set, runs every signal before the state server's own handling
	// (state.Server.UsePipeline). Nil: none.
	Pipeline state.Pipeline
	// NoBusiness starts no fake business server: uplinks are then answered 1304 and
	// Harness.Business is nil.
	NoBusiness bool
	// Log receives every log of the harness. Nil: the test log when PLATO_TEST_LOG is set,
	// nowhere otherwise.
	Log *slog.Logger
}

// Harness is a running state server and what surrounds it. Its fields are set by Start; do not
// change them.
type Harness struct {
	// Addr is the state server's RPC address: the State service for gateways and Plato's RPC for
	// business servers.
	Addr string
	// State is the running state server.
	State *state.Server
	// Gateway is the fake gateway the state server pushes to.
	Gateway *Gateway
	// Business is the fake business server of every app; nil with Options.NoBusiness.
	Business *Business
	// NATSURL is the embedded NATS: subscribe to internal/fanout.Subject to see broadcasts.
	NATSURL string
	// Registry is the registry the state server follows; put a node there to make it appear.
	Registry registry.Registry
}

// Business is internal/testkit's fake business server: a real Kitex Business service that records
// every event the state server delivers, in order, and answers uplinks as SetUplink says
// (accepting all until then). It serves every app.
type Business = testkit.Business

// Start starts NATS, the fake business server, the fake gateway and the state server, and
// returns once the state server listens and knows the gateway. It fails the test on error, and
// stops everything when the test ends (the state server first, so it can flush to the others).
func Start(t testing.TB, opts Options) *Harness {
	t.Helper()
	testkit.QuietKitex()
	log := opts.Log
	if log == nil {
		log = testkit.Logger(t)
	}
	appIDs := opts.Apps
	if len(appIDs) == 0 {
		appIDs = []string{App}
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	ns, err := natsd.Start(ctx, natsd.Config{StoreDir: t.TempDir(), ServerName: "statetest"}, log)
	if err != nil {
		t.Fatalf("statetest: starting nats: %v", err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, js, err := registry.Connect(ctx, ns.ClientURL(), "statetest", log)
	if err != nil {
		t.Fatalf("statetest: %v", err)
	}
	t.Cleanup(nc.Close)
	// Entries outlive any test: the fake gateway refreshes its own anyway.
	reg, err := registry.NewNATS(ctx, js, registry.NATSConfig{Bucket: config.DefaultRegistryBucket, TTL: time.Minute, Log: log})
	if err != nil {
		t.Fatalf("statetest: %v", err)
	}
	t.Cleanup(reg.Close)
	h := &Harness{NATSURL: ns.ClientURL(), Registry: reg}
	stops := &stoppers{}
	t.Cleanup(stops.stop)
	if !opts.NoBusiness {
		b, stop := testkit.ServeBusiness(t)
		stops.add(stop)
		h.Business = b
	}
	h.Gateway = startGateway(t, reg, log, stops)

	cfg := stateConfig(t, appIDs, nc, h.Business)
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	s, err := state.New(cfg, reg, log)
	if err != nil {
		t.Fatalf("statetest: %v", err)
	}
	if opts.Pipeline != nil {
		s.UsePipeline(opts.Pipeline)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("statetest: starting the state server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	h.State, h.Addr = s, s.Addr()
	h.Gateway.connectState(t, h.Addr)
	poll.Until(t, "the state server to know the fake gateway", func() bool {
		return slices.Contains(s.Gateways(), h.Gateway.ID)
	})
	return h
}

func stateConfig(t testing.TB, ids []string, nc *nats.Conn, biz *Business) state.Config {
	t.Helper()
	cfg := state.Config{State: config.Default().State, NATS: nc, GatewaySecret: []byte(Secret)}
	cfg.ID = StateID
	cfg.Addr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	declared := map[string]config.App{}
	for _, app := range ids {
		addr := ""
		if biz != nil {
			addr = biz.Addr
		}
		declared[app] = config.SimpleApp(KeyOf(app), JWTSecret, addr)
	}
	table, err := apps.New(declared, apps.Options{})
	if err != nil {
		t.Fatalf("statetest: apps: %v", err)
	}
	cfg.Apps = table
	return cfg
}

// JWTSecret signs the test apps' device credentials (kid "dev").
const JWTSecret = "statetest-jwt-secret-of-32-bytes!!"

// Client returns a business SDK client of the state server for app (one of Options.Apps, or
// any app to test refusals), closed when the test ends.
func (h *Harness) Client(t testing.TB, app string) *business.Client {
	t.Helper()
	c, err := business.NewClient(business.ClientConfig{Addr: h.Addr, AppID: app, Key: KeyOf(app), Timeout: wait})
	if err != nil {
		t.Fatalf("statetest: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// stoppers stops the fake servers together: a Kitex server takes a while to stop, and the
// fakes need not wait for each other.
type stoppers struct{ fs []func() }

func (s *stoppers) add(f func()) { s.fs = append(s.fs, f) }

func (s *stoppers) stop() {
	var wg sync.WaitGroup
	for _, f := range s.fs {
		wg.Go(f)
	}
	wg.Wait()
}
