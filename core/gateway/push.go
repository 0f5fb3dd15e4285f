package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/protocol"
)

// pushHandler is the gateway's Kitex service: the state server's frames for devices.
type pushHandler struct{ gw *Gateway }

var _ fleet.Gateway = (*pushHandler)(nil)

// Push queues each frame on its connection; connections this gateway no longer holds are
// reported back so the state server forgets them.
func (h *pushHandler) Push(_ context.Context, req *fleet.PushRequest) (*fleet.PushResponse, error) {
	if err := h.gw.checkState(req.StateId, req.Proof); err != nil {
		return nil, err
	}
	resp := &fleet.PushResponse{}
	// Shared with a handover passing connections (handover.go): frames of those already passed
	// are forwarded to the new process.
	h.gw.ho.pushMu.RLock()
	defer h.gw.ho.pushMu.RUnlock()
	h.gw.pushFrames(req.StateId, h.gw.forwardHanded(req.StateId, req.Frames), resp)
	return resp, nil
}

// pushFrames queues a state server's frames on their connections, and notes in resp those gone
// or moved.
func (gw *Gateway) pushFrames(stateID string, frames []*fleet.DownFrame, resp *fleet.PushResponse) {
	h := &pushHandler{gw}
	now := time.Now()
	gone := func(id int64) {
		// Not one closed a moment ago: its close event, with its code, tells the state server,
		// and "gone" would get there first and end it as lost (1211).
		if !h.gw.closedIDs.has(uint64(id), now) {
			resp.Gone = append(resp.Gone, id)
		}
	}
	for _, f := range frames {
		c := h.gw.conns.get(uint64(f.ConnId))
		if c == nil {
			gone(f.ConnId)
			continue
		}
		if f.Action == fleet.DownAction_LOGIN_OK {
			accepted, ok := c.enqueueLogin(f)
			if accepted {
				// key is set before the login is forwarded and never changes after.
				h.gw.conns.bindDID(c.key, c)
				if protocol.Signal(f.Signal) == protocol.SigResumeAck {
					h.gw.metrics.resumes.Add(int(protocol.CodeOK))
				} else {
					h.gw.metrics.logins.Add(int(protocol.CodeOK))
				}
			}
			if !ok {
				gone(f.ConnId)
			}
			continue
		}
		if f.Action == fleet.DownAction_RESUME_REFUSED {
			if !h.gw.refuseResume(c, f) {
				gone(f.ConnId)
			}
			continue
		}
		ok, moved, refused := c.enqueueFromState(stateID, f)
		if refused {
			// A LoginAck that closes a login still pending is the state server refusing it.
			h.gw.metrics.logins.Add(int(closeCode(f)))
		}
		switch {
		case moved:
			resp.Moved = append(resp.Moved, f.ConnId)
		case !ok:
			gone(f.ConnId)
		}
	}
}

// checkState refuses a call that does not prove it comes from a state server of the fleet: in a
// fleet the gateway's RPC address is on the network, and only state servers may write to devices.
func (gw *Gateway) checkState(stateID, proof string) error {
	if gw.stateAuth == nil {
		return nil
	}
	if err := gw.stateAuth.Verify(stateID, proof); err != nil {
		gw.metrics.rpcRefused.Add(1)
		return fmt.Errorf("call from state server %q refused: %w", stateID, err)
	}
	return nil
}
