package ipconf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	hertz "github.com/cloudwego/hertz/pkg/app/server"
	"github.com/cloudwego/hertz/pkg/network/netpoll"
	"go.opentelemetry.io/otel/metric"

	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/telemetry"
	"github.com/platoim/plato/sdk/token"
)

// Limits, and how long the server waits for itself. The defaults of Config are Plato's
// configuration's (internal/config: ipconf.* and auth.token_ttl).
const (
	// MaxEndpointsLimit is the most endpoints the HTTP contract allows in one answer.
	MaxEndpointsLimit = 8
	// MaxParamLen is the longest app_id or did accepted, in bytes.
	MaxParamLen = 128
	// maxHeaderBytes bounds a request's headers: a credential (credential.MaxLen) and the usual
	// few. Hertz refuses a request whose headers do not fit.
	maxHeaderBytes = 16 << 10
	// verifyTimeout bounds a credential's verification, a connect callback included.
	verifyTimeout = 5 * time.Second

	// startTimeout bounds Start's wait for the server to answer its own probe.
	startTimeout = 5 * time.Second
	readTimeout  = 10 * time.Second
	idleTimeout  = 60 * time.Second
	// exitWaitTimeout bounds how long Shutdown waits for connections. Requests take microseconds;
	// what it really waits for is idle keep-alive connections, which netpoll counts as busy, so
	// it is short.
	exitWaitTimeout = time.Second
	// pruneEvery and pruneAfter bound the memory held for gateways whose delete was never seen.
	pruneEvery = 30 * time.Second
	pruneAfter = time.Minute
)

// Config configures the ipconf server.
type Config struct {
	// Addr is the HTTP listen address; port 0 picks a free port (see Server.Addr). Default config.DefaultIPConfAddr.
	Addr string
	// TokenSecret signs access tokens; at least token.MinSecretLen bytes. Required. Gateways must
	// verify with the same secret.
	TokenSecret []byte
	// TokenTTL is how long an issued token is valid. Default config.DefaultTokenTTL.
	TokenTTL time.Duration
	// MaxEndpoints is how many gateways one answer lists, 1 to MaxEndpointsLimit. Default
	// config.DefaultMaxEndpoints.
	MaxEndpoints int
	// StaleAfter leaves out a gateway whose last load report is older than this. Default
	// config.DefaultStaleAfter.
	StaleAfter time.Duration
	// KeepStale is how long, once the registry is unreachable, ipconf keeps handing out the
	// gateways that were live when it last heard from it (see Server.rankTime). Default
	// config.DefaultKeepStale; negative: none are handed out then.
	KeepStale time.Duration
	// Apps are the apps served, each with the verifier of its devices' credentials. Required:
	// ipconf answers nobody without a credential its app's backend issued (403 for an app not in
	// it).
	Apps *apps.Table
	// Meter receives ipconf's metrics (docs/observability.md); nil records none.
	Meter metric.Meter
}

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.Addr == "" {
		out.Addr = config.DefaultIPConfAddr
	}
	if out.TokenTTL == 0 {
		out.TokenTTL = config.DefaultTokenTTL
	}
	if out.MaxEndpoints == 0 {
		out.MaxEndpoints = config.DefaultMaxEndpoints
	}
	if out.StaleAfter == 0 {
		out.StaleAfter = config.DefaultStaleAfter
	}
	if out.KeepStale == 0 {
		out.KeepStale = config.DefaultKeepStale
	}
	switch {
	case out.Apps == nil:
		return out, errors.New("the apps are required: ipconf hands tokens only to devices their app vouches for")
	case out.TokenTTL < 0:
		return out, errors.New("token ttl must be positive")
	case out.MaxEndpoints < 1 || out.MaxEndpoints > MaxEndpointsLimit:
		return out, fmt.Errorf("max endpoints must be between 1 and %d, got %d", MaxEndpointsLimit, out.MaxEndpoints)
	case out.StaleAfter < 0:
		return out, errors.New("stale after must be positive")
	}
	return out, nil
}

// Server is the ipconf HTTP service: it watches the registry for gateways and answers
// GET /ip/list and GET /healthz.
type Server struct {
	cfg Config
	reg registry.Registry
	log *slog.Logger
	// hertzLog receives Hertz's own logs while this Server runs.
	hertzLog *slog.Logger
	signer   *token.Signer
	scorer   *Scorer

	// requests counts answers by HTTP status. instruments publishes them and is unregistered at
	// Shutdown.
	requests telemetry.Codes
	// latency observes each answer's duration, by route (latency.go).
	latency routeLatency
	// refused counts credentials refused, by the code the device was told.
	refused telemetry.Codes
	// staleAnswers counts lists handed out while the registry was unreachable.
	staleAnswers atomic.Int64
	instruments  metric.Registration

	// heardAt is when ipconf last heard from the registry, and staleSince when the registry
	// watch said it lost it (0 while it is current), in unix nanoseconds: see rankTime. The
	// watch goroutine writes them (heardAt first), requests read them.
	staleSince atomic.Int64
	heardAt    atomic.Int64

	// stopped is read by the HTTP goroutine while Start may hold mu, hence atomic.
	stopped atomic.Bool

	mu        sync.Mutex
	started   bool
	h         *hertz.Hertz
	addr      string
	stopWatch context.CancelFunc
	watchDone chan struct{}
	runDone   chan struct{}
}

// New validates cfg and returns a Server that is not yet listening. logger may be nil
// (slog.Default()). Hertz's own logs go to logger too, from Start to Shutdown; Hertz has a single
// process-wide logger, so with several Servers running at once the last started gets them all.
func New(cfg Config, reg registry.Registry, logger *slog.Logger) (*Server, error) {
	if reg == nil {
		return nil, errors.New("creating ipconf server: registry is nil")
	}
	if logger == nil {
		logger = slog.Default()
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("creating ipconf server: %w", err)
	}
	signer, err := token.NewSigner(c.TokenSecret, c.TokenTTL)
	if err != nil {
		return nil, fmt.Errorf("creating ipconf server: %w", err)
	}
	s := &Server{
		cfg:      c,
		reg:      reg,
		log:      logger.With("component", "ipconf"),
		hertzLog: logger.With("component", "hertz"),
		signer:   signer,
		scorer:   NewScorer(DefaultWindow, c.StaleAfter),
	}
	if s.instruments, err = s.instrument(c.Meter); err != nil {
		return nil, fmt.Errorf("creating ipconf server: metrics: %w", err)
	}
	return s, nil
}

// Start begins watching the registry and listening for HTTP, and returns once requests are
// served (it probes GET /healthz itself). ctx bounds the startup only: the server runs until
// Shutdown. A Server starts once.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("starting ipconf: already started")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("starting ipconf: %w", err)
	}
	s.started = true

	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		s.stopped.Store(true)
		return fmt.Errorf("starting ipconf: listening on %s: %w", s.cfg.Addr, err)
	}
	s.addr = ln.Addr().String()

	s.heardAt.Store(time.Now().UnixNano())
	// The watch outlives Start's ctx; Shutdown cancels it.
	wctx, cancel := context.WithCancel(context.Background())
	s.stopWatch = cancel
	s.watchDone = make(chan struct{})
	go func() {
		defer close(s.watchDone)
		s.watch(wctx)
	}()

	h := hertz.New(
		hertz.WithListener(ln),
		hertz.WithHostPorts(s.addr),
		hertz.WithTransport(netpoll.NewTransporter),
		hertz.WithDisablePrintRoute(true),
		hertz.WithReadTimeout(readTimeout),
		hertz.WithIdleTimeout(idleTimeout),
		hertz.WithExitWaitTime(exitWaitTimeout),
		hertz.WithMaxRequestBodySize(4<<10), // only GETs are served
		// Headers carry the credential; anything far larger than one is refused (431).
		hertz.WithMaxHeaderBytes(maxHeaderBytes),
		hertz.WithHandleMethodNotAllowed(true),
	)
	s.routes(h)
	s.h = h
	claimHertzLogs(s.hertzLog)

	runErr := make(chan error, 1)
	s.runDone = make(chan struct{})
	go func() {
		defer close(s.runDone)
		err := h.Run()
		runErr <- err
		if err != nil && !s.stopped.Load() {
			s.log.Error("http server stopped", "err", err)
		}
	}()

	// Hertz offers no "serving" signal, and a Shutdown that lands before its event loop exists is
	// silently lost, so Start waits until a request has actually been answered.
	pctx, pcancel := context.WithTimeout(ctx, startTimeout)
	defer pcancel()
	probed := make(chan error, 1)
	go func() { probed <- probe(pctx, s.addr) }()
	select {
	case err := <-runErr:
		if err == nil {
			err = errors.New("stopped before serving")
		}
		s.abortLocked(ln)
		return fmt.Errorf("starting ipconf http on %s: %w", s.addr, err)
	case err := <-probed:
		if err != nil {
			s.abortLocked(ln)
			return fmt.Errorf("starting ipconf http on %s: %w", s.addr, err)
		}
	}
	s.log.Info("ipconf listening", "addr", s.addr)
	return nil
}

// probe waits for GET /healthz on addr to answer 200. A wildcard listen address is probed on
// loopback.
func probe(ctx context.Context, addr string) error {
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
			if ip.To4() == nil {
				host = "::1"
			}
			addr = net.JoinHostPort(host, port)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		return fmt.Errorf("probing: %w", err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probing: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probing: /healthz answered %s", resp.Status)
	}
	return nil
}

// abortLocked undoes a failed Start. Hertz may still be between marking itself running and
// creating its event loop, when Close has nothing to close yet, so Close is repeated until Run
// has returned.
func (s *Server) abortLocked(ln net.Listener) {
	s.stopped.Store(true)
	s.stopWatch()
	deadline := time.Now().Add(exitWaitTimeout)
	for time.Now().Before(deadline) {
		_ = s.h.Close()
		select {
		case <-s.runDone:
			deadline = time.Time{}
		case <-time.After(10 * time.Millisecond):
		}
	}
	_ = ln.Close() // Hertz never took it if Run failed early
	releaseHertzLogs(s.hertzLog)
}

// Addr returns the address the server listens on ("127.0.0.1:8080"), or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Shutdown stops accepting requests, waits for those in flight (up to ctx's deadline) and stops
// the registry watch. It is safe to call more than once and before Start.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.started || s.stopped.Load() {
		s.mu.Unlock()
		return nil
	}
	s.stopped.Store(true)
	s.mu.Unlock()
	defer releaseHertzLogs(s.hertzLog)

	s.stopWatch()
	var errs []error
	if err := s.h.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shutting down http: %w", err))
	}
	for _, done := range []chan struct{}{s.watchDone, s.runDone} {
		select {
		case <-done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("shutting down ipconf: %w", ctx.Err()))
			return errors.Join(errs...)
		}
	}
	_ = s.instruments.Unregister()
	s.log.Info("ipconf stopped")
	return errors.Join(errs...)
}
