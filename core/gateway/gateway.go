package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/netpoll"

	"github.com/cloudwego/kitex/server"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/metric"

	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/internal/colocal"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/overload"
	"github.com/platoim/plato/internal/peerauth"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	gwservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/gateway"
	"github.com/platoim/plato/internal/taskrun"
	"github.com/platoim/plato/internal/telemetry"
	"github.com/platoim/plato/internal/timewheel"
	"github.com/platoim/plato/sdk/business/pollnet"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

// Config is the gateway section of Plato's configuration plus what the process decides.
type Config struct {
	config.Gateway
	// RPCTimeout bounds each call to a state server.
	RPCTimeout time.Duration
	// Meter receives the gateway's metrics (docs/observability.md); nil records none.
	Meter metric.Meter
	// NATS carries session broadcasts (internal/fanout): the gateway subscribes to fanout.Subject and
	// writes each one to its local members. nil: no broadcasts. The caller owns the connection and
	// closes it after Shutdown.
	NATS *nats.Conn
	// Tracer samples device frames for tracing (docs/observability.md): a sampled frame carries its
	// span's traceparent to the state server, which continues the trace. nil traces nothing.
	Tracer *telemetry.Tracer
	// Apps are the apps served: a login of any other is refused (1105), and each app's limits
	// bound its devices. Required.
	Apps *apps.Table
	// Secret is auth.token_secret: the gateway proves with it that its Deliver calls come from a
	// gateway, and checks that Push and Sessions come from a state server (internal/peerauth). Empty
	// checks nothing, for tests that drive a gateway alone.
	Secret []byte
	// AdminAddr is where this process's admin server answers the ops API, published in the
	// registry for `plato ops` (empty: none).
	AdminAddr string
	// Inherit, set in a process started by an upgrade, makes Start take over the listeners and
	// connections of the old process (handover.go) instead of listening.
	Inherit *Inheritance
	// Local is the process's directory of in-process servers (internal/colocal): this gateway
	// serves the process's state server through it, and calls it through it. Nil: over Kitex only.
	Local *colocal.Dir
}

// Gateway is one running gateway.
type Gateway struct {
	cfg    Config
	reg    registry.Registry
	tokens *token.Signer
	proof  string // peerauth.Proof of this gateway, sent with every Deliver
	// stateAuth checks that Push and Sessions come from a state server; nil without Secret.
	stateAuth *peerauth.Verifier
	log       *slog.Logger
	conns     *table
	links     *registry.Table[*stateLink]
	// peers are the live gateways, this one included: app quotas are shared among them.
	peers *registry.Table[struct{}]
	usage apps.PerApp[appUsage]
	// sessions is the local session index; acks the at-least-once broadcasts whose ACKs are awaited.
	sessions *sessionIndex
	acks     *recentIDs
	// closedIDs are the connections closed lately whose close event is on its way to their state
	// server: a push that finds one gone is not reported gone, so the state server ends it with
	// the close's own code rather than as lost (push.go).
	closedIDs *recentIDs
	wheel     *timewheel.Wheel
	// slow watches the connections that may have too much unsent (slow.go).
	slow    *slowWatch
	writers *taskrun.Runner
	// What pushes and their ACKs reuse (pushpool.go): write queues, connColds, device events and
	// Deliver requests.
	queues                     queueCache
	colds, events, deliverReqs sync.Pool
	// writeBufs are the buffers of the device writes made on the caller's goroutine (writehere.go).
	writeBufs sync.Pool
	metrics   metrics
	// instruments reads metrics for the Meter; unregistered at Shutdown.
	instruments metric.Registration
	nextID      atomic.Uint64
	// upInFlight counts the uplinks forwarded and not answered yet (conn.upPending, all
	// connections); overload sheds load when the gateway is pressed (overload.go).
	upInFlight atomic.Int64
	overload   *overload.Manager
	// onFrame acts on one complete frame: handle, except in tests that need it to fail.
	onFrame func(c *conn, h protocol.Header, body []byte)
	// moves are the migrations and the drain (move.go).
	moves mover

	// sub is the broadcast subscription, set in Start (the metrics read it meanwhile). fanMu is
	// held by the one NATS callback while it fans a message out; fanStopped, set under it at
	// Shutdown, turns later callbacks away.
	sub          atomic.Pointer[nats.Subscription]
	fanMu        sync.Mutex
	fanStopped   bool
	malformedLog logLimiter

	loop      netpoll.EventLoop
	ln        net.Listener
	rpcLn     net.Listener
	rpc       server.Server
	startedAt time.Time
	cancel    context.CancelFunc
	done      sync.WaitGroup
	stopOnce  sync.Once
	lastRates rates
	// reported is closed when the registry entry is no longer refreshed (registry.Keep).
	reported <-chan struct{}
	// servability registers the gateway again at once when it starts or stops taking logins
	// (statelink.go).
	servability servability

	// wsLoop and wsLn serve WebSocket devices (ws.go); nil without gateway.ws_addr.
	wsLoop netpoll.EventLoop
	wsLn   net.Listener
	// ho is the gateway's side of an upgrade (handover.go).
	ho handoverState

	// uplinkLatency and stateCalls are the latency histograms (latency.go, telemetry.go).
	uplinkLatency telemetry.Latency
	stateCalls    *rpc.CallLatency

	// local is this gateway in cfg.Local (nil without one).
	local *colocal.Entry[fleet.Gateway]
}

// New prepares a gateway; Start runs it.
func New(cfg Config, reg registry.Registry, tokens *token.Signer, logger *slog.Logger) (*Gateway, error) {
	if cfg.ID == "" {
		return nil, errors.New("gateway: ID is required")
	}
	if cfg.RPCAddr == "" {
		return nil, errors.New("gateway: RPC address is required")
	}
	if cfg.Apps == nil {
		return nil, errors.New("gateway: the apps are required: a gateway serves only declared apps")
	}
	if cfg.RPCTimeout <= 0 {
		cfg.RPCTimeout = config.DefaultRPCTimeout
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = config.DefaultMaxBody
	}
	if cfg.StatePingInterval <= 0 {
		cfg.StatePingInterval = config.DefaultStatePing
	}
	if cfg.StatePingsLost <= 0 {
		cfg.StatePingsLost = config.DefaultStatePingsLost
	}
	if cfg.WriteQueue <= 0 {
		cfg.WriteQueue = config.DefaultWriteQueue
	}
	if cfg.WriteQueueBytes <= 0 {
		cfg.WriteQueueBytes = config.DefaultWriteQueueBytes
	}
	if cfg.SlowConsumer.MaxUnsentBytes <= 0 {
		cfg.SlowConsumer.MaxUnsentBytes = config.DefaultSlowMaxUnsent
	}
	if cfg.SlowConsumer.MaxStall <= 0 {
		cfg.SlowConsumer.MaxStall = config.DefaultSlowMaxStall
	}
	gw := &Gateway{
		cfg: cfg, reg: reg, tokens: tokens, proof: peerauth.Proof(cfg.Secret, peerauth.Gateway, cfg.ID),
		log:       logger.With("role", "gateway", "gateway", cfg.ID),
		conns:     newTable(),
		sessions:  newSessionIndex(),
		acks:      newRecentIDs(ackWindow, ackMaxIDs),
		closedIDs: newRecentIDs(closedWindow, closedMaxIDs),
		wheel:     timewheel.New(100*time.Millisecond, 1024),
		slow:      newSlowWatch(cfg.SlowConsumer.MaxUnsentBytes, cfg.SlowConsumer.MaxStall),
	}
	// A flush runs on a worker that keeps its stack between flushes (taskrun.Runner), as netpoll's
	// tasks do: one flush per UplinkAck at low rates, each on a fresh gopool goroutine before.
	gw.writeBufs.New = func() any { b := make([]byte, 0, writeBufSize); return &b }
	gw.writers = taskrun.NewRunner(func(r any, stack []byte) {
		gw.log.Error("a device write panicked", "panic", r, "stack", string(stack))
	})
	if len(cfg.Secret) > 0 {
		gw.stateAuth = peerauth.NewVerifier(cfg.Secret, peerauth.State)
	}
	if cfg.MaxUplinksInFlight <= 0 {
		gw.cfg.MaxUplinksInFlight = config.DefaultUplinksInFlight
	}
	gw.servability.nudge = make(chan struct{}, 1)
	gw.links = newStateLinks(gw)
	gw.overload = gw.newOverload()
	gw.peers = registry.NewTable(registry.TableConfig[struct{}]{
		Role: registry.RoleGateway, Dial: func(registry.Node) (struct{}, error) { return struct{}{}, nil },
	})
	gw.onFrame = gw.handle
	gw.ho.retired = make(chan struct{})
	// Connection IDs name connections to the state servers, which keep a dropped one for a Resume:
	// a restarted gateway must not hand out the IDs of its last run. Seconds << 20 leaves a million
	// connections per second of downtime, and stays below 2^53 for clients whose numbers are doubles.
	gw.nextID.Store(uint64(time.Now().Unix()) << 20)
	instruments, err := gw.instrument(cfg.Meter)
	if err != nil {
		return nil, fmt.Errorf("gateway: creating metrics: %w", err)
	}
	gw.instruments = instruments
	return gw, nil
}

// Start listens for devices and for the state server, joins the registry and starts reporting load.
// It returns once both listeners are open.
func (gw *Gateway) Start(ctx context.Context) error {
	if gw.cfg.Inherit != nil {
		return gw.startInherited(ctx)
	}
	ctx, gw.cancel = context.WithCancel(ctx)
	gw.startedAt = time.Now()
	var err error
	if gw.ln, err = pollnet.Listen("tcp", gw.cfg.Addr); err != nil {
		return fmt.Errorf("gateway: listening for devices on %s: %w", gw.cfg.Addr, err)
	}
	if gw.rpcLn, err = listenRPC(gw.cfg.RPCAddr); err != nil {
		gw.ln.Close()
		return fmt.Errorf("gateway: listening for the state server on %s: %w", gw.cfg.RPCAddr, err)
	}
	gw.rpc = gwservice.NewServer(&pushHandler{gw}, rpc.Server(gw.rpcLn)...)
	rpc.Run(&gw.done, gw.rpc, gw.log, "gateway RPC server")
	// Before the registry shows this gateway: a state server of the process calls it here.
	gw.local = gw.cfg.Local.ServeGateway(gw.cfg.ID, gw.RPCAddr(), &pushHandler{gw})
	gw.wheel.Start()
	gw.overload.Start(ctx, gw.cfg.Overload.Interval, &gw.done)
	gw.done.Add(1)
	go func() {
		defer gw.done.Done()
		gw.watchSlow(ctx)
	}()
	if err := gw.links.Follow(ctx, gw.reg); err != nil {
		gw.Shutdown(context.Background())
		return err
	}
	if err := gw.peers.Follow(ctx, gw.reg); err != nil {
		gw.Shutdown(context.Background())
		return err
	}
	if err := gw.subscribeBroadcasts(); err != nil {
		gw.Shutdown(context.Background())
		return err
	}
	gw.loop, err = netpoll.NewEventLoop(gw.onRequest,
		netpoll.WithOnConnect(gw.onConnect),
		netpoll.WithReadTimeout(gw.cfg.ReadTimeout),
		netpoll.WithWriteTimeout(gw.cfg.WriteTimeout),
	)
	if err != nil {
		gw.Shutdown(context.Background())
		return fmt.Errorf("gateway: creating event loop: %w", err)
	}
	gw.done.Add(1)
	go func() {
		defer gw.done.Done()
		if err := gw.loop.Serve(gw.ln); err != nil && !errors.Is(err, net.ErrClosed) {
			gw.log.Error("device listener stopped", "err", err)
		}
	}()
	if err := gw.startWS(); err != nil {
		gw.Shutdown(context.Background())
		return err
	}
	if gw.reported, err = registry.KeepNudged(ctx, gw.reg, gw.cfg.ReportInterval, gw.loadNode, gw.servability.nudge, gw.log); err != nil {
		gw.Shutdown(context.Background())
		return fmt.Errorf("gateway: %w", err)
	}
	gw.log.Info("gateway listening", "devices", gw.Addr(), "websocket", gw.WSEndpoint(), "rpc", gw.cfg.RPCAddr)
	return nil
}

// Addr is the device listen address.
func (gw *Gateway) Addr() string { return gw.ln.Addr().String() }

// RPCAddr is where the state server reaches this gateway.
func (gw *Gateway) RPCAddr() string { return gw.rpcLn.Addr().String() }

// Endpoint is what ipconf hands to devices.
func (gw *Gateway) Endpoint() string {
	if gw.cfg.Advertise != "" {
		return gw.cfg.Advertise
	}
	return gw.Addr()
}

// Shutdown leaves the registry so no new device is sent here, tells every device to reconnect
// elsewhere (Close 1204), and stops. It is safe to call more than once.
func (gw *Gateway) Shutdown(ctx context.Context) error {
	var err error
	gw.stopOnce.Do(func() {
		if gw.cancel != nil {
			gw.cancel()
		}
		gw.moves.stop()
		if gw.reported != nil {
			<-gw.reported // a refresh in flight must not put the entry back after Delete
		}
		// A process that had not taken over from the old one yet leaves its entry to it.
		notOwner := gw.ho.notOwner.Load()
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if !notOwner {
			if derr := gw.reg.Delete(dctx, registry.RoleGateway, gw.cfg.ID); derr != nil {
				gw.log.Warn("leaving the registry failed", "err", derr)
			}
		}
		cancel()
		gw.stopBroadcasts(2 * time.Second)
		gw.conns.each(func(c *conn) { c.closeWith(protocol.CodeShuttingDown, "gateway shutting down") })
		gw.awaitDrain(ctx, drainTimeout)
		if gw.loop != nil {
			err = gw.loop.Shutdown(ctx)
		}
		if gw.ln != nil {
			// Once more after the loop's own Close: a pollnet listener frees its number only then.
			gw.ln.Close()
		}
		gw.stopWS(ctx)
		// Close events of the connections just closed still go out before the links close.
		for _, l := range gw.links.Clear() {
			l.stop()
			_ = l.batch.Close(ctx)
		}
		gw.stopRPC()
		gw.wheel.Stop()
		gw.done.Wait()
		if strings.Contains(gw.cfg.RPCAddr, "/") && !notOwner {
			_ = os.Remove(gw.cfg.RPCAddr)
		}
		_ = gw.instruments.Unregister()
	})
	return err
}

// drainTimeout bounds how long Shutdown waits for devices to be told and closed; netpoll's own
// shutdown would close idle sockets at once, before their Close frame is written.
const drainTimeout = 5 * time.Second

func (gw *Gateway) awaitDrain(ctx context.Context, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for gw.conns.len() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
}

// listenRPC opens a unix socket when addr is a path (co-located roles), TCP otherwise.
func listenRPC(addr string) (net.Listener, error) {
	if strings.Contains(addr, "/") {
		// A socket file left by a process that died is in the way; one still in use is not ours to take.
		if c, err := net.DialTimeout("unix", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by another process", addr)
		}
		_ = os.Remove(addr)
		return net.Listen("unix", addr)
	}
	return net.Listen("tcp", addr)
}
