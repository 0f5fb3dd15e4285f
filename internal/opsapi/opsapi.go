// Package opsapi is the ops API's wire: the JSON a gateway's admin server answers under
// /api/v1/gateway/ and `plato ops` sends, its bearer-key check, and the client the CLI uses.
// An ops console or any HTTP client can use the same API (docs/operations.md, "Moving devices").
package opsapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Paths of the gateway's operations, on its admin address.
const (
	PathStatus  = "/api/v1/gateway"
	PathMigrate = "/api/v1/gateway/migrate"
	PathDrain   = "/api/v1/gateway/drain"
)

// MigrateRequest asks a gateway to redirect some of its devices to other gateways.
type MigrateRequest struct {
	// To is the ID of the gateway to send them to; empty: the other live gateways, least loaded
	// first.
	To string `json:"to,omitempty"`
	// Count is how many logged-in devices to move, any of them; DIDs names them instead (with
	// App, of that app only). One of the two is required.
	Count int      `json:"count,omitempty"`
	DIDs  []string `json:"dids,omitempty"`
	App   string   `json:"app,omitempty"`
	// Rate paces the Redirects, per second; 0: gateway.drain.rate.
	Rate int `json:"rate,omitempty"`
}

// MigrateResult is what a migrate did.
type MigrateResult struct {
	Gateway string `json:"gateway"`
	// Redirected is how many logged-in devices were sent a Redirect; Selected how many matched
	// (a device that closed meanwhile is selected and not redirected).
	Redirected int `json:"redirected"`
	Selected   int `json:"selected"`
	// Targets are the endpoints the devices were sent to, best first.
	Targets []string `json:"targets"`
}

// DrainRequest starts a drain.
type DrainRequest struct {
	// Rate paces the Redirects, per second; 0: gateway.drain.rate.
	Rate int `json:"rate,omitempty"`
}

// Status is a gateway as its ops API reports it, with its drain.
type Status struct {
	Gateway  string `json:"gateway"`
	Endpoint string `json:"endpoint"`
	// Conns are the device connections open on it now.
	Conns    int  `json:"conns"`
	Draining bool `json:"draining"`
	// The drain, while Draining: its pace, when it started, how many devices it redirected,
	// and Done once no device is left (new logins are still redirected after that).
	Rate       int       `json:"rate,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	Redirected int64     `json:"redirected"`
	Done       bool      `json:"done"`
	// Waiting says why the drain is not moving devices, when it is not (no other gateway).
	Waiting string `json:"waiting,omitempty"`
}

// Error is the body of every refusal.
type Error struct {
	Error string `json:"error"`
}

// WriteJSON answers v with code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError answers an Error with code.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, Error{Error: msg})
}

// Authenticated serves h to requests that carry "Authorization: Bearer <key>". With no key
// configured every request is refused (403): the ops API moves every device of a gateway, so it is
// off until ops set a key. A request without a bearer key gets 401, one with a wrong key 403.
func Authenticated(key string, h http.Handler) http.Handler {
	// Comparing digests makes the comparison constant-time whatever the lengths.
	want := sha256.Sum256([]byte(key))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if key == "" {
			WriteError(w, http.StatusForbidden, "the ops API is off: no ops.key is configured on this process")
			return
		}
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || got == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="plato-ops"`)
			WriteError(w, http.StatusUnauthorized, "missing ops key: send Authorization: Bearer <ops.key>")
			return
		}
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			WriteError(w, http.StatusForbidden, "wrong ops key")
			return
		}
		h.ServeHTTP(w, r)
	})
}
