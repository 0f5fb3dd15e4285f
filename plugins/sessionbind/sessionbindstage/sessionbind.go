// Package sessionbindstage is Plato's reference session stage: when a device logs in, it asks the
// app's business server which sessions the connection belongs in (Host.Sessions, the business
// server's Sessions callback) and joins the connection to them (Host.Join), together with any
// sessions the config names for every connection. The connection leaves them when it closes: the
// host does that, so the stage handles login only.
//
// The Sessions call is bounded by the config's timeout. When it fails, on_failure decides: allow
// (the default) lets the login proceed without the business server's sessions, refuse rejects it
// with 1302 (timeout) or 1301 (any other failure).
//
// Put it after the stages that may refuse a login (auth), so it never asks the business server
// about a device that is turned away anyway. The stage runs as a plugin binary
// (plugins/sessionbind) or, trusted, in the host's process (plugin: builtin:sessionbind); both use
// New.
package sessionbindstage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// Name and Version are what Info reports.
const (
	Name    = "sessionbind"
	Version = "1.0.0"
)

// New returns a sessionbind stage; it does nothing until Init has configured it.
func New() stage.Stage { return &SessionBind{} }

// SessionBind is the stage. Its handlers are safe for concurrent use: all they share is the
// settings Init stores.
type SessionBind struct {
	cfg atomic.Pointer[settings]
}

type settings struct {
	Config
	host stage.Host
	log  *slog.Logger
}

var (
	_ stage.Stage        = (*SessionBind)(nil)
	_ stage.LoginHandler = (*SessionBind)(nil)
)

// Info names the stage.
func (b *SessionBind) Info() stage.Info { return stage.Info{Name: Name, Version: Version} }

// Init validates the config (see Config).
func (b *SessionBind) Init(_ context.Context, req stage.InitRequest) error {
	c, err := parseConfig(req.Config)
	if err != nil {
		return err
	}
	if req.Host == nil {
		return errors.New("sessionbind: InitRequest has no Host: the stage joins sessions through it")
	}
	log := req.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b.cfg.Store(&settings{Config: c, host: req.Host, log: log})
	return nil
}

// OnLogin asks for the connection's sessions and joins it to them and to the configured ones.
func (b *SessionBind) OnLogin(ctx context.Context, ev *stage.LoginEvent) stage.Reply {
	s := b.cfg.Load()
	if s == nil {
		return stage.Reply{}
	}
	sessions, err := s.sessions(ctx, ev.Conn)
	if err != nil {
		code := protocol.CodeBusinessUnavailable
		if errors.Is(err, context.DeadlineExceeded) {
			code = protocol.CodeBusinessTimeout
		}
		if s.OnFailure == Refuse {
			s.log.Info("login refused: its sessions are unknown", "did", ev.Conn.DID, "code", uint16(code), "err", err)
			return stage.RejectWith(uint16(code), "sessions unavailable")
		}
		// Allowed: the device is online but misses the business server's sessions until it
		// logs in again; say so, as it is visible to the business.
		s.log.Warn("login proceeds without its sessions", "did", ev.Conn.DID, "err", err)
	}
	join := s.merge(sessions, ev.Conn)
	if len(join) == 0 {
		return stage.Reply{}
	}
	if err := s.host.Join(ctx, ev.Conn, join); err != nil {
		if s.OnFailure == Refuse {
			s.log.Info("login refused: joining its sessions failed", "did", ev.Conn.DID, "err", err)
			return stage.RejectWith(uint16(protocol.CodePipelineFailed), "joining sessions failed")
		}
		s.log.Warn("login proceeds without its sessions: joining failed", "did", ev.Conn.DID, "sessions", len(join), "err", err)
	}
	return stage.Reply{}
}

// sessions asks the business server, within the configured timeout. A deadline error (this
// timeout or the batch's) unwraps to context.DeadlineExceeded.
func (s *settings) sessions(ctx context.Context, conn stage.Conn) ([]string, error) {
	cctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	sessions, err := s.host.Sessions(cctx, conn)
	if err != nil {
		if errors.Is(cctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
			// The host reported its own error for our deadline: it is still a timeout.
			err = fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
		}
		return nil, fmt.Errorf("asking the business server for %s's sessions: %w", conn.DID, err)
	}
	return sessions, nil
}

// merge returns the configured sessions, then the business server's, each once. It leaves out
// names the state server would refuse (logged), so that one bad name does not fail the whole Join.
func (s *settings) merge(sessions []string, conn stage.Conn) []string {
	if len(sessions) == 0 {
		return s.Always
	}
	out := make([]string, 0, len(s.Always)+len(sessions))
	seen := make(map[string]struct{}, cap(out))
	for _, list := range [][]string{s.Always, sessions} {
		for _, name := range list {
			if _, dup := seen[name]; dup {
				continue
			}
			if why := badName(name); why != "" {
				s.log.Warn("business server named an invalid session; skipped", "did", conn.DID, "session", name, "why", why)
				continue
			}
			seen[name] = struct{}{}
			out = append(out, name)
		}
	}
	return out
}
