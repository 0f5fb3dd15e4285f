package business

import (
	"context"
	"fmt"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// BindResult says how a Bind or SetMembers went.
type BindResult struct {
	// Offline are the dids that had no logged-in connection, so were not bound. Bindings follow
	// connections: have your Sessions handler return the session, and the sessionbind stage binds
	// the device when it logs in.
	Offline []string
	// Members is how many connections the session has after the call.
	Members int
}

// Bind makes the logged-in connections of dids join session. A connection leaves its sessions when
// it closes.
func (c *Client) Bind(ctx context.Context, session string, dids ...string) (BindResult, error) {
	return c.bind(ctx, session, dids, false, fmt.Sprintf("binding %d dids to session %q", len(dids), session))
}

// SetMembers makes the session's members exactly the logged-in connections of dids: the others leave.
func (c *Client) SetMembers(ctx context.Context, session string, dids []string) (BindResult, error) {
	return c.bind(ctx, session, dids, true, fmt.Sprintf("setting the %d members of session %q", len(dids), session))
}

func (c *Client) bind(ctx context.Context, session string, dids []string, replace bool, what string) (BindResult, error) {
	args := &api.PlatoBindArgs{Req: &api.BindRequest{Caller: c.caller(), Session: session, Dids: dids, Replace: replace}}
	res := &api.PlatoBindResult{}
	if err := c.call(ctx, "Bind", what, args, res); err != nil {
		return BindResult{}, err
	}
	resp := res.GetSuccess()
	if resp == nil {
		return BindResult{}, nil
	}
	return BindResult{Offline: resp.Offline, Members: int(resp.Members)}, nil
}

// Unbind makes dids leave session, and returns how many members it has left.
func (c *Client) Unbind(ctx context.Context, session string, dids ...string) (int, error) {
	return c.unbind(ctx, &api.UnbindRequest{Caller: c.caller(), Session: session, Dids: dids},
		fmt.Sprintf("unbinding %d dids from session %q", len(dids), session))
}

// Dissolve makes every member leave session.
func (c *Client) Dissolve(ctx context.Context, session string) error {
	_, err := c.unbind(ctx, &api.UnbindRequest{Caller: c.caller(), Session: session, All: true},
		fmt.Sprintf("dissolving session %q", session))
	return err
}

func (c *Client) unbind(ctx context.Context, req *api.UnbindRequest, what string) (int, error) {
	res := &api.PlatoUnbindResult{}
	if err := c.call(ctx, "Unbind", what, &api.PlatoUnbindArgs{Req: req}, res); err != nil {
		return 0, err
	}
	if resp := res.GetSuccess(); resp != nil {
		return int(resp.Members), nil
	}
	return 0, nil
}
