package state

import (
	"context"
	"fmt"
	"time"

	"github.com/platoim/plato/idl/kitex_gen/plato/common"
	"github.com/platoim/plato/idl/kitex_gen/plato/state"
	"github.com/platoim/plato/sdk/protocol"
)

// MaxPushTargets bounds the dids of one Push request.
const MaxPushTargets = 10000

func stateError(code protocol.Code, format string, args ...any) *state.StateError {
	return &state.StateError{Code: int32(code), Message: fmt.Sprintf(format, args...)}
}

// Push sends a business downlink to each did's current connection. With wait_ack it returns when
// every online target ACKed or the timeout passed.
func (h *handler) Push(ctx context.Context, req *state.PushRequest) (*state.PushResponse, error) {
	s := h.s
	switch {
	case req.AppId == "":
		return nil, stateError(protocol.CodeInvalidArgument, "app_id is required")
	case len(req.Dids) == 0:
		return nil, stateError(protocol.CodeInvalidArgument, "dids is empty")
	case len(req.Dids) > MaxPushTargets:
		return nil, stateError(protocol.CodeInvalidArgument, "%d dids exceed the maximum of %d per push", len(req.Dids), MaxPushTargets)
	case len(req.Payload)+8 > s.cfg.MaxBody:
		return nil, stateError(protocol.CodeInvalidArgument, "payload of %d bytes exceeds the device maximum of %d", len(req.Payload), s.cfg.MaxBody-8)
	}
	msgID := s.nextMsgID()
	body := (&protocol.Downlink{MsgID: msgID, Payload: req.Payload}).Append(nil)
	resp := &state.PushResponse{MsgId: int64(msgID), Targets: make([]*state.PushTarget, len(req.Dids))}
	var w *waiter
	if req.WaitAck {
		w = &waiter{acked: make([]bool, len(req.Dids)), done: make(chan struct{})}
	}
	for i, did := range req.Dids {
		t := &state.PushTarget{Did: did, Status: state.PushStatus_OFFLINE}
		resp.Targets[i] = t
		cs := s.conns.byDID(req.AppId, did)
		if cs == nil {
			continue
		}
		t.ConnId = int64(cs.key.id)
		seq, ok := s.track(cs, msgID, w, i)
		if !ok {
			continue
		}
		t.Seq = int64(seq)
		if !s.send(cs, common.DownAction_SEND, protocol.SigDownlink, 0, seq, body) {
			t.Status = state.PushStatus_FAILED
			s.untrack(cs, seq, w, i)
			continue
		}
		t.Status = state.PushStatus_SENT
		s.metrics.downlinks.Add(1)
	}
	if w == nil {
		return resp, nil
	}
	w.arm()
	{
		timeout := s.cfg.PushTimeout
		if req.TimeoutMs > 0 && time.Duration(req.TimeoutMs)*time.Millisecond < timeout {
			timeout = time.Duration(req.TimeoutMs) * time.Millisecond
		}
		t := time.NewTimer(timeout)
		select {
		case <-w.done:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, t := range resp.Targets {
		if t.Status != state.PushStatus_SENT {
			continue
		}
		if w.acked[i] {
			t.Status = state.PushStatus_ACKED
		} else {
			t.Status = state.PushStatus_TIMEOUT
		}
	}
	return resp, nil
}

// track assigns the connection's next downlink sequence number and remembers it until the ACK.
// At MaxInflight the oldest unACKed entry is forgotten, so a device that never ACKs costs bounded memory.
func (s *Server) track(cs *connState, msgID uint64, w *waiter, idx int) (uint64, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return 0, false
	}
	cs.nextDownSeq++
	seq := cs.nextDownSeq
	if cs.inflight == nil {
		cs.inflight = make(map[uint64]inflight)
	}
	for len(cs.inflight) >= s.cfg.MaxInflight && len(cs.order) > 0 {
		delete(cs.inflight, cs.order[0])
		cs.order = cs.order[1:]
		s.metrics.inflightEvicted.Add(1)
	}
	cs.inflight[seq] = inflight{msgID: msgID, w: w, idx: idx}
	cs.order = append(cs.order, seq)
	if len(cs.order) > 2*s.cfg.MaxInflight {
		cs.compactOrder()
	}
	if w != nil {
		w.add()
	}
	return seq, true
}

func (s *Server) untrack(cs *connState, seq uint64, w *waiter, idx int) {
	cs.mu.Lock()
	delete(cs.inflight, seq)
	cs.mu.Unlock()
	if w != nil {
		w.ack(idx) // not waited for any more; the caller reports FAILED
	}
}

// compactOrder drops ACKed sequence numbers from the eviction order.
func (cs *connState) compactOrder() {
	kept := cs.order[:0]
	for _, seq := range cs.order {
		if _, ok := cs.inflight[seq]; ok {
			kept = append(kept, seq)
		}
	}
	cs.order = kept
}
