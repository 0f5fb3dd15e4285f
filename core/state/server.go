package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/kitex/server"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/metric"

	"github.com/platoim/plato/core/state/httpapi"
	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/internal/buildinfo"
	"github.com/platoim/plato/internal/colocal"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/overload"
	"github.com/platoim/plato/internal/peerauth"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	stateservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/state"
	"github.com/platoim/plato/internal/telemetry"
	"github.com/platoim/plato/internal/timewheel"
	apiservice "github.com/platoim/plato/sdk/business/rpc/plato/api/plato"
)

// Config is the state section of Plato's configuration plus what the process decides.
type Config struct {
	config.State
	// MaxBody is the device frame limit, so a push too large for devices is refused up front.
	MaxBody int
	// ReportInterval is how often the state server refreshes its registry entry.
	ReportInterval time.Duration
	// Meter receives the state server's metrics (docs/observability.md); nil records none.
	Meter metric.Meter
	// Tracer starts a trace for the sampled signals; nil traces nothing.
	Tracer *telemetry.Tracer
	// NATS carries session broadcasts to every gateway; nil sends every session push directly.
	NATS *nats.Conn
	// Apps are the apps served: their business servers' keys and addresses, and their limits.
	// Required.
	Apps *apps.Table
	// GatewaySecret is auth.token_secret: Deliver calls must prove with it that they come from a
	// gateway, and the state server proves its calls to gateways with it (internal/peerauth). Empty
	// checks nothing, for tests that run a state server alone.
	GatewaySecret []byte
	// AdminAddr is where this process's admin server answers (the ops console asks it for the
	// pipelines and faults), published in the registry entry; empty: none.
	AdminAddr string
	// Local is the process's directory of in-process servers (internal/colocal): this state server
	// serves gateways of the process through it, and calls them through it. Nil: over Kitex only.
	Local *colocal.Dir
}

// Server is one running state server.
type Server struct {
	cfg      Config
	reg      registry.Registry
	log      *slog.Logger
	conns    *conns
	gateways *registry.Table[*gatewayLink]
	business *businesses
	wheel    *timewheel.Wheel
	metrics  metrics
	// ackLatency and instruments are the OTel side of metrics; instruments is unregistered at
	// Shutdown.
	ackLatency  metric.Float64Histogram
	instruments metric.Registration
	tracer      *telemetry.Tracer
	apiCalls    *rpc.Calls
	pushQuotas  pushQuotas
	perApp      apps.PerApp[appCounters]
	msgID       atomic.Uint64
	boot        string // Ping's answer: another process, another boot
	pipe        Pipeline
	asks        deferredAsks // first retransmit questions not asked yet (retransmitdefer.go)
	// waitTimers are the timers of Deliver calls holding for their answers (ackCollector.wait).
	waitTimers sync.Pool
	overload   *overload.Manager
	sessions   *sessions
	peers      *registry.Table[*peer]
	gwAuth     *peerauth.Verifier // nil: Deliver callers are not checked
	proof      string             // peerauth.Proof of this state server, for gateways
	ln         net.Listener
	rpc        server.Server
	http       *httpapi.Server // nil without state.http_addr
	startedAt  time.Time
	// registered is closed when the registry entry is no longer refreshed (registry.Keep).
	registered <-chan struct{}
	cancel     context.CancelFunc
	done       sync.WaitGroup
	stopOnce   sync.Once

	// gatewayCalls and businessLatency are the latency histograms of the calls to gateways and to
	// business servers (latency.go).
	gatewayCalls    *rpc.CallLatency
	businessLatency telemetry.Latency

	// local is this server in cfg.Local (nil without one).
	local *colocal.Entry[fleet.State]
}

// handler is the Kitex State service.
type handler struct{ s *Server }

// New prepares a state server; Start runs it.
func New(cfg Config, reg registry.Registry, logger *slog.Logger) (*Server, error) {
	if cfg.ID == "" {
		return nil, errors.New("state: ID is required")
	}
	if cfg.Apps == nil {
		return nil, errors.New("state: the apps are required: a state server serves only declared apps")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = config.DefaultMaxBody
	}
	if cfg.ReportInterval <= 0 {
		cfg.ReportInterval = config.DefaultReportInterval
	}
	s := &Server{
		cfg: cfg, reg: reg,
		log:    logger.With("role", "state", "state", cfg.ID),
		conns:  newConns(),
		wheel:  timewheel.New(100*time.Millisecond, 1024),
		tracer: cfg.Tracer, apiCalls: apiCalls(),
	}
	s.gateways = newGateways(s)
	s.business = &businesses{s: s, byApp: map[string]*businessLink{}}
	s.sessions = newSessions()
	s.peers = newPeers(s)
	if len(cfg.GatewaySecret) > 0 {
		s.gwAuth = peerauth.NewVerifier(cfg.GatewaySecret, peerauth.Gateway)
		s.proof = peerauth.Proof(cfg.GatewaySecret, peerauth.State, cfg.ID)
	}
	s.msgID.Store(uint64(time.Now().UnixNano()))
	s.boot = newBoot()
	s.overload = s.newOverload()
	instruments, err := s.instrument(cfg.Meter)
	if err != nil {
		return nil, fmt.Errorf("state: creating metrics: %w", err)
	}
	s.instruments = instruments
	return s, nil
}

func (s *Server) nextMsgID() uint64 { return s.msgID.Add(1) }

// Start listens, watches gateways and joins the registry. It returns once listening.
func (s *Server) Start(ctx context.Context) error {
	ctx, s.cancel = context.WithCancel(ctx)
	s.startedAt = time.Now()
	var err error
	if s.ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
		return fmt.Errorf("state: listening on %s: %w", s.cfg.Addr, err)
	}
	s.rpc = stateservice.NewServer(&handler{s}, append(rpc.Server(s.ln), server.WithMiddleware(s.apiCalls.Middleware))...)
	// Business servers call Plato's RPC on the same address; its methods do not collide with
	// the gateways' Deliver.
	if err := apiservice.RegisterService(s.rpc, &apiHandler{s}); err != nil {
		s.ln.Close()
		return fmt.Errorf("state: registering Plato's RPC: %w", err)
	}
	rpc.Run(&s.done, s.rpc, s.log, "state RPC server")
	// Before the registry shows this server: a gateway of the process that sees it calls it here.
	s.local = s.cfg.Local.ServeState(s.cfg.ID, s.advertise(), &handler{s})
	s.wheel.Start()
	s.overload.Start(ctx, s.cfg.Overload.Interval, &s.done)
	if err := s.gateways.Follow(ctx, s.reg); err != nil {
		s.Shutdown(context.Background())
		return err
	}
	if err := s.peers.Follow(ctx, s.reg); err != nil {
		s.Shutdown(context.Background())
		return err
	}
	if s.registered, err = registry.Keep(ctx, s.reg, s.cfg.ReportInterval, s.node, s.log); err != nil {
		s.Shutdown(context.Background())
		return fmt.Errorf("state: %w", err)
	}
	if err := s.startHTTP(); err != nil {
		s.Shutdown(context.Background())
		return fmt.Errorf("state: %w", err)
	}
	s.log.Info("state server listening", "rpc", s.Addr(), "http", s.HTTPAddr())
	return nil
}

// Addr is the RPC listen address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

func (s *Server) advertise() string {
	if s.cfg.Advertise != "" {
		return s.cfg.Advertise
	}
	return s.Addr()
}

// node is the state server's registry entry; registry.Keep refreshes it every ReportInterval.
func (s *Server) node() registry.Node {
	return registry.Node{
		ID: s.cfg.ID, Role: registry.RoleState, RPCNetwork: "tcp", RPCAddr: s.advertise(),
		AdminAddr: s.cfg.AdminAddr, Version: buildinfo.Get().Short(),
		Load:      registry.Load{Conns: int64(s.conns.len())},
		StartedAt: s.startedAt, UpdatedAt: time.Now(),
	}
}

// Shutdown leaves the registry, flushes what is queued for gateways and business servers, and stops.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		if s.registered != nil {
			<-s.registered // a refresh in flight must not put the entry back after Delete
		}
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := s.reg.Delete(dctx, registry.RoleState, s.cfg.ID); err != nil {
			s.log.Warn("leaving the registry failed", "err", err)
		}
		cancel()
		s.stopHTTP()
		// Local callers now go to the wire, which refuses them as it does the others.
		s.local.Stop(time.Second)
		if s.rpc != nil {
			_ = s.rpc.Stop()
		} else if s.ln != nil {
			s.ln.Close()
		}
		for _, l := range s.gateways.Clear() {
			_ = l.batch.Close(ctx)
		}
		s.business.closeAll(ctx)
		s.wheel.Stop()
		s.done.Wait()
		_ = s.instruments.Unregister()
	})
	return nil
}
