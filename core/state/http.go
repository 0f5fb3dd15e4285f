package state

import (
	"context"
	"time"

	"github.com/platoim/plato/core/state/httpapi"
)

// startHTTP serves Plato's RPC as HTTP/JSON at state.http_addr (docs/business.md, "HTTP API"),
// through the same handler as the Kitex service: the same checks, keys and isolation. Its calls
// count in plato_state_api_calls_total with the Kitex ones.
func (s *Server) startHTTP() error {
	if s.cfg.HTTPAddr == "" {
		return nil
	}
	h, err := httpapi.New(httpapi.Config{
		API: &apiHandler{s}, Apps: s.cfg.Apps, PushTimeout: s.cfg.PushTimeout,
		Count: s.apiCalls.Add, Log: s.log.With("listener", "http"),
	})
	if err != nil {
		return err
	}
	if err := h.Start(s.cfg.HTTPAddr); err != nil {
		return err
	}
	s.http = h
	return nil
}

// HTTPAddr is the HTTP API's listen address; "" without one.
func (s *Server) HTTPAddr() string {
	if s.http == nil {
		return ""
	}
	return s.http.Addr()
}

// stopHTTP stops taking HTTP calls and lets those in flight finish, for at most a push's wait.
func (s *Server) stopHTTP() {
	if s.http == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.PushTimeout+time.Second)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		s.log.Warn("stopping the HTTP API", "err", err)
	}
}
