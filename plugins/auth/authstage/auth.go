// Package authstage is Plato's reference authentication and authorisation stage: it verifies a
// device's token at login and applies a per-signal ACL and a did deny list afterwards.
//
// Identity comes only from stage.Conn. The host attributes every event to the did and uid the
// connection logged in with, and the stage never reads a did or uid out of a payload: a device
// that writes another did into its message body is still, to this stage and to everything after
// it, the did it logged in as. A stage of your own should follow the same rule.
//
// The stage runs as a plugin binary (plugins/auth) or, trusted, in the host's process
// (plugin: builtin:auth); both use New.
package authstage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
	"github.com/platoim/plato/sdk/token"
)

// Name and Version are what Info reports.
const (
	Name    = "auth"
	Version = "1.0.0"
)

// verifierTTL is only there because token.NewSigner wants a lifetime; Verify reads the expiry
// from the token itself.
const verifierTTL = time.Hour

// New returns an auth stage; it does nothing until Init has configured it.
func New() stage.Stage { return &Auth{} }

// Auth is the stage. Its handlers are safe for concurrent use.
type Auth struct {
	cfg atomic.Pointer[settings]
	// uids caches, per connection ("<gateway>/<conn>"), the uid it logged in with, when
	// require_uid_match is on. The host's state is the record; this saves a round trip per event.
	uids sync.Map
}

// settings is a validated config, swapped whole.
type settings struct {
	verifier *token.Signer
	deny     map[stage.Signal]bool
	denyDIDs map[string]bool
	uidMatch bool
	host     stage.Host
	log      *slog.Logger
}

var (
	_ stage.Stage             = (*Auth)(nil)
	_ stage.LoginHandler      = (*Auth)(nil)
	_ stage.UplinkHandler     = (*Auth)(nil)
	_ stage.HeartbeatHandler  = (*Auth)(nil)
	_ stage.DownlinkHandler   = (*Auth)(nil)
	_ stage.DisconnectHandler = (*Auth)(nil)
	_ stage.SignalSelector    = (*Auth)(nil)
)

// Info names the stage.
func (a *Auth) Info() stage.Info { return stage.Info{Name: Name, Version: Version} }

// Init validates the config (see Config) and fails when no usable secret is configured.
func (a *Auth) Init(_ context.Context, req stage.InitRequest) error {
	c, secret, err := parseConfig(req.Config, os.Getenv)
	if err != nil {
		return err
	}
	v, err := token.NewSigner(secret, verifierTTL)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	s := &settings{
		verifier: v,
		deny:     map[stage.Signal]bool{},
		denyDIDs: map[string]bool{},
		uidMatch: c.RequireUIDMatch,
		host:     req.Host,
		log:      req.Logger,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for sig, v := range c.ACL {
		s.deny[stage.Signal(sig)] = v == Deny
	}
	for _, d := range c.DenyDIDs {
		s.denyDIDs[d] = true
	}
	if s.uidMatch && s.host == nil {
		return errors.New("auth: require_uid_match needs the host's state, and InitRequest has no Host")
	}
	a.cfg.Store(s)
	return nil
}

// ActsOn tells the host which signals this config gives the stage something to do on (the
// host calls it after each Init and sends it no others). Login always: the token is checked
// there. Uplink, heartbeat and downlink only when a did is denied, the signal's ACL says deny, or
// uids are matched; otherwise every one of them would be allowed, and sparing the call is most
// of what an uplink costs. Disconnect only with require_uid_match, to drop the uid record.
func (a *Auth) ActsOn() []stage.Signal {
	s := a.settings()
	if s == nil {
		// Not initialised: every handler refuses, so it must be called for everything.
		return []stage.Signal{stage.SignalLogin, stage.SignalUplink, stage.SignalHeartbeat, stage.SignalDownlink, stage.SignalDisconnect}
	}
	out := []stage.Signal{stage.SignalLogin}
	for _, sig := range []stage.Signal{stage.SignalUplink, stage.SignalHeartbeat, stage.SignalDownlink} {
		if len(s.denyDIDs) > 0 || s.deny[sig] || s.uidMatch {
			out = append(out, sig)
		}
	}
	if s.uidMatch {
		out = append(out, stage.SignalDisconnect)
	}
	return out
}

// settings returns the config, or nil before Init (every handler then refuses: an auth stage that
// is not configured must not let anything through).
func (a *Auth) settings() *settings { return a.cfg.Load() }

func notReady() stage.Reply {
	return stage.RejectWith(uint16(protocol.CodeForbidden), "forbidden: auth stage not initialised")
}

// OnLogin verifies the token against the connection's app ID and did, then the deny list.
func (a *Auth) OnLogin(ctx context.Context, ev *stage.LoginEvent) stage.Reply {
	s := a.settings()
	if s == nil {
		return notReady()
	}
	claims, err := s.verifier.Verify(ev.Token, ev.Conn.AppID, ev.Conn.DID, time.Now())
	if err != nil {
		code, ok := protocol.CodeOf(err)
		if !ok {
			code = protocol.CodeTokenInvalid
		}
		s.log.Info("login refused", "app_id", ev.Conn.AppID, "did", ev.Conn.DID, "conn_id", ev.Conn.ConnID, "code", uint16(code), "err", err)
		return stage.RejectWith(uint16(code), reason(err, code))
	}
	if claims.UID != ev.Conn.UID {
		// The gateway attributes the connection to the token's uid; anything else is a gateway
		// that did not, and the login must not stand.
		s.log.Warn("login refused: the connection's uid is not the token's", "app_id", ev.Conn.AppID, "did", ev.Conn.DID, "conn_id", ev.Conn.ConnID)
		return stage.RejectWith(uint16(protocol.CodeTokenMismatch), "token mismatch: the token was issued for another user")
	}
	if s.denyDIDs[ev.Conn.DID] {
		s.log.Info("login refused: did denied", "app_id", ev.Conn.AppID, "did", ev.Conn.DID, "conn_id", ev.Conn.ConnID)
		return stage.RejectWith(uint16(protocol.CodeForbidden), "forbidden: device denied")
	}
	if s.uidMatch {
		if ev.Conn.UID == "" {
			return stage.RejectWith(uint16(protocol.CodeForbidden), "forbidden: a uid is required")
		}
		key := uidKey(ev.Conn)
		if err := s.host.Put(ctx, ev.Conn.AppID, key, []byte(ev.Conn.UID), 0); err != nil {
			// Without the record later signals could not be checked: refuse now, the device retries.
			s.log.Error("storing login uid", "key", key, "err", err)
			return stage.RejectWith(uint16(protocol.CodeOverloaded), "auth state unavailable; retry later")
		}
		a.uids.Store(key, ev.Conn.UID)
	}
	return stage.Reply{}
}

// OnUplink applies the ACL for uplink.
func (a *Auth) OnUplink(ctx context.Context, ev *stage.UplinkEvent) stage.Reply {
	return a.authorise(ctx, stage.SignalUplink, ev.Conn)
}

// OnHeartbeat applies the ACL for heartbeat.
func (a *Auth) OnHeartbeat(ctx context.Context, ev *stage.HeartbeatEvent) stage.Reply {
	return a.authorise(ctx, stage.SignalHeartbeat, ev.Conn)
}

// OnDownlink applies the ACL for downlink: a denied downlink is not sent.
func (a *Auth) OnDownlink(ctx context.Context, ev *stage.DownlinkEvent) stage.Reply {
	return a.authorise(ctx, stage.SignalDownlink, ev.Conn)
}

// OnDisconnect forgets the connection's uid record. A disconnect cannot be refused.
func (a *Auth) OnDisconnect(ctx context.Context, ev *stage.DisconnectEvent) stage.Reply {
	s := a.settings()
	if s == nil || !s.uidMatch {
		return stage.Reply{}
	}
	key := uidKey(ev.Conn)
	a.uids.Delete(key)
	if err := s.host.Delete(ctx, ev.Conn.AppID, key); err != nil {
		s.log.Warn("deleting login uid", "key", key, "err", err)
	}
	return stage.Reply{}
}

// authorise decides a signal of a logged-in connection: the deny list, then the ACL, then (when
// configured) the uid the connection logged in with.
func (a *Auth) authorise(ctx context.Context, sig stage.Signal, c stage.Conn) stage.Reply {
	s := a.settings()
	if s == nil {
		return notReady()
	}
	if s.denyDIDs[c.DID] {
		return stage.RejectWith(uint16(protocol.CodeForbidden), "forbidden: device denied")
	}
	if s.deny[sig] {
		return stage.RejectWith(uint16(protocol.CodeForbidden), "forbidden: "+string(sig))
	}
	if s.uidMatch {
		return a.checkUID(ctx, s, sig, c)
	}
	return stage.Reply{}
}

func (a *Auth) checkUID(ctx context.Context, s *settings, sig stage.Signal, c stage.Conn) stage.Reply {
	key := uidKey(c)
	var uid string
	if v, ok := a.uids.Load(key); ok {
		uid = v.(string)
	} else {
		b, found, err := s.host.Get(ctx, c.AppID, key)
		if err != nil {
			s.log.Error("reading login uid", "key", key, "err", err)
			return stage.RejectWith(uint16(protocol.CodeOverloaded), "auth state unavailable; retry later")
		}
		if !found {
			// The connection logged in before this stage ran (or before require_uid_match was
			// switched on): nothing to compare with, so refuse rather than guess.
			return stage.RejectWith(uint16(protocol.CodeForbidden), "forbidden: "+string(sig)+": no login record for this connection")
		}
		uid = string(b)
		a.uids.Store(key, uid)
	}
	if uid != c.UID {
		s.log.Warn("uid mismatch", "app_id", c.AppID, "did", c.DID, "conn_id", c.ConnID, "login_uid", uid, "uid", c.UID)
		return stage.RejectWith(uint16(protocol.CodeForbidden), "forbidden: "+string(sig)+": uid does not match the login")
	}
	return stage.Reply{}
}

// uidKey names a connection's uid record in the host's per-app state.
func uidKey(c stage.Conn) string {
	return "uid/" + c.GatewayID + "/" + strconv.FormatUint(c.ConnID, 10)
}

// reason is the message a refused login carries: the code's text and the detail, if any.
func reason(err error, code protocol.Code) string {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Msg != "" {
		return code.String() + ": " + pe.Msg
	}
	return code.String()
}
