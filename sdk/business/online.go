package business

import (
	"context"
	"fmt"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// Device is one logged-in connection of a device. Handlers.Sessions gets it at login (AppID and
// Platform set, RemoteAddr and Sessions not); Online returns it (RemoteAddr and Sessions set, AppID
// and Platform not).
type Device struct {
	AppID string
	DID   string
	UID   string
	// ConnID tells connections of the same did apart (a device that reconnected).
	ConnID    int64
	GatewayID string
	// Platform is what the device said it runs on at login (e.g. "ios/17").
	Platform   string
	RemoteAddr string
	// Sessions the connection is a member of.
	Sessions []string
}

// Kick closes the connections of dids; the devices get Close 1202 with message. It returns the dids
// whose connection was closed; the rest were not online.
func (c *Client) Kick(ctx context.Context, message string, dids ...string) ([]string, error) {
	args := &api.PlatoKickArgs{Req: &api.KickRequest{Caller: c.caller(), Dids: dids, Message: message}}
	res := &api.PlatoKickResult{}
	if err := c.call(ctx, "Kick", fmt.Sprintf("kicking %d dids", len(dids)), args, res); err != nil {
		return nil, err
	}
	if resp := res.GetSuccess(); resp != nil {
		return resp.Kicked, nil
	}
	return nil, nil
}

// Online returns the logged-in members of session.
func (c *Client) Online(ctx context.Context, session string) ([]Device, error) {
	return c.online(ctx, &api.OnlineRequest{Caller: c.caller(), Session: session},
		fmt.Sprintf("asking who is online in session %q", session))
}

// OnlineDIDs returns the logged-in connections of dids; a did that is offline is left out.
func (c *Client) OnlineDIDs(ctx context.Context, dids ...string) ([]Device, error) {
	return c.online(ctx, &api.OnlineRequest{Caller: c.caller(), Dids: dids},
		fmt.Sprintf("asking which of %d dids are online", len(dids)))
}

func (c *Client) online(ctx context.Context, req *api.OnlineRequest, what string) ([]Device, error) {
	res := &api.PlatoOnlineResult{}
	if err := c.call(ctx, "Online", what, &api.PlatoOnlineArgs{Req: req}, res); err != nil {
		return nil, err
	}
	resp := res.GetSuccess()
	if resp == nil {
		return nil, nil
	}
	out := make([]Device, 0, len(resp.Devices))
	for _, d := range resp.Devices {
		if d == nil {
			continue
		}
		out = append(out, Device{
			DID: d.Did, UID: d.Uid, GatewayID: d.GatewayId, ConnID: d.ConnId,
			RemoteAddr: d.RemoteAddr, Sessions: d.Sessions,
		})
	}
	return out, nil
}
