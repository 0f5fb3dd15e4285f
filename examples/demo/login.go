package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Signer is what the demo signs its devices' credentials with: an HS256 secret of the app's, and
// the kid Plato knows it by (apps.<app>.auth.jwt.secrets.<kid>).
type Signer struct {
	KID, Secret string
}

// CredentialTTL is how long a credential the demo issues vouches for a device. A real backend
// picks what its sessions last; the device asks for a new one when it expires.
const CredentialTTL = 24 * time.Hour

// Credential is the login endpoint's answer.
type Credential struct {
	Credential string `json:"credential"`
	AppID      string `json:"app_id"`
	DID        string `json:"did"`
	UID        string `json:"uid"`
	ExpiresAt  int64  `json:"expires_at"`
}

// Issue signs the credential that proves did belongs to user uid of app: a JWT with sub = uid,
// did, aud = app and exp, which Plato's ipconf verifies with the same key. This is the whole of
// what a business backend does for Plato; a real one does it after checking the user's password.
func Issue(app string, s Signer, did, uid string, now time.Time) (Credential, error) {
	exp := now.Add(CredentialTTL)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": uid, "did": did, "aud": app, "iat": now.Unix(), "exp": exp.Unix(),
	})
	tok.Header["kid"] = s.KID
	signed, err := tok.SignedString([]byte(s.Secret))
	if err != nil {
		return Credential{}, fmt.Errorf("signing the credential of %s/%s: %w", app, did, err)
	}
	return Credential{Credential: signed, AppID: app, DID: did, UID: uid, ExpiresAt: exp.Unix()}, nil
}

// login answers GET /login?app_id=demo&did=alice&user=alice with a Credential. The demo trusts
// whoever asks: it stands in for an app's real login (password, OAuth...), which is not Plato's
// business. user defaults to did.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	app, did, user := q.Get("app_id"), q.Get("did"), q.Get("user")
	if app == "" {
		app = "demo"
	}
	if user == "" {
		user = did
	}
	signer, ok := s.cfg.Signers[app]
	switch {
	case r.Method != http.MethodGet:
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	case did == "" || len(did) > 128 || len(user) > 128:
		http.Error(w, "did is required (and at most 128 bytes, as user)", http.StatusBadRequest)
		return
	case !ok:
		http.Error(w, "the demo issues no credential for app "+app, http.StatusForbidden)
		return
	}
	c, err := Issue(app, signer, did, user, time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(c)
}

// startLogin serves the login endpoint on addr; empty addr serves none.
func (s *Server) startLogin(addr string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("demo: listening for logins on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", s.login)
	mux.Handle("/chat/", chatHandler())
	mux.Handle("/chat", http.RedirectHandler("/chat/", http.StatusMovedPermanently))
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s.loginAddr = ln.Addr().String()
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("demo login endpoint stopped", "err", err)
		}
	}()
	return nil
}

// LoginAddr is where the login endpoint listens (empty without one).
func (s *Server) LoginAddr() string { return s.loginAddr }

func (s *Server) stopLogin(ctx context.Context) error {
	if s.http == nil {
		return nil
	}
	return s.http.Shutdown(ctx)
}
