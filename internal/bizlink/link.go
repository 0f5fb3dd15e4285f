// Package bizlink is how Plato calls an app's business server: Deliver (uplinks and events),
// Sessions and Authenticate, over Kitex or as signed HTTP webhooks, balanced over the app's
// endpoints. The state server and ipconf see one Link per app and never the transport.
package bizlink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// Link is one app's business server, however it is reached. Errors are Kitex errors (kerrors)
// for both transports, so callers classify them one way: a timeout is kerrors.ErrRPCTimeout, an
// endpoint that could not be reached kerrors.ErrGetConnection, a bad answer
// kerrors.ErrRemoteOrNetwork.
type Link interface {
	Deliver(ctx context.Context, req *api.DeliverRequest) (*api.DeliverResponse, error)
	Sessions(ctx context.Context, req *api.SessionsRequest) (*api.SessionsResponse, error)
	Authenticate(ctx context.Context, req *api.AuthenticateRequest) (*api.AuthenticateResponse, error)
	// Close releases idle connections; calls in flight finish.
	Close()
}

// Options are what a Link needs.
type Options struct {
	App string
	// Endpoints are Kitex addresses or webhook URLs, all of one kind (config.App.Endpoints).
	Endpoints []string
	// Secret signs webhooks (apps.<app>.webhook_secret).
	Secret string
	// Timeout bounds each call to one endpoint (state.business.timeout).
	Timeout time.Duration
}

// New makes the link of an app: one client per endpoint, balanced.
func New(o Options) (Link, error) {
	if len(o.Endpoints) == 0 {
		return nil, fmt.Errorf("apps.%s: no business endpoint", o.App)
	}
	if o.Timeout <= 0 {
		o.Timeout = config.DefaultBusinessTimeout
	}
	eps := make([]Link, 0, len(o.Endpoints))
	for _, ep := range o.Endpoints {
		var l Link
		var err error
		if config.IsWebhook(ep) {
			l, err = NewWebhook(o.App, ep, o.Secret, o.Timeout)
		} else {
			l, err = newKitex(ep, o.Timeout)
		}
		if err != nil {
			for _, e := range eps {
				e.Close()
			}
			return nil, fmt.Errorf("apps.%s business endpoint %s: %w", o.App, ep, err)
		}
		eps = append(eps, l)
	}
	if len(eps) == 1 {
		return eps[0], nil
	}
	return newBalanced(eps), nil
}

// errNoEndpoint is returned by a balanced link with no endpoint, which New never makes.
var errNoEndpoint = errors.New("bizlink: no endpoint")
