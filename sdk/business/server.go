package business

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	kserver "github.com/cloudwego/kitex/server"
	"github.com/cloudwego/netpoll"

	"github.com/platoim/plato/sdk/business/pollnet"
	bizservice "github.com/platoim/plato/sdk/business/rpc/plato/api/business"
)

// exitWaitTime is how long Stop lets calls in flight finish before closing their connections.
const exitWaitTime = time.Second

// Server serves the Business service from Handlers: Plato's state servers call it.
type Server struct {
	ln   *readyListener
	rpc  kserver.Server
	log  *slog.Logger
	quit chan error    // Kitex's exit signal: closed by Stop
	done chan struct{} // closed when Serve returns

	mu       sync.Mutex
	started  bool
	stopping bool
	err      error // what Serve returned
	quitOnce sync.Once
}

// ServerOption configures a Server.
type ServerOption func(*serverOptions)

type serverOptions struct {
	log   *slog.Logger
	kitex []kserver.Option
}

// WithLogger sets where handler failures are logged. Default slog.Default().
func WithLogger(l *slog.Logger) ServerOption { return func(o *serverOptions) { o.log = l } }

// WithKitexOptions adds options to the Kitex server (tracing suites, limits...).
func WithKitexOptions(opts ...kserver.Option) ServerOption {
	return func(o *serverOptions) { o.kitex = append(o.kitex, opts...) }
}

// Listen listens on addr (host:port, ":0" for any free port, or a unix socket path) and returns a
// Server on it, ready to Start or Serve.
func Listen(addr string, h Handlers, opts ...ServerOption) (*Server, error) {
	network := "tcp"
	if strings.Contains(addr, "/") {
		network = "unix"
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("business server: listening on %s: %w", addr, err)
	}
	s, err := NewServer(ln, h, opts...)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	return s, nil
}

// NewServer returns a Server on ln, a TCP or unix socket listener; the server owns ln from now on
// and closes it on Stop.
func NewServer(ln net.Listener, h Handlers, opts ...ServerOption) (*Server, error) {
	o := serverOptions{log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	// Not netpoll.ConvertListener: its listener frees its descriptor number before netpoll stops
	// polling it, which can cut off another socket of this process when the server stops (pollnet).
	nl, err := pollnet.Convert(ln)
	if err != nil {
		return nil, fmt.Errorf("business server: using listener %s: %w", ln.Addr(), err)
	}
	rl := &readyListener{Listener: nl, ready: make(chan struct{})}
	s := &Server{ln: rl, log: o.log, quit: make(chan error), done: make(chan struct{})}
	kopts := append([]kserver.Option{
		kserver.WithListener(rl),
		kserver.WithExitWaitTime(exitWaitTime),
		// Kitex stops its server on SIGINT/SIGTERM by default, behind the embedding program's back;
		// here the only exit signal is Stop. It also makes a Stop that comes before Kitex is running
		// stop it as soon as it is.
		kserver.WithExitSignal(func() <-chan error { return s.quit }),
	}, o.kitex...)
	s.rpc = bizservice.NewServer(&service{h: h, log: o.log}, kopts...)
	return s, nil
}

// readyListener tells when Kitex's transport has taken the listener in hand. Kitex (v0.16) records
// the listener without a lock as it starts serving, in a goroutine of its own, and its shutdown
// reads it: a shutdown before that point is a data race and would leave the listener served
// forever. netpoll asks for the descriptor once the record is made, so Stop waits for that.
type readyListener struct {
	netpoll.Listener
	once  sync.Once
	ready chan struct{}
}

func (l *readyListener) Fd() int {
	l.once.Do(func() { close(l.ready) })
	return l.Listener.Fd()
}

// Addr is the address the server listens on: give it to Plato (apps.<app>.business).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until Stop, and returns nil then; or an error if serving failed. A Server serves once.
func (s *Server) Serve() error {
	if err := s.begin(); err != nil {
		return err
	}
	return s.run()
}

// Start serves in the background and returns at once; Stop ends it and reports a failure.
func (s *Server) Start() error {
	if err := s.begin(); err != nil {
		return err
	}
	go func() {
		if err := s.run(); err != nil {
			s.log.Error("business server stopped", "addr", s.Addr(), "err", err)
		}
	}()
	return nil
}

func (s *Server) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopping:
		return errors.New("business server: stopped")
	case s.started:
		return errors.New("business server: already serving")
	}
	s.started = true
	return nil
}

func (s *Server) run() error {
	defer close(s.done)
	err := s.rpc.Run()
	if err != nil {
		err = fmt.Errorf("business server on %s: %w", s.Addr(), err)
	}
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	return err
}

// Stop stops accepting calls, lets those in flight finish (up to a second), and returns when the
// server is stopped or ctx is done. It returns what stopped serving, if it was not Stop.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	started := s.started
	s.stopping = true
	s.mu.Unlock()
	if started {
		select {
		case <-s.ln.ready:
		case <-s.done: // Kitex failed before it got that far
		case <-ctx.Done():
			return fmt.Errorf("business server: stopping: %w", ctx.Err())
		}
	}
	s.quitOnce.Do(func() { close(s.quit) })
	if !started {
		// Kitex never ran, so the listener is still ours to close.
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("business server: closing listener: %w", err)
		}
		return nil
	}
	select {
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.err
	case <-ctx.Done():
		return fmt.Errorf("business server: stopping: %w", ctx.Err())
	}
}
