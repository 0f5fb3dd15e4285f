package gatewaytest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/internal/colocal"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/peerauth"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc"
	gwservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/gateway"
	"github.com/platoim/plato/internal/testkit"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/token"
)

// ID is the gateway's ID, and TokenSecret the secret its device tokens are signed with.
const (
	ID          = "gw-test"
	TokenSecret = "gateway-test-secret-0123456789"
)

// Options configure a Harness. The zero value starts a gateway with the default configuration
// (config.Default), its listeners on free loopback ports, that receives broadcasts over NATS.
type Options struct {
	// NoNATS starts the gateway without a NATS connection, so it receives no broadcasts
	// (Harness.Publish still publishes them). The registry uses NATS either way.
	NoNATS bool
	// Configure, when set, changes the gateway's configuration after the harness has filled it in
	// (ID, loopback addresses, a short report interval, NATS) and before New. Setting Secret makes
	// the gateway check the harness's Push and Sessions calls, which carry the proof of StateID.
	Configure func(*gateway.Config)
	// BeforeStart, when set, runs between gateway.New and Start: the moment to install test hooks
	// a gateway takes only before it serves.
	BeforeStart func(*gateway.Gateway)
	// Apps are the apps the gateway serves. Default: Apps, with the default limits.
	Apps map[string]config.App
	// Local, when set, links the gateway and the fake state server in-process through it, as
	// `plato up` does (internal/colocal): the gateway's Deliver calls reach State directly, and
	// Local.GatewayClient reaches the gateway's Push without Kitex.
	Local *colocal.Dir
}

// Apps are the app IDs a harness gateway serves by default.
var Apps = []string{"a", "b", "app", "demo"}

// DefaultApps is the configuration of Apps.
func DefaultApps() map[string]config.App {
	out := map[string]config.App{}
	for _, id := range Apps {
		out[id] = config.SimpleApp("gatewaytest-key-of-"+id, "gatewaytest-jwt-secret-of-32-bytes", "")
	}
	return out
}

// Harness is one running gateway and the fakes around it. Its fields are set by New and never
// change.
type Harness struct {
	// Gateway is the gateway under test, started. The harness shuts it down when the test ends; a
	// test may do it earlier (Shutdown is idempotent).
	Gateway *gateway.Gateway
	// State is the fake state server, the only one in the registry: the gateway forwards every
	// device to it.
	State *State
	// Tokens signs the device tokens the gateway accepts (secret TokenSecret).
	Tokens *token.Signer
	// NATSURL is where the embedded NATS server listens.
	NATSURL string
	// Registry is the registry the gateway and the fake state server are in: a test may register
	// other nodes (another gateway to move devices to).
	Registry registry.Registry

	t     testing.TB
	rpc   gwservice.Client
	proof string // peerauth.Proof of StateID with the gateway's Secret
	pub   *nats.Conn
}

// New starts NATS, the fake state server and a gateway, and returns once the gateway sees the
// state server in the registry. Everything stops when the test ends.
func New(t testing.TB, opts Options) *Harness {
	t.Helper()
	log := testkit.Logger(t)
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()

	b := startBus(ctx, t, log)
	state := startState(ctx, t, b.reg)
	if opts.Local != nil {
		e := opts.Local.ServeState(StateID, state.Addr, state)
		t.Cleanup(func() { e.Stop(poll.Timeout) })
	}
	tokens, err := token.NewSigner([]byte(TokenSecret), time.Hour)
	if err != nil {
		t.Fatalf("creating the token signer: %v", err)
	}

	gc := config.Default().Gateway
	gc.ID, gc.Addr, gc.WSAddr, gc.RPCAddr = ID, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	// Short, so that a test of the load report need not wait the default second.
	gc.ReportInterval = 200 * time.Millisecond
	declared := opts.Apps
	if declared == nil {
		declared = DefaultApps()
	}
	table, err := apps.New(declared, apps.Options{})
	if err != nil {
		t.Fatalf("the harness's apps: %v", err)
	}
	cfg := gateway.Config{Gateway: gc, RPCTimeout: 5 * time.Second, Apps: table, Local: opts.Local}
	if !opts.NoNATS {
		cfg.NATS = b.nc
	}
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	gw, err := gateway.New(cfg, b.reg, tokens, log)
	if err != nil {
		t.Fatalf("creating the gateway: %v", err)
	}
	if opts.BeforeStart != nil {
		opts.BeforeStart(gw)
	}
	if err := gw.Start(context.Background()); err != nil {
		t.Fatalf("starting the gateway: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
		defer cancel()
		_ = gw.Shutdown(ctx)
	})
	// The state server registered before the gateway started: the gateway starts knowing it
	// (registry.Follow), rather than refusing its first logins with 1210.
	if len(gw.StateServers()) == 0 {
		t.Fatal("the gateway started without knowing the state server registered before it")
	}

	cli, err := gwservice.NewClient("plato-gateway", rpc.Client(gw.RPCAddr(), 5*time.Second)...)
	if err != nil {
		t.Fatalf("creating the gateway client: %v", err)
	}
	return &Harness{
		Gateway: gw, State: state, Tokens: tokens, NATSURL: b.url, Registry: b.reg,
		t: t, rpc: cli, proof: peerauth.Proof(cfg.Secret, peerauth.State, StateID), pub: b.pub,
	}
}

// Addr is where devices connect to the gateway.
func (h *Harness) Addr() string { return h.Gateway.Addr() }

// WSURL is where WebSocket devices connect to the gateway.
func (h *Harness) WSURL() string { return h.Gateway.WSEndpoint() }
