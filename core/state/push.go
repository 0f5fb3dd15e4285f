package state

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/platoim/plato/idl/kitex_gen/plato/common"
	"github.com/platoim/plato/idl/kitex_gen/plato/state"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
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
	dids := req.Dids
	if req.Session != "" {
		dids = append(dids[:len(dids):len(dids)], s.sessions.members(req.AppId, req.Session)...)
	}
	switch {
	case req.AppId == "":
		return nil, stateError(protocol.CodeInvalidArgument, "app_id is required")
	case len(dids) == 0 && req.Session == "":
		return nil, stateError(protocol.CodeInvalidArgument, "dids is empty and no session is named")
	case len(dids) > MaxPushTargets:
		return nil, stateError(protocol.CodeInvalidArgument, "%d targets exceed the maximum of %d per push", len(dids), MaxPushTargets)
	case len(req.Payload)+8 > s.cfg.MaxBody:
		return nil, stateError(protocol.CodeInvalidArgument, "payload of %d bytes exceeds the device maximum of %d", len(req.Payload), s.cfg.MaxBody-8)
	}
	timeout := s.cfg.PushTimeout
	if req.TimeoutMs > 0 && time.Duration(req.TimeoutMs)*time.Millisecond < timeout {
		timeout = time.Duration(req.TimeoutMs) * time.Millisecond
	}
	resp := s.push(ctx, req.AppId, dids, req.Payload, req.WaitAck, timeout)
	return resp, nil
}

// push runs one downlink per target connection through the pipeline and sends what continues.
func (s *Server) push(ctx context.Context, appID string, dids []string, payload []byte, waitAck bool, timeout time.Duration) *state.PushResponse {
	msgID := s.nextMsgID()
	resp := &state.PushResponse{MsgId: int64(msgID), Targets: make([]*state.PushTarget, len(dids))}
	var w *waiter
	if waitAck {
		w = &waiter{acked: make([]bool, len(dids)), done: make(chan struct{})}
	}
	// Outcomes arrive from pipeline lanes; the response is complete when all have, or at the
	// deadline, after which late outcomes no longer touch the response being encoded.
	var mu sync.Mutex
	finished := false
	var pending sync.WaitGroup
	for i, did := range dids {
		t := &state.PushTarget{Did: did, Status: state.PushStatus_OFFLINE}
		resp.Targets[i] = t
		cs := s.conns.byDID(appID, did)
		if cs == nil {
			continue
		}
		t.ConnId = int64(cs.key.id)
		seq, ok := s.track(cs, msgID, w, i)
		if !ok {
			continue
		}
		t.Seq = int64(seq)
		pending.Add(1)
		sp := s.startSignal(stage.SignalDownlink, appID)
		ev := stage.Event{Signal: stage.SignalDownlink, Conn: cs.stageConn(), Seq: seq, MsgID: msgID, Payload: payload, TraceParent: sp.traceParent()}
		s.through(ev, false, func(out pipeline.Outcome) {
			defer pending.Done()
			status, code, msg := s.downlinkOutcome(cs, seq, msgID, payload, out, w, i)
			sp.end(code)
			mu.Lock()
			if !finished {
				t.Status, t.Code, t.Message = status, int32(code), msg
			}
			mu.Unlock()
		})
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	waitGroup(tctx, &pending)
	if w != nil {
		w.arm()
		select {
		case <-w.done:
		case <-tctx.Done():
		}
	}
	mu.Lock()
	defer mu.Unlock()
	finished = true
	for i, t := range resp.Targets {
		if w == nil || t.Status != state.PushStatus_SENT {
			continue
		}
		w.mu.Lock()
		acked := w.acked[i]
		w.mu.Unlock()
		if acked {
			t.Status = state.PushStatus_ACKED
		} else {
			t.Status = state.PushStatus_TIMEOUT
		}
	}
	return resp
}

// downlinkOutcome sends the downlink a pipeline let through, or forgets one it stopped.
func (s *Server) downlinkOutcome(cs *connState, seq, msgID uint64, payload []byte, out pipeline.Outcome, w *waiter, idx int) (state.PushStatus, protocol.Code, string) {
	if out.Verdict != stage.Continue {
		if out.Stage != "" {
			s.metrics.downlinksRejected.Add(1)
		}
		s.untrack(cs, seq, w, idx)
		code, msg := rejection(out)
		return state.PushStatus_REJECTED, code, msg
	}
	if out.Payload != nil {
		payload = out.Payload
	}
	body := (&protocol.Downlink{MsgID: msgID, Payload: payload}).Append(nil)
	if !s.send(cs, common.DownAction_SEND, protocol.SigDownlink, 0, seq, body) {
		s.untrack(cs, seq, w, idx)
		return state.PushStatus_FAILED, 0, "gateway queue full"
	}
	s.metrics.downlinks.Add(1)
	return state.PushStatus_SENT, 0, ""
}

// waitGroup waits for wg or until ctx ends.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// track assigns the connection's next downlink sequence number and remembers it until the ACK.
// At MaxInflight the oldest unACKed entry is forgotten, so a device that never ACKs costs bounded memory.
func (s *Server) track(cs *connState, msgID uint64, w *waiter, idx int) (uint64, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed || !cs.loggedIn {
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
	cs.inflight[seq] = inflight{msgID: msgID, w: w, idx: idx, sent: time.Now().UnixNano()}
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
		w.ack(idx) // not waited for any more; the caller reports why
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
