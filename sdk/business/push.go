package business

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/cloudwego/kitex/client/callopt"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// Push is one downlink message and whom it goes to: any mix of DIDs, UIDs and one Session, at least
// one target in all.
type Push struct {
	// DIDs are devices; each logged-in one gets the message.
	DIDs []string
	// UIDs are users; every logged-in device of each gets the message.
	UIDs []string
	// Session is a session (chat, group, room) whose member connections get the message. Plato picks
	// the path (Route): direct below the qosroute stage's broadcast_min_members, NATS broadcast above.
	Session string
	// Payload is the message body; Plato does not look inside.
	Payload []byte
	// QoS: QoSDefault lets the app's pipeline decide.
	QoS QoS
	// WaitAck makes the call wait until every directly sent target ACKed (StatusAcked) or Timeout
	// passed (StatusTimeout). Broadcast session members are never waited for.
	WaitAck bool
	// Timeout bounds the wait for ACKs with WaitAck: default DefaultAckTimeout; Plato caps it at its
	// state.push_timeout. The call's own timeout is extended by it.
	Timeout time.Duration
}

// PushResult says how a push went.
type PushResult struct {
	// MsgID identifies the message; the device sees it in Message.MsgID and an Undelivered event
	// names it.
	MsgID int64
	// Targets has one entry per did, per device of each uid, and per session member when the session
	// went direct.
	Targets []Target
	// Route is how the session part went (RouteDirect when no session was named).
	Route Route
	// QoS is what was applied after the pipeline decided.
	QoS QoS
	// SessionMembers is how many members the session had on the state server when it was pushed.
	SessionMembers int
}

// Target is how a push went for one device connection.
type Target struct {
	DID string
	// UID is set when the target was named by uid.
	UID string
	// ConnID is the connection it went to; 0 when offline.
	ConnID int64
	Status Status
	// Seq is the downlink sequence number the device sees.
	Seq int64
	// Code and Message say why, with StatusRejected.
	Code    int
	Message string
}

// Offline returns the dids of the targets that had no logged-in connection.
func (r *PushResult) Offline() []string {
	var dids []string
	for _, t := range r.Targets {
		if t.Status == StatusOffline {
			dids = append(dids, t.DID)
		}
	}
	return dids
}

// Push sends p.Payload to p's targets.
func (c *Client) Push(ctx context.Context, p Push) (*PushResult, error) {
	req, wait := c.pushRequest(p)
	var opts []callopt.Option
	if wait > 0 {
		// The call must outlive the wait, or every slow ACK would look like Plato being down.
		opts = append(opts, callopt.WithRPCTimeout(c.timeout+wait))
	}
	args := &api.PlatoPushArgs{Req: req}
	res := &api.PlatoPushResult{}
	if err := c.call(ctx, "Push", pushWhat(p), args, res, opts...); err != nil {
		return nil, err
	}
	return pushResultOf(res.GetSuccess()), nil
}

// pushRequest is p on the wire, and how long Plato may wait for its ACKs.
func (c *Client) pushRequest(p Push) (*api.PushRequest, time.Duration) {
	req := &api.PushRequest{
		Caller: c.caller(), Dids: p.DIDs, Uids: p.UIDs, Session: p.Session,
		Payload: p.Payload, Qos: api.QoS(p.QoS), WaitAck: p.WaitAck,
	}
	if !p.WaitAck {
		return req, 0
	}
	wait := p.Timeout
	if wait <= 0 {
		wait = DefaultAckTimeout
	}
	req.TimeoutMs = int32(min(wait.Milliseconds(), math.MaxInt32))
	return req, wait
}

// pushResultOf turns Plato's answer to one push into a PushResult.
func pushResultOf(resp *api.PushResponse) *PushResult {
	if resp == nil {
		resp = &api.PushResponse{}
	}
	out := &PushResult{
		MsgID: resp.MsgId, Route: routeOf(resp.Route), QoS: QoS(resp.Qos),
		SessionMembers: int(resp.SessionMembers), Targets: make([]Target, 0, len(resp.Targets)),
	}
	for _, t := range resp.Targets {
		if t == nil {
			continue
		}
		out.Targets = append(out.Targets, Target{
			DID: t.Did, UID: t.Uid, ConnID: t.ConnId, Status: Status(t.Status), Seq: t.Seq,
			Code: int(t.Code), Message: t.Message,
		})
	}
	return out
}

// pushWhat describes a push's targets for an error message, without listing them all.
func pushWhat(p Push) string {
	what := fmt.Sprintf("pushing to %d dids, %d uids", len(p.DIDs), len(p.UIDs))
	if p.Session != "" {
		what += fmt.Sprintf(" and session %q", p.Session)
	}
	return what
}
