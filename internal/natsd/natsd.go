// Package natsd runs the NATS server that `plato up` embeds: one process with JetStream on a data
// directory, so the registry, routing table and fan-out work on a single machine without an
// external cluster. Fleets point every role at an external cluster instead and never start this.
package natsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/platoim/plato/internal/config"
)

// Defaults used when a Config field is zero (the host and port are nats.embedded's, in
// internal/config).
const (
	// DefaultServerName names the server in logs and JetStream metadata.
	DefaultServerName = "plato"
	// ReadyTimeout bounds how long Start waits for the server to accept connections.
	ReadyTimeout = 10 * time.Second
)

// Config configures the embedded server.
type Config struct {
	// Host is the interface to listen on. Default config.DefaultNATSHost: off the network unless asked.
	Host string
	// Port is the client port; 0 picks a random free port (Plato's configuration defaults to config.DefaultNATSPort).
	Port int
	// StoreDir is the JetStream data directory. Required.
	StoreDir string
	// ServerName names the server. Default DefaultServerName.
	ServerName string
}

// Server is a running embedded NATS server.
type Server struct {
	srv *server.Server
}

// Start starts a NATS server with JetStream on cfg.StoreDir and returns once it accepts client
// connections. ctx bounds the startup only; stop the server with Shutdown. Server logs go to
// logger (nil: slog.Default()), never to stdout.
func Start(ctx context.Context, cfg Config, logger *slog.Logger) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("starting nats: store directory is required")
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("starting nats: port %d out of range", cfg.Port)
	}
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.Host == "" {
		cfg.Host = config.DefaultNATSHost
	}
	if cfg.ServerName == "" {
		cfg.ServerName = DefaultServerName
	}
	port := cfg.Port
	if port == 0 {
		// nats-server reads 0 as "its default 4222"; -1 is its "random port".
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: cfg.ServerName,
		Host:       cfg.Host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		// Plato owns the process's signals and shuts the server down itself.
		NoSigs: true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("creating nats server: %w", err)
	}
	log := newLogger(logger.With("component", "nats"))
	srv.SetLoggerV2(log, log.debug, log.trace, false)

	// Start runs the accept loop in the background. A failure to listen (port taken) or to enable
	// JetStream is reported only through Fatalf, which the real nats logger answers with os.Exit;
	// ours forwards it on log.fatal so Start can fail fast instead of waiting out ReadyTimeout.
	srv.Start()
	ready := make(chan bool, 1)
	go func() { ready <- srv.ReadyForConnections(ReadyTimeout) }()

	fail := func(err error) (*Server, error) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, err
	}
	select {
	case err := <-log.fatal:
		return fail(fmt.Errorf("starting nats on %s:%d: %w", cfg.Host, cfg.Port, err))
	case <-ctx.Done():
		return fail(fmt.Errorf("starting nats: %w", ctx.Err()))
	case ok := <-ready:
		if !ok {
			err := fmt.Errorf("not ready for connections within %s", ReadyTimeout)
			// A fatal error may have raced with the timeout; it explains more.
			select {
			case ferr := <-log.fatal:
				err = ferr
			default:
			}
			return fail(fmt.Errorf("starting nats on %s:%d: %w", cfg.Host, cfg.Port, err))
		}
	}
	if !srv.JetStreamEnabled() {
		return fail(errors.New("starting nats: jetstream did not start"))
	}
	logger.Info("nats started", "url", srv.ClientURL(), "store_dir", cfg.StoreDir)
	return &Server{srv: srv}, nil
}

// ClientURL is the URL clients connect to, e.g. "nats://127.0.0.1:4222".
func (s *Server) ClientURL() string { return s.srv.ClientURL() }

// Shutdown stops the server and closes client connections; it does not wait for the store to be
// flushed, WaitForShutdown does.
func (s *Server) Shutdown() { s.srv.Shutdown() }

// WaitForShutdown blocks until the server has fully stopped.
func (s *Server) WaitForShutdown() { s.srv.WaitForShutdown() }
