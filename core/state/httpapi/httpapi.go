// Package httpapi serves Plato's business API (service Plato of idl/plato.thrift) as HTTP/JSON,
// for business servers in any language (docs/business.md, "HTTP API"). It holds no logic of its
// own: each route decodes its JSON into the generated request, calls the handler the Kitex
// service runs, and encodes its answer; a refusal is the handler's Plato code with a matching HTTP
// status. The routes and bodies are described by openapi.json, served at GET /openapi.json.
package httpapi

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
)

// OpenAPI is the OpenAPI 3 document of the routes.
//
//go:embed openapi.json
var OpenAPI []byte

const (
	// MaxBody bounds a request body: a batch of MaxBatch small pushes fits, a flood does not.
	MaxBody = 1 << 20
	// MaxBatch bounds the messages of one /push/batch.
	MaxBatch = 1000
	// BatchConcurrency is how many messages of one batch are pushed at a time.
	BatchConcurrency = 16
	// DefaultMaxInflight bounds the requests served at once; beyond it a request is answered 503
	// with code 1303 at once, rather than queued without bound.
	DefaultMaxInflight = 1024
	// retryAfter is the Retry-After of a 503, in seconds.
	retryAfter = "1"
)

// Route is one route the server answers.
type Route struct {
	Method string
	// Path is the OpenAPI path template: /v1/apps/{app}/push.
	Path string
}

// ops are the calls under /v1/apps/{app}/, by the rest of their path.
var ops = map[string]string{
	"push": "Push", "push/batch": "Push", "bind": "Bind", "unbind": "Unbind", "kick": "Kick", "online": "Online",
}

const appPrefix = "/v1/apps/"

// Routes lists every route served, in a stable order.
func Routes() []Route {
	rs := []Route{{http.MethodGet, "/openapi.json"}}
	for _, op := range []string{"push", "push/batch", "bind", "unbind", "kick", "online"} {
		rs = append(rs, Route{http.MethodPost, appPrefix + "{app}/" + op})
	}
	return rs
}

// Config is what a Server needs.
type Config struct {
	// API runs the calls: the state server's handler of Plato's RPC. Required.
	API api.Plato
	// Apps holds each app's keys: a request without its app's key is refused before its body is
	// read. Required.
	Apps *apps.Table
	// PushTimeout is the longest one push may wait for ACKs (state.push_timeout); it sizes how
	// long an answer may take to write.
	PushTimeout time.Duration
	// MaxInflight bounds the requests served at once; 0 is DefaultMaxInflight.
	MaxInflight int
	// HeaderTimeout is how long a request's headers may take to arrive, and BodyTimeout the whole
	// request: a client that sends slowly (slowloris) is cut off. 0 is 5s and 30s.
	HeaderTimeout, BodyTimeout time.Duration
	// Count, when set, is told the outcome of every call: its Kitex method name, and the code it
	// was refused with (-1 for a failure without one).
	Count func(method string, code int, refused bool)
	Log   *slog.Logger
}

// Server is the HTTP API on one listener.
type Server struct {
	cfg      Config
	log      *slog.Logger
	inflight chan struct{}
	srv      *http.Server
	ln       net.Listener
	done     chan struct{}
}

// New prepares a server; Handler serves it, or Serve on a listener.
func New(cfg Config) (*Server, error) {
	if cfg.API == nil || cfg.Apps == nil {
		return nil, errors.New("httpapi: API and Apps are required")
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = 5 * time.Second
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = 30 * time.Second
	}
	return &Server{cfg: cfg, log: cfg.Log, inflight: make(chan struct{}, cfg.MaxInflight)}, nil
}

// Start listens on addr and serves until Shutdown.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("state.http_addr: listening on %s: %w", addr, err)
	}
	s.Serve(ln)
	return nil
}

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) {
	// A batch pushes its messages BatchConcurrency at a time, each waiting at most PushTimeout.
	write := s.cfg.PushTimeout*time.Duration(MaxBatch/BatchConcurrency+1) + 10*time.Second
	s.ln, s.done = ln, make(chan struct{})
	s.srv = &http.Server{
		Handler: s,
		// A client that sends its request slowly (slowloris) is cut off, not waited for.
		ReadHeaderTimeout: s.cfg.HeaderTimeout,
		ReadTimeout:       s.cfg.BodyTimeout,
		WriteTimeout:      write,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("HTTP API server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

// Addr is the listen address; "" before Serve.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops accepting requests and waits, until ctx ends, for those being served.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	return err
}

// ServeHTTP routes a request, checks its key and size, and runs its call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &recorder{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("HTTP API handler panicked", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			if !rw.wrote {
				writeError(rw, http.StatusInternalServerError, protocol.CodeInternal, "internal error")
			}
		}
	}()
	if r.URL.Path == "/openapi.json" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(rw, "GET, HEAD")
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write(OpenAPI)
		return
	}
	app, op, ok := parsePath(r.URL.Path)
	if !ok {
		writeError(rw, http.StatusNotFound, protocol.CodeInvalidArgument, "no route "+r.URL.Path+" (GET /openapi.json lists them)")
		return
	}
	if r.Method != http.MethodPost {
		methodNotAllowed(rw, "POST")
		return
	}
	// Refusals before the handler count like its own, so plato_state_api_calls_total shows wrong
	// keys and overload whichever way business servers call.
	method := ops[op]
	select {
	case s.inflight <- struct{}{}:
		defer func() { <-s.inflight }()
	default:
		s.refused(method, protocol.CodeOverloaded)
		rw.Header().Set("Retry-After", retryAfter)
		writeError(rw, http.StatusServiceUnavailable, protocol.CodeOverloaded, "too many requests in flight; retry later")
		return
	}
	a := s.cfg.Apps.Get(app)
	if a == nil {
		s.refused(method, protocol.CodeAppMismatch)
		writeError(rw, http.StatusNotFound, protocol.CodeAppMismatch, fmt.Sprintf("app %q is not configured", app))
		return
	}
	key, ok := bearer(r.Header.Get("Authorization"))
	if !ok || !a.CheckKey(key) {
		s.refused(method, protocol.CodeAppMismatch)
		rw.Header().Set("WWW-Authenticate", `Bearer realm="plato"`)
		writeError(rw, http.StatusUnauthorized, protocol.CodeAppMismatch, fmt.Sprintf("missing or wrong key for app %q: send Authorization: Bearer <one of apps.%s.keys>", app, app))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		s.refused(method, protocol.CodeInvalidArgument)
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(rw, http.StatusRequestEntityTooLarge, protocol.CodeInvalidArgument, fmt.Sprintf("the body exceeds %d bytes", MaxBody))
			return
		}
		writeError(rw, http.StatusBadRequest, protocol.CodeInvalidArgument, "reading the body: "+err.Error())
		return
	}
	c := &api.Caller{AppId: app, Key: key}
	status, resp := s.call(r.Context(), op, method, c, body)
	if status == http.StatusServiceUnavailable {
		rw.Header().Set("Retry-After", retryAfter)
	}
	writeJSON(rw, status, resp)
}

// parsePath splits /v1/apps/{app}/{op} into the app and the op.
func parsePath(p string) (app, op string, ok bool) {
	rest, found := strings.CutPrefix(p, appPrefix)
	if !found {
		return "", "", false
	}
	app, op, found = strings.Cut(rest, "/")
	if !found || app == "" {
		return "", "", false
	}
	if _, known := ops[op]; !known {
		return "", "", false
	}
	return app, op, true
}

// bearer is the token of an Authorization: Bearer header.
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// call decodes body for op, runs it and says what to answer.
func (s *Server) call(ctx context.Context, op, method string, c *api.Caller, body []byte) (int, any) {
	switch op {
	case "push":
		var b pushBody
		if err := decode(body, &b); err != nil {
			return s.badRequest(method, err)
		}
		item := s.push(ctx, c, &b)
		if item.Error != nil {
			return statusOf(item.Error.Code), errorBody{*item.Error}
		}
		return http.StatusOK, item.Push
	case "push/batch":
		var b batchBody
		if err := decode(body, &b); err != nil {
			return s.badRequest(method, err)
		}
		switch {
		case len(b.Messages) == 0:
			return s.badRequest(method, errors.New("messages is empty"))
		case len(b.Messages) > MaxBatch:
			return s.badRequest(method, fmt.Errorf("%d messages exceed the maximum of %d per batch", len(b.Messages), MaxBatch))
		}
		return http.StatusOK, s.batch(ctx, c, b.Messages)
	case "bind":
		var b bindBody
		if err := decode(body, &b); err != nil {
			return s.badRequest(method, err)
		}
		resp, err := s.cfg.API.Bind(ctx, &api.BindRequest{Caller: c, Session: b.Session, Dids: b.Dids, Replace: b.Replace})
		if err != nil {
			return s.failed("Bind", err)
		}
		s.count("Bind", nil)
		return http.StatusOK, bindResult{Offline: nonNil(resp.Offline), Members: resp.Members}
	case "unbind":
		var b unbindBody
		if err := decode(body, &b); err != nil {
			return s.badRequest(method, err)
		}
		resp, err := s.cfg.API.Unbind(ctx, &api.UnbindRequest{Caller: c, Session: b.Session, Dids: b.Dids, All: b.All})
		if err != nil {
			return s.failed("Unbind", err)
		}
		s.count("Unbind", nil)
		return http.StatusOK, unbindResult{Members: resp.Members}
	case "kick":
		var b kickBody
		if err := decode(body, &b); err != nil {
			return s.badRequest(method, err)
		}
		resp, err := s.cfg.API.Kick(ctx, &api.KickRequest{Caller: c, Dids: b.Dids, Message: b.Message})
		if err != nil {
			return s.failed("Kick", err)
		}
		s.count("Kick", nil)
		return http.StatusOK, kickResult{Kicked: nonNil(resp.Kicked)}
	case "online":
		var b onlineBody
		if err := decode(body, &b); err != nil {
			return s.badRequest(method, err)
		}
		resp, err := s.cfg.API.Online(ctx, &api.OnlineRequest{Caller: c, Session: b.Session, Dids: b.Dids})
		if err != nil {
			return s.failed("Online", err)
		}
		s.count("Online", nil)
		return http.StatusOK, onlineJSON(resp)
	}
	return http.StatusNotFound, errorBody{apiError{int32(protocol.CodeInvalidArgument), "no route for " + op}}
}

// push runs one push, of a request or of a batch.
func (s *Server) push(ctx context.Context, c *api.Caller, b *pushBody) batchItem {
	req, err := b.request(c)
	if err != nil {
		s.refused("Push", protocol.CodeInvalidArgument)
		return batchItem{Error: &apiError{int32(protocol.CodeInvalidArgument), err.Error()}}
	}
	resp, err := s.cfg.API.Push(ctx, req)
	s.count("Push", err)
	if err != nil {
		return batchItem{Error: s.refusal("Push", err)}
	}
	return batchItem{Push: pushJSON(resp)}
}

// batch pushes each message through the same path as /push, BatchConcurrency at a time, and
// answers one result per message in their order.
func (s *Server) batch(ctx context.Context, c *api.Caller, msgs []json.RawMessage) batchResult {
	out := batchResult{Results: make([]batchItem, len(msgs))}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(BatchConcurrency, len(msgs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out.Results[i] = s.batchOne(ctx, c, i, msgs[i])
			}
		}()
	}
	for i := range msgs {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

func (s *Server) batchOne(ctx context.Context, c *api.Caller, i int, raw json.RawMessage) (item batchItem) {
	defer func() {
		// A panic in one message's push must not take the process down from this goroutine.
		if v := recover(); v != nil {
			s.log.Error("HTTP API batch push panicked", "message", i, "panic", v, "stack", string(debug.Stack()))
			item = batchItem{Error: &apiError{int32(protocol.CodeInternal), "internal error"}}
		}
	}()
	var b pushBody
	if err := decode(raw, &b); err != nil {
		s.refused("Push", protocol.CodeInvalidArgument)
		return batchItem{Error: &apiError{int32(protocol.CodeInvalidArgument), fmt.Sprintf("messages[%d]: %v", i, err)}}
	}
	return s.push(ctx, c, &b)
}

func (s *Server) badRequest(method string, err error) (int, any) {
	s.refused(method, protocol.CodeInvalidArgument)
	return http.StatusBadRequest, errorBody{apiError{int32(protocol.CodeInvalidArgument), "decoding the body: " + err.Error()}}
}

// failed answers a call the handler refused.
func (s *Server) failed(method string, err error) (int, any) {
	s.count(method, err)
	e := s.refusal(method, err)
	return statusOf(e.Code), errorBody{*e}
}

// refusal is the error body of a handler's error: its Plato code, or 1307 for an error without
// one, which is a bug and logged as such.
func (s *Server) refusal(method string, err error) *apiError {
	var pe *api.PlatoError
	if errors.As(err, &pe) {
		return &apiError{pe.Code, pe.Message}
	}
	s.log.Error("HTTP API call failed", "method", method, "err", err)
	return &apiError{int32(protocol.CodeInternal), "internal error"}
}

// refused counts a call refused with code before it reached the handler.
func (s *Server) refused(method string, code protocol.Code) {
	if s.cfg.Count != nil {
		s.cfg.Count(method, int(code), true)
	}
}

func (s *Server) count(method string, err error) {
	if s.cfg.Count == nil {
		return
	}
	if err == nil {
		s.cfg.Count(method, 0, false)
		return
	}
	var pe *api.PlatoError
	if errors.As(err, &pe) {
		s.cfg.Count(method, int(pe.Code), true)
		return
	}
	s.cfg.Count(method, -1, true)
}

// statusOf is the HTTP status of a refusal with code: what a generic HTTP client would make of it.
func statusOf(code int32) int {
	switch protocol.Code(code) {
	case protocol.CodeInvalidArgument:
		return http.StatusBadRequest
	case protocol.CodeAppMismatch:
		return http.StatusUnauthorized
	case protocol.CodeOverloaded, protocol.CodePipelineFailed:
		return http.StatusServiceUnavailable
	case protocol.CodeRateLimited:
		return http.StatusTooManyRequests
	case protocol.CodeInternal:
		return http.StatusInternalServerError
	}
	// A pipeline stage refused the push: 1104 by default, or a business code of its own.
	return http.StatusForbidden
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, protocol.CodeInvalidArgument, "method not allowed; use "+allow)
}

func writeError(w http.ResponseWriter, status int, code protocol.Code, msg string) {
	writeJSON(w, status, errorBody{apiError{int32(code), msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Messages quote <placeholders>, and nobody renders these bodies as HTML.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// The bodies are plain structs: this is a bug.
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"code":1307,"message":"encoding the answer failed"}}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// recorder notes whether the answer has begun, so a recovered panic does not write a second one.
type recorder struct {
	http.ResponseWriter
	wrote bool
}

func (r *recorder) WriteHeader(status int) {
	r.wrote = true
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}
