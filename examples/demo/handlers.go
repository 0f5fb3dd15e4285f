package demo

import (
	"context"

	"github.com/platoim/plato/sdk/business"
)

// uplink checks a command and queues it for the workers: the device's UplinkAck says whether the
// demo took it, not whether the recipients got it.
func (s *Server) uplink(ctx context.Context, u business.Uplink) error {
	if _, ok := s.cfg.Keys[u.AppID]; !ok {
		return business.Refuse(CodeUnknownApp, "the demo has no key for app "+u.AppID+" (apps.<app>.keys)")
	}
	c, ref := parse(u.Payload)
	if ref != nil {
		return business.Refuse(ref.code, ref.msg)
	}
	j := job{app: u.AppID, did: u.DID, cmd: c}
	// Membership is recorded now, so that the device's next command sees it; undone if the job
	// cannot be queued.
	switch c.kind {
	case cmdRoom:
		if !s.rooms.has(u.AppID, u.DID, c.arg) {
			return business.Refuse(CodeNotInRoom, "join "+c.arg+" first")
		}
	case cmdJoin:
		added, ref := s.rooms.join(u.AppID, u.DID, c.arg)
		if ref != nil {
			return business.Refuse(ref.code, ref.msg)
		}
		if !s.work.add(j) {
			if added {
				s.rooms.leave(u.AppID, u.DID, c.arg)
			}
			return business.Refuse(CodeBusy, "demo server busy, retry")
		}
		return nil
	case cmdLeave:
		if !s.rooms.leave(u.AppID, u.DID, c.arg) {
			return business.Refuse(CodeNotInRoom, "you are not in "+c.arg)
		}
		if !s.work.add(j) {
			_, _ = s.rooms.join(u.AppID, u.DID, c.arg)
			return business.Refuse(CodeBusy, "demo server busy, retry")
		}
		return nil
	}
	if !s.work.add(j) {
		return business.Refuse(CodeBusy, "demo server busy, retry")
	}
	return nil
}

// sessions answers the sessionbind stage at each login: the rooms the device joined, so Plato binds
// its new connection to them again.
func (s *Server) sessions(ctx context.Context, d business.Device) ([]string, error) {
	return s.rooms.of(d.AppID, d.DID), nil
}

func (s *Server) connected(ctx context.Context, e business.Event) {
	s.log.Info("device online", "app", e.AppID, "did", e.DID, "uid", e.UID, "gateway", e.GatewayID)
}

func (s *Server) disconnected(ctx context.Context, e business.Event) {
	s.log.Info("device offline", "app", e.AppID, "did", e.DID, "reason", e.Reason)
}

func (s *Server) undelivered(ctx context.Context, e business.Event) {
	s.log.Info("message undelivered", "app", e.AppID, "did", e.DID, "msg_id", e.MsgID, "attempts", e.Attempts)
}
