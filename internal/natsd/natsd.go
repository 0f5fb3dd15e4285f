// Package natsd runs the NATS server that `plato up` embeds: one process with JetStream on a data
// directory, so the registry, routing table and fan-out work on a single machine without an
// external cluster. Fleets point every role at an external cluster instead and never start this.
package natsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
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
	// ServerName names the server. Default DefaultServerName. The nodes of a cluster need
	// distinct names: JetStream tells its peers apart by them.
	ServerName string
	// Cluster, when its Name is set, makes the server one node of a NATS cluster.
	Cluster Cluster
}

// Cluster is a node's part in a NATS cluster: where it listens for the other nodes' routes and
// which of them it dials. Every node names the same cluster; a node learns of the nodes it does
// not dial from those it does, so each needs at least one route to a node that is up.
type Cluster struct {
	// Name of the cluster. Empty: the server runs alone.
	Name string
	// Host and Port are the route listener. Port 0 picks a free port (see Server.ClusterURL).
	Host string
	Port int
	// Routes are the other nodes' route URLs, "nats-route://host:port". A node whose route is
	// down is dialled again until it is back.
	Routes []string
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
	if err := cluster(opts, cfg); err != nil {
		return nil, err
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
	if c := cfg.Cluster; c.Name != "" {
		logger.Info("nats started", "url", srv.ClientURL(), "store_dir", cfg.StoreDir, "cluster", c.Name, "routes_at", srv.ClusterAddr(), "routes_to", c.Routes)
	} else {
		logger.Info("nats started", "url", srv.ClientURL(), "store_dir", cfg.StoreDir)
	}
	return &Server{srv: srv}, nil
}

// cluster adds cfg.Cluster to opts.
func cluster(opts *server.Options, cfg Config) error {
	c := cfg.Cluster
	if c.Name == "" {
		if len(c.Routes) > 0 {
			return errors.New("starting nats: cluster routes given without a cluster name")
		}
		return nil
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("starting nats: cluster port %d out of range", c.Port)
	}
	host := c.Host
	if host == "" {
		host = cfg.Host
	}
	port := c.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: port}
	for _, r := range c.Routes {
		u, err := url.Parse(strings.TrimSpace(r))
		if err != nil || u.Host == "" {
			return fmt.Errorf("starting nats: cluster route %q is not a URL like nats-route://host:6222", r)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return nil
}

// ClientURL is the URL clients connect to, e.g. "nats://127.0.0.1:4222".
func (s *Server) ClientURL() string { return s.srv.ClientURL() }

// ClusterURL is the URL the other nodes of its cluster route to, e.g.
// "nats-route://127.0.0.1:6222", or "" when the server runs alone.
func (s *Server) ClusterURL() string {
	a := s.srv.ClusterAddr()
	if a == nil {
		return ""
	}
	return "nats-route://" + a.String()
}

// JetStreamReady reports whether JetStream can take requests: always once a lone server started;
// in a cluster, once the nodes elected a meta leader and this one caught up with it.
func (s *Server) JetStreamReady() bool {
	if !s.srv.JetStreamIsClustered() {
		return s.srv.JetStreamEnabled()
	}
	return s.srv.JetStreamIsCurrent()
}

// Shutdown stops the server and closes client connections; it does not wait for the store to be
// flushed, WaitForShutdown does.
func (s *Server) Shutdown() { s.srv.Shutdown() }

// WaitForShutdown blocks until the server has fully stopped.
func (s *Server) WaitForShutdown() { s.srv.WaitForShutdown() }
