// Package demo is the group chat business server `plato up` starts, so a newcomer can talk between
// terminals (`plato chat`). It is built only on sdk/business, as any business server would be:
// Plato delivers it the devices' uplinks and asks it which rooms a device joins at login; it calls
// Plato's RPC to push messages and to bind devices to rooms (Plato sessions). Message lists the
// commands, Delivered what devices receive, and the Code constants its refusals.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"sync"

	"github.com/platoim/plato/sdk/business"
)

// Config configures the demo.
type Config struct {
	// Addr is where it listens for Plato (demo.addr); port 0 picks one, see Server.Addr.
	Addr string
	// StateAddr returns Plato's RPC address (a state server's state.addr). It is asked on the first
	// call to Plato, so the state server may start after the demo. nil means business.DefaultAddr.
	StateAddr func() string
	// Keys maps app IDs to their key for Plato's RPC (apps.<app>.keys). The demo serves the apps
	// listed; the uplinks of others are refused with CodeUnknownApp.
	Keys map[string]string
	// LoginAddr is where the demo's login endpoint listens (GET /login: it issues device
	// credentials, as an app's own backend would). Empty: none.
	LoginAddr string
	// Signers are the keys the login endpoint signs each app's credentials with.
	Signers map[string]Signer
}

// Server is the demo business server.
type Server struct {
	cfg   Config
	log   *slog.Logger
	rooms *rooms
	work  *workers
	biz   *business.Server

	http      *http.Server
	loginAddr string

	mu        sync.Mutex
	stateAddr string                      // resolved on first use
	clients   map[string]*business.Client // by app ID
}

// New prepares a demo server; Start runs it.
func New(cfg Config, logger *slog.Logger) *Server {
	cfg.Keys, cfg.Signers = maps.Clone(cfg.Keys), maps.Clone(cfg.Signers)
	return &Server{cfg: cfg, log: logger.With("role", "demo"), rooms: newRooms(), clients: map[string]*business.Client{}}
}

// Start listens and returns once the listener is open; ctx is not kept.
func (s *Server) Start(ctx context.Context) error {
	h := business.Handlers{
		Uplink: s.uplink, Sessions: s.sessions,
		Connected: s.connected, Disconnected: s.disconnected, Undelivered: s.undelivered,
	}
	biz, err := business.Listen(s.cfg.Addr, h, business.WithLogger(s.log))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	// The workers exist before the first uplink can arrive.
	s.work = newWorkers(s.do)
	if err := biz.Start(); err != nil {
		s.work.stop(ctx)
		return fmt.Errorf("demo: %w", err)
	}
	s.biz = biz
	if err := s.startLogin(s.cfg.LoginAddr); err != nil {
		_ = s.Shutdown(ctx)
		return err
	}
	s.log.Info("demo chat business server listening", "rpc", s.Addr(), "login", s.LoginAddr(), "apps", len(s.cfg.Keys))
	return nil
}

// Addr is the listen address (empty before Start).
func (s *Server) Addr() string {
	if s.biz == nil {
		return ""
	}
	return s.biz.Addr()
}

// Shutdown stops taking uplinks, lets the queued pushes finish until ctx is done (then abandons
// them), and closes its connections to Plato.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	if err := s.stopLogin(ctx); err != nil {
		errs = append(errs, fmt.Errorf("demo: stopping the login endpoint: %w", err))
	}
	if s.biz != nil {
		if err := s.biz.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("demo: %w", err))
		}
	}
	if s.work != nil {
		s.work.stop(ctx)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for app, c := range s.clients {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("demo: closing the client of app %s: %w", app, err))
		}
	}
	clear(s.clients)
	return errors.Join(errs...)
}

// client returns the Plato client of app, creating it on first use; nil when app has no key.
func (s *Server) client(app string) (*business.Client, error) {
	key, ok := s.cfg.Keys[app]
	if !ok {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clients[app]; c != nil {
		return c, nil
	}
	if s.stateAddr == "" && s.cfg.StateAddr != nil {
		s.stateAddr = s.cfg.StateAddr()
	}
	c, err := business.NewClient(business.ClientConfig{Addr: s.stateAddr, AppID: app, Key: key, Timeout: pushTimeout})
	if err != nil {
		return nil, fmt.Errorf("creating the Plato client of app %s: %w", app, err)
	}
	s.clients[app] = c
	return c, nil
}
