package ipconf

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cloudwego/hertz/pkg/app"
	hertz "github.com/cloudwego/hertz/pkg/app/server"

	"github.com/platoim/plato/internal/credential"
	"github.com/platoim/plato/sdk/protocol"
)

// listResponse is the body of GET /ip/list.
type listResponse struct {
	AppID string `json:"app_id"`
	// DID and UID are who the credential proved the device is: the gateway token binds them.
	DID       string     `json:"did"`
	UID       string     `json:"uid"`
	Endpoints []Endpoint `json:"endpoints"`
	Token     string     `json:"token"`
	// TokenExpiresAt is Unix seconds.
	TokenExpiresAt int64 `json:"token_expires_at"`
	// Stale is set while the registry is unreachable: the endpoints are those live when ipconf
	// last heard from it.
	Stale bool `json:"stale,omitempty"`
}

// errorResponse is the body of every failed request.
type errorResponse struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    protocol.Code `json:"code"`
	Message string        `json:"message"`
}

func (s *Server) routes(h *hertz.Hertz) {
	// Counting in a middleware sees every answer, the 404s and 405s included.
	h.Use(func(ctx context.Context, c *app.RequestContext) {
		start := time.Now()
		c.Next(ctx)
		s.requests.Add(c.Response.StatusCode())
		s.latency.of(c.FullPath()).Since(start)
	})
	s.cors(h)
	h.GET("/ip/list", s.handleList)
	h.GET("/healthz", s.handleHealth)
	h.NoRoute(func(_ context.Context, c *app.RequestContext) {
		writeError(c, http.StatusNotFound, protocol.CodeInvalidArgument, "no such path")
	})
	h.NoMethod(func(_ context.Context, c *app.RequestContext) {
		writeError(c, http.StatusMethodNotAllowed, protocol.CodeInvalidArgument, "method not allowed")
	})
}

// handleList answers GET /ip/list?app_id=A&did=D, with the device's credential, with the ranked
// endpoints and a gateway token binding the app, the did and the uid the credential proves.
// transport=ws lists the gateways' WebSocket URLs instead of their TCP addresses.
func (s *Server) handleList(ctx context.Context, c *app.RequestContext) {
	appID, msg := param(c, "app_id")
	if msg != "" {
		writeError(c, http.StatusBadRequest, protocol.CodeInvalidArgument, msg)
		return
	}
	did, msg := param(c, "did")
	if msg != "" {
		writeError(c, http.StatusBadRequest, protocol.CodeInvalidArgument, msg)
		return
	}
	rank := s.scorer.Rank
	switch t := string(c.QueryArgs().Peek("transport")); t {
	case "", "tcp":
	case "ws":
		rank = s.scorer.RankWS
	default:
		writeError(c, http.StatusBadRequest, protocol.CodeInvalidArgument, "transport must be tcp or ws, got "+strconv.Quote(t))
		return
	}
	a := s.cfg.Apps.Get(appID)
	if a == nil {
		s.refused.Add(int(protocol.CodeUnknownApp))
		writeError(c, http.StatusForbidden, protocol.CodeUnknownApp, "app "+strconv.Quote(appID)+" is not configured")
		return
	}
	cred, msg := credentialOf(c)
	if msg != "" {
		s.refused.Add(int(protocol.CodeTokenInvalid))
		writeError(c, http.StatusUnauthorized, protocol.CodeTokenInvalid, msg)
		return
	}
	vctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	id, err := a.Verifier.Verify(vctx, credential.Request{AppID: appID, DID: did, Credential: cred, RemoteAddr: c.RemoteAddr().String()})
	cancel()
	if err != nil {
		code := credential.CodeOf(err)
		s.refused.Add(int(code))
		status := http.StatusUnauthorized
		if code == protocol.CodeBusinessUnavailable || code == protocol.CodeBusinessTimeout {
			// The business could not say: the device's credential may be fine, it retries.
			status = http.StatusServiceUnavailable
		}
		writeError(c, status, code, reasonOf(err))
		return
	}
	now := time.Now()
	at, stale := s.rankTime(now)
	eps := rank(at, s.cfg.MaxEndpoints, make([]Endpoint, 0, s.cfg.MaxEndpoints))
	if len(eps) == 0 {
		msg := protocol.CodeNoGateway.String()
		if stale {
			msg += " (the registry has been unreachable for " + now.Sub(time.Unix(0, s.staleSince.Load())).Round(time.Second).String() + ")"
		}
		writeError(c, http.StatusServiceUnavailable, protocol.CodeNoGateway, msg)
		return
	}
	if stale {
		s.staleAnswers.Add(1)
	}
	tok, exp := s.signer.Issue(appID, id.DID, id.UID, now, id.Expires)
	writeJSON(c, http.StatusOK, listResponse{
		AppID: appID, DID: id.DID, UID: id.UID, Endpoints: eps, Token: tok, TokenExpiresAt: exp.Unix(), Stale: stale,
	})
}

// rankTime is the time gateways are ranked at, and whether the view is stale. A gateway whose
// last report is older than StaleAfter at that time is left out.
//
// It is when ipconf last heard from the registry (any event), not now: when every report stops at
// once, the registry has more likely gone than every gateway, so the gateways live then are
// handed out still, and any that reported since (NATS is back, the view is being rebuilt). A
// gateway that stops while others report is left out as before, and one that died is dropped by
// the registry a TTL later. Once the registry watch says it lost the registry (the view is
// stale), that holds for up to KeepStale; after that it is now again: a list that old is not
// worth more than an error, so only gateways heard from lately count.
func (s *Server) rankTime(now time.Time) (time.Time, bool) {
	stale := false
	if since := s.staleSince.Load(); since != 0 {
		stale = true
		if s.cfg.KeepStale < 0 || now.Sub(time.Unix(0, since)) > s.cfg.KeepStale {
			return now, true
		}
	}
	if heard := time.Unix(0, s.heardAt.Load()); heard.Before(now) {
		return heard, stale
	}
	return now, stale
}

// credentialOf is the device's credential: "Authorization: Bearer <credential>", or the token
// parameter for clients that cannot set headers (a browser's WebSocket, a mini-program).
func credentialOf(c *app.RequestContext) (string, string) {
	if h := c.Request.Header.Peek("Authorization"); len(h) > 0 {
		scheme, cred, ok := strings.Cut(string(h), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(cred) == "" {
			return "", `the Authorization header must be "Bearer <credential>"`
		}
		return strings.TrimSpace(cred), ""
	}
	if v := c.QueryArgs().Peek("token"); len(v) > 0 {
		return string(v), ""
	}
	return "", "a credential is required: Authorization: Bearer <the credential your app's backend issued>"
}

// reasonOf is what the device is told about a refused credential: the verifier's reason, never
// the credential itself.
func reasonOf(err error) string {
	var e *credential.Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return "the credential could not be verified"
}

// handleHealth answers GET /healthz. ipconf is healthy even with no gateway, or with the registry
// away: that is the gateways' or NATS' problem, which /ip/list reports with 503 or "stale".
func (s *Server) handleHealth(_ context.Context, c *app.RequestContext) {
	registry := "current"
	if s.staleSince.Load() != 0 {
		registry = "stale"
	}
	writeJSON(c, http.StatusOK, struct {
		Status   string `json:"status"`
		Gateways int    `json:"gateways"`
		Registry string `json:"registry"`
	}{"ok", s.scorer.Len(), registry})
}

// param returns query parameter name, or a message naming it if it is missing, empty, longer
// than MaxParamLen or not printable UTF-8.
func param(c *app.RequestContext, name string) (string, string) {
	v := c.QueryArgs().Peek(name)
	switch {
	case len(v) == 0:
		return "", name + " is required"
	case len(v) > MaxParamLen:
		return "", name + " is longer than 128 bytes"
	case !printable(v):
		return "", name + " must be printable UTF-8"
	}
	return string(v), ""
}

func printable(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 || !unicode.IsPrint(r) {
			return false
		}
		b = b[n:]
	}
	return true
}

func writeError(c *app.RequestContext, status int, code protocol.Code, msg string) {
	writeJSON(c, status, errorResponse{Error: errorBody{Code: code, Message: msg}})
}

// writeJSON encodes with encoding/json rather than Hertz's c.JSON, whose codec is chosen by build
// tags and CPU; the answer's bytes should not depend on that.
func writeJSON(c *app.RequestContext, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own fixed structs get here.
		c.AbortWithStatus(http.StatusInternalServerError)
		return
	}
	// Tokens are per device: no cache may keep an answer.
	c.Response.Header.Set("Cache-Control", "no-store")
	c.Data(status, "application/json; charset=utf-8", body)
}
