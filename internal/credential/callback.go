package credential

import (
	"context"
	"time"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
)

// Callback has the app's business server decide who a device is (Business.Authenticate): for apps
// whose devices carry a credential only the business understands (a session token, a cookie).
type Callback struct {
	app string
	cli Authenticator
}

var _ Verifier = (*Callback)(nil)

// Authenticator is the business server's Authenticate call, over Kitex or a webhook
// (bizlink.Link); its errors are Kitex errors.
type Authenticator interface {
	Authenticate(ctx context.Context, req *api.AuthenticateRequest) (*api.AuthenticateResponse, error)
}

// NewCallback asks the app's business server through cli.
func NewCallback(app string, cli Authenticator) *Callback {
	return &Callback{app: app, cli: cli}
}

// Verify asks the business. A business that cannot be reached refuses the device with 1301 (or
// 1302 when it answered too late): the device retries, as it would for an uplink.
func (c *Callback) Verify(ctx context.Context, req Request) (Identity, error) {
	if len(req.Credential) > MaxLen {
		return Identity{}, refuse(protocol.CodeTokenInvalid, "the credential is longer than %d bytes", MaxLen)
	}
	if req.Credential == "" {
		return Identity{}, refuse(protocol.CodeTokenInvalid, "no credential")
	}
	resp, err := c.cli.Authenticate(ctx, &api.AuthenticateRequest{
		AppId: c.app, Did: req.DID, Credential: req.Credential, RemoteAddr: req.RemoteAddr,
	})
	if err != nil {
		if rpc.KindOf(err) == rpc.ErrTimeout {
			return Identity{}, refuse(protocol.CodeBusinessTimeout, "the business server did not answer in time")
		}
		return Identity{}, refuse(protocol.CodeBusinessUnavailable, "the business server could not be asked")
	}
	if resp.Code != 0 {
		code := protocol.Code(resp.Code)
		if code < 2000 || code > 2999 {
			code = 2000
		}
		return Identity{}, refuse(code, "%s", resp.Message)
	}
	id := Identity{UID: resp.Uid, DID: resp.Did}
	if id.DID == "" {
		id.DID = req.DID
	}
	if e := checkID("uid", id.UID); e != nil {
		return Identity{}, refuse(protocol.CodeBusinessUnavailable, "the business server answered no valid uid")
	}
	if e := checkID("did", id.DID); e != nil {
		return Identity{}, refuse(protocol.CodeBusinessUnavailable, "the business server answered no valid did")
	}
	if resp.ExpiresAt > 0 {
		id.Expires = time.Unix(resp.ExpiresAt, 0)
	}
	return id, nil
}
