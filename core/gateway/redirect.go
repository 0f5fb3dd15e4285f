package gateway

import (
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/protocol"
)

// redirectTargets lists the device endpoints of the other live gateways that take logins (not
// draining), least loaded first: where a redirected device should go. Overloaded gateways come
// last, and only when no other remains; the list is empty when this gateway is alone.
func (gw *Gateway) redirectTargets() []string {
	ps := gw.redirectPeers()
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.endpoint
	}
	return out
}

// redirect sends the device a Redirect (1207) to targets with a fresh token for its app, did and
// uid, so that a device whose login token expired long ago can still Resume there, then closes
// the socket. The state server keeps the connection for its Resume (1207 is resumable). It reports
// false when the connection was already closing or is not logged in (a device that has no
// connection to resume is closed with 1207 as well, and logs in again).
func (gw *Gateway) redirect(c *conn, targets []string) bool {
	c.mu.Lock()
	if c.closed || c.state == stateClosing {
		c.mu.Unlock()
		return false
	}
	loggedIn := c.state == stateLoggedIn
	c.state = stateClosing
	c.reason = protocol.CodeMigrated
	appID, did, uid := c.appID, c.did, c.uid
	c.mu.Unlock()
	m := protocol.Redirect{Code: protocol.CodeMigrated, Endpoints: targets}
	if loggedIn && gw.tokens != nil {
		now := time.Now()
		m.Token, _ = gw.tokens.Issue(appID, did, uid, now, now.Add(gw.tokens.TTL()))
	}
	f := &fleet.DownFrame{ConnId: int64(c.id), Action: fleet.DownAction_SEND_AND_CLOSE, Signal: int8(protocol.SigRedirect), Body: m.Append(nil)}
	c.mu.Lock()
	start, _ := c.appendLocked(outFrame{down: f}, true)
	c.mu.Unlock()
	if start {
		c.gw.writers.Go(c.flush)
	}
	return loggedIn
}
