package business

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// service adapts Handlers to the generated Business interface.
type service struct {
	h   Handlers
	log *slog.Logger
}

var _ api.Business = (*service)(nil)

// Deliver handles a batch's events in order and answers one result per event.
func (s *service) Deliver(ctx context.Context, req *api.DeliverRequest) (*api.DeliverResponse, error) {
	// One allocation for the results: accepted ones stay zero.
	vals := make([]api.Result_, len(req.GetEvents()))
	results := make([]*api.Result_, len(vals))
	for i, ev := range req.GetEvents() {
		results[i] = &vals[i]
		if ev == nil {
			continue
		}
		if ev.Kind == api.EventKind_UPLINK {
			vals[i].Code, vals[i].Message = s.uplink(ctx, ev)
			continue
		}
		s.notify(ctx, ev)
	}
	return &api.DeliverResponse{Results: results}, nil
}

// uplink runs the Uplink handler and turns its answer into a result code and message.
func (s *service) uplink(ctx context.Context, ev *api.Event) (code int32, msg string) {
	if s.h.Uplink == nil {
		return 0, ""
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("business: Uplink handler panicked; refusing the uplink", "app", ev.AppId,
				"did", ev.Did, "seq", ev.Seq, "panic", p, "stack", string(debug.Stack()))
			code, msg = CodeRefused, "internal error"
		}
	}()
	err := s.h.Uplink(ctx, Uplink{
		AppID: ev.AppId, DID: ev.Did, UID: ev.Uid, ConnID: ev.ConnId, Seq: ev.Seq,
		GatewayID: ev.GatewayId, Payload: ev.Payload, TraceParent: ev.Traceparent,
	})
	if err == nil {
		return 0, ""
	}
	var r *Refusal
	if errors.As(err, &r) {
		return businessCode(r.Code), r.Message
	}
	// The error may say things about the business's internals that the device has no business
	// seeing: log it, tell the device only that it failed.
	s.log.Error("business: Uplink handler failed; refusing the uplink", "app", ev.AppId, "did", ev.Did,
		"seq", ev.Seq, "err", err)
	return CodeRefused, "internal error"
}

// notify runs the handler of a notification; unknown kinds are ignored, as a newer Plato may send them.
func (s *service) notify(ctx context.Context, ev *api.Event) {
	var h func(context.Context, Event)
	switch ev.Kind {
	case api.EventKind_CONNECTED:
		h = s.h.Connected
	case api.EventKind_DISCONNECTED:
		h = s.h.Disconnected
	case api.EventKind_UNDELIVERED:
		h = s.h.Undelivered
	case api.EventKind_RESUMED:
		h = s.h.Resumed
	}
	if h == nil {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("business: event handler panicked", "kind", EventKind(ev.Kind), "app", ev.AppId,
				"did", ev.Did, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	h(ctx, Event{
		Kind: EventKind(ev.Kind), AppID: ev.AppId, DID: ev.Did, UID: ev.Uid, ConnID: ev.ConnId,
		GatewayID: ev.GatewayId, Reason: int(ev.Reason), MsgID: ev.MsgId, Seq: ev.Seq, Attempts: int(ev.Attempts),
	})
}

// Sessions answers which sessions a logging-in device joins.
func (s *service) Sessions(ctx context.Context, req *api.SessionsRequest) (resp *api.SessionsResponse, err error) {
	if s.h.Sessions == nil {
		return &api.SessionsResponse{}, nil
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("business: Sessions handler panicked", "app", req.AppId, "did", req.Did,
				"panic", p, "stack", string(debug.Stack()))
			resp, err = nil, fmt.Errorf("sessions of %s/%s: handler panicked", req.AppId, req.Did)
		}
	}()
	sessions, err := s.h.Sessions(ctx, Device{
		AppID: req.AppId, DID: req.Did, UID: req.Uid, ConnID: req.ConnId, GatewayID: req.GatewayId,
		Platform: req.Platform,
	})
	if err != nil {
		return nil, fmt.Errorf("sessions of %s/%s: %w", req.AppId, req.Did, err)
	}
	return &api.SessionsResponse{Sessions: sessions}, nil
}
