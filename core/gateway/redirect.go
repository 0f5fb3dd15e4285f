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

// redirectGrace is how long a redirected device's old socket stays open at most. The device reads
// the Redirect, Resumes elsewhere, and its Resume closes the old socket (the state server takes the
// connection over: Close 1207); this only closes the sockets of devices that did neither. Closing at
// once instead would lose the Redirect itself now and then: a socket closed with data from the
// device still unread (a DownlinkAck, a Heartbeat) is reset, and a reset discards what the device
// had received and not read yet.
const redirectGrace = 5 * time.Second

// redirect sends the device a Redirect (1207) to targets with a fresh token for its app, did and
// uid, so that a device whose login token expired long ago can still Resume there. A logged-in
// device's socket stays open until its Resume elsewhere takes the connection over (the state
// server then closes it with 1207), or at most redirectGrace; if it drops meanwhile, it is reported
// closed with 1207, which the state server keeps the connection for. A connection not logged in
// (it has nothing to resume) is closed after the Redirect, and its device logs in there. It reports
// false when the connection was already closing or is not logged in.
func (gw *Gateway) redirect(c *conn, targets []string) bool {
	c.mu.Lock()
	if c.closed || c.state == stateClosing {
		c.mu.Unlock()
		return false
	}
	loggedIn := c.state == stateLoggedIn
	if !loggedIn {
		c.state = stateClosing
	}
	if c.reason == 0 {
		c.reason = protocol.CodeMigrated
	}
	appID, did, uid := c.appID(), c.did(), c.uid
	c.mu.Unlock()
	if c.ws != nil {
		targets = gw.wsTargets(targets)
	}
	m := protocol.Redirect{Code: protocol.CodeMigrated, Endpoints: targets}
	action := fleet.DownAction_SEND_AND_CLOSE
	if loggedIn {
		action = fleet.DownAction_SEND
		if gw.tokens != nil {
			now := time.Now()
			m.Token, _ = gw.tokens.Issue(appID, did, uid, now, now.Add(gw.tokens.TTL()))
		}
	}
	f := &fleet.DownFrame{ConnId: int64(c.id), Action: action, Signal: int8(protocol.SigRedirect), Body: m.Append(nil)}
	c.mu.Lock()
	start, _ := c.appendLocked(outFrame{down: f}, action == fleet.DownAction_SEND_AND_CLOSE)
	c.mu.Unlock()
	if start {
		c.startFlush()
	}
	if loggedIn {
		gw.wheel.AfterFunc(redirectGrace, func() { c.closeWith(protocol.CodeMigrated, "moved to another gateway") })
	}
	return loggedIn
}

// wsTargets turns the TCP endpoints of other gateways into their WebSocket URLs, in the same order,
// for a device on the WebSocket transport: a browser cannot dial host:port. A gateway without a
// WebSocket listener is left out; with none left, the Redirect lists nothing and the device asks
// ipconf (with transport=ws) for somewhere to Resume.
func (gw *Gateway) wsTargets(tcp []string) []string {
	byEndpoint := make(map[string]string, len(tcp))
	for _, id := range gw.peers.IDs() {
		if n, ok := gw.peers.Node(id); ok && n.Endpoint != "" && n.WSEndpoint != "" {
			byEndpoint[n.Endpoint] = n.WSEndpoint
		}
	}
	out := make([]string, 0, len(tcp))
	for _, e := range tcp {
		if u := byEndpoint[e]; u != "" {
			out = append(out, u)
		}
	}
	return out
}
