package business

import (
	"context"
	"errors"
	"runtime/debug"
	"time"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// Credential is what a device presented to ipconf, for an app whose devices Plato authenticates
// by asking you (apps.<app>.auth.callback).
type Credential struct {
	AppID string
	// DID is the device the request claims to be.
	DID string
	// Token is whatever the device sent: your session token, a cookie value, a JWT of yours.
	Token      string
	RemoteAddr string
}

// Identity is who you say a device is. Plato binds it into the gateway token it issues, and the
// device can be no one else on that token.
type Identity struct {
	// UID is the device's user; required.
	UID string
	// DID is the device; empty means the DID it claimed.
	DID string
	// Expires is when the credential stops vouching for the device: the gateway token expires
	// then at the latest. Zero: Plato's own token lifetime.
	Expires time.Time
}

// Authenticate answers Plato's connect callback with the Authenticate handler.
func (s *service) Authenticate(ctx context.Context, req *api.AuthenticateRequest) (resp *api.AuthenticateResponse, err error) {
	if s.h.Authenticate == nil {
		return &api.AuthenticateResponse{Code: CodeRefused, Message: "this business server authenticates no device"}, nil
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("business: Authenticate handler panicked; refusing the device", "app", req.AppId,
				"did", req.Did, "panic", p, "stack", string(debug.Stack()))
			resp, err = &api.AuthenticateResponse{Code: CodeRefused, Message: "internal error"}, nil
		}
	}()
	id, herr := s.h.Authenticate(ctx, Credential{AppID: req.AppId, DID: req.Did, Token: req.Credential, RemoteAddr: req.RemoteAddr})
	if herr != nil {
		var r *Refusal
		if errors.As(herr, &r) {
			return &api.AuthenticateResponse{Code: businessCode(r.Code), Message: r.Message}, nil
		}
		// As for uplinks: the device learns only that it was refused.
		s.log.Error("business: Authenticate handler failed; refusing the device", "app", req.AppId, "did", req.Did, "err", herr)
		return &api.AuthenticateResponse{Code: CodeRefused, Message: "internal error"}, nil
	}
	if id.UID == "" {
		s.log.Error("business: Authenticate accepted a device without a UID; refusing it", "app", req.AppId, "did", req.Did)
		return &api.AuthenticateResponse{Code: CodeRefused, Message: "internal error"}, nil
	}
	out := &api.AuthenticateResponse{Uid: id.UID, Did: id.DID}
	if !id.Expires.IsZero() {
		out.ExpiresAt = id.Expires.Unix()
	}
	return out, nil
}
