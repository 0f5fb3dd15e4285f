package gateway

import (
	"context"
	"slices"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
)

// Sessions applies the state server's session changes to the local index, in order. A connection
// this gateway no longer holds is reported once in Gone; its changes are ignored.
func (h *pushHandler) Sessions(_ context.Context, req *fleet.SessionsRequest) (*fleet.SessionsResponse, error) {
	if err := h.gw.checkState(req.StateId, req.Proof); err != nil {
		return nil, err
	}
	resp := &fleet.SessionsResponse{}
	h.gw.ho.pushMu.RLock()
	defer h.gw.ho.pushMu.RUnlock()
	h.gw.applySessions(req.StateId, h.gw.forwardHandedSessions(req.StateId, req.Changes), resp)
	return resp, nil
}

// applySessions applies session changes in order, and notes in resp the connections gone or moved.
func (gw *Gateway) applySessions(stateID string, changes []*fleet.SessionChange, resp *fleet.SessionsResponse) {
	h := &pushHandler{gw}
	var reported map[int64]struct{}
	for _, ch := range changes {
		if ch == nil || ch.Session == "" {
			// Nothing can be broadcast to an unnamed session, so there is nothing to index.
			continue
		}
		held := false
		if c := h.gw.conns.get(uint64(ch.ConnId)); c != nil {
			if !c.ownedBy(stateID) {
				if !slices.Contains(resp.Moved, ch.ConnId) {
					resp.Moved = append(resp.Moved, ch.ConnId)
				}
				continue
			}
			if ch.Join {
				held = h.gw.joinSession(c, ch.Session)
			} else {
				held = h.gw.leaveSession(c, ch.Session)
			}
		}
		if held {
			continue
		}
		if _, dup := reported[ch.ConnId]; !dup {
			if reported == nil {
				reported = make(map[int64]struct{})
			}
			reported[ch.ConnId] = struct{}{}
			resp.Gone = append(resp.Gone, ch.ConnId)
		}
	}
}

// ownedBy reports whether state server stateID may change c: it is the one c's events go to.
func (c *conn) ownedBy(stateID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.link == nil || c.link.id == stateID
}

// joinSession puts c in session (again: a no-op). It reports false when c is gone: closed, or
// never forwarded a Login, so it has no app ID and no state server knows it. A connection whose
// login is pending may join, since the state server binds sessions before it sends LOGIN_OK; it
// receives broadcasts once logged in.
func (gw *Gateway) joinSession(c *conn, session string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.appID() == "" {
		return false
	}
	// A linear scan: a connection is in a handful of sessions, and a slice costs less than a map.
	if slices.Contains(c.sessionsLocked(), session) {
		return true
	}
	k := c.coldLocked()
	k.sessions = append(k.sessions, session)
	// Under c.mu, so onClose, which takes c.mu before leaving every session, cannot miss this one.
	gw.sessions.add(sessionKey(c.appID(), session), c)
	return true
}

// leaveSession takes c out of session (not in it: a no-op). It reports false when c is closed.
func (gw *Gateway) leaveSession(c *conn, session string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	i := slices.Index(c.sessionsLocked(), session)
	if i < 0 {
		return true
	}
	k := c.cold
	k.sessions = slices.Delete(k.sessions, i, i+1)
	if len(k.sessions) == 0 {
		k.sessions = nil
		c.trimColdLocked()
	}
	gw.sessions.remove(sessionKey(c.appID(), session), c)
	return true
}

// leaveAllSessions runs once the connection is marked closed, whoever closed it, so the index never
// keeps a closed connection. sessions is what c held when it was marked.
func (gw *Gateway) leaveAllSessions(c *conn, appID string, sessions []string) {
	for _, s := range sessions {
		gw.sessions.remove(sessionKey(appID, s), c)
	}
}

// SessionMembers returns the IDs of this gateway's connections in the session of appID, in
// ascending order; nil when it has none. It reads the local index that broadcasts are fanned out
// through (logged-in connections and those whose login is pending), for tests and diagnostics.
func (gw *Gateway) SessionMembers(appID, session string) []uint64 {
	members := gw.sessions.members(sessionKey(appID, session))
	if len(members) == 0 {
		return nil
	}
	ids := make([]uint64, 0, len(members))
	for _, c := range members {
		ids = append(ids, c.id)
	}
	slices.Sort(ids)
	return ids
}
