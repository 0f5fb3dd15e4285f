package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Admin is a process's operations HTTP server: GET /metrics and GET /healthz. It is plain
// net/http: it serves a scraper every few seconds, not devices.
type Admin struct {
	ln    net.Listener
	srv   *http.Server
	done  chan struct{}
	ready atomic.Bool
	// stopping is set by Draining: health turns 503 before the roles stop, so a load balancer
	// stops sending first.
	stopping atomic.Bool
	health   func() error
	mux      *http.ServeMux
}

// Degraded is what a health function returns for a process that serves but has a part failing
// (a pipeline stage in a crash loop): /healthz answers 200 with status "degraded", Message as its
// error and Detail as its detail, so that a load balancer keeps sending and an orchestrator does
// not restart a process whose other parts are fine, while whoever watches sees what is wrong.
type Degraded struct {
	Message string
	Detail  any
}

func (d *Degraded) Error() string { return d.Message }

// StartAdmin listens on addr (port 0 picks a free one) and serves reg on /metrics and health on
// /healthz. health (nil: always fine) is asked on every /healthz once SetReady was called;
// before that, and after Draining, /healthz answers 503. A health error answers 503 "unhealthy",
// unless it is a *Degraded: 200 "degraded".
func StartAdmin(addr string, reg *prometheus.Registry, health func() error, log *slog.Logger) (*Admin, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin.addr: listening on %s: %w", addr, err)
	}
	return ServeAdmin(ln, reg, health, log), nil
}

// ServeAdmin is StartAdmin on a listener already open: a gateway upgraded in place serves the
// socket its previous process passed it.
func ServeAdmin(ln net.Listener, reg *prometheus.Registry, health func() error, log *slog.Logger) *Admin {
	a := &Admin{ln: ln, done: make(chan struct{}), health: health}
	mux := http.NewServeMux()
	a.mux = mux
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// A metric that fails to collect is logged and left out; the others are still served.
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /healthz", a.serveHealth)
	// Profiles, for whoever is on call: the admin port listens on loopback unless configured
	// otherwise, and must not be exposed beyond the operators' network.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return a
}

// Handle serves pattern (http.ServeMux syntax) with h, next to /metrics and /healthz: a role
// adds its operations API this way (the gateway's under /api/v1/gateway/).
func (a *Admin) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

// Addr is the listen address.
func (a *Admin) Addr() string { return a.ln.Addr().String() }

// SetReady makes /healthz report the health function instead of "starting".
func (a *Admin) SetReady() { a.ready.Store(true) }

// Draining makes /healthz answer 503 "stopping" from now on.
func (a *Admin) Draining() { a.stopping.Store(true) }

func (a *Admin) serveHealth(w http.ResponseWriter, _ *http.Request) {
	status, code, msg := "ok", http.StatusOK, ""
	var detail any
	switch {
	case a.stopping.Load():
		status, code = "stopping", http.StatusServiceUnavailable
	case !a.ready.Load():
		status, code = "starting", http.StatusServiceUnavailable
	case a.health != nil:
		var deg *Degraded
		switch err := a.health(); {
		case errors.As(err, &deg):
			status, msg, detail = "degraded", deg.Message, deg.Detail
		case err != nil:
			status, code, msg = "unhealthy", http.StatusServiceUnavailable, err.Error()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Status string `json:"status"`
		Error  string `json:"error,omitempty"`
		Detail any    `json:"detail,omitempty"`
	}{status, msg, detail})
}

// Shutdown stops the server, letting a scrape in flight finish until ctx ends.
func (a *Admin) Shutdown(ctx context.Context) error {
	err := a.srv.Shutdown(ctx)
	<-a.done
	return err
}

// Listener is the socket the admin server accepts on.
func (a *Admin) Listener() net.Listener { return a.ln }
