package state

import (
	"context"
	"sync"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// MaxPushTargets bounds the connections one push reaches directly (dids, uid devices and session
// members sent over RPC); a larger session goes by broadcast or is refused.
const MaxPushTargets = 100000

// target is one device a push goes to; cs is nil when the did (or uid) has no connection.
type target struct {
	did, uid string
	cs       *connState
}

// targetsOf resolves dids to their connections.
func (s *Server) targetsOf(appID string, dids []string) []target {
	out := make([]target, len(dids))
	for i, did := range dids {
		out[i] = target{did: did, cs: s.conns.byDID(appID, did)}
	}
	return out
}

// push runs one downlink per target connection through the pipeline and sends what continues.
// With waitAck it returns when every online target ACKed or the timeout passed.
func (s *Server) push(ctx context.Context, appID string, targets []target, msgID uint64, payload []byte, qos stage.QoS, waitAck bool, timeout time.Duration) []*api.PushTarget {
	out := make([]*api.PushTarget, len(targets))
	var w *waiter
	if waitAck {
		w = &waiter{acked: make([]bool, len(targets)), done: make(chan struct{})}
	}
	// Outcomes arrive from pipeline lanes; the response is complete when all have, or at the
	// deadline, after which late outcomes no longer touch the response being encoded.
	var mu sync.Mutex
	finished := false
	var pending sync.WaitGroup
	for i, tg := range targets {
		t := &api.PushTarget{Did: tg.did, Uid: tg.uid, Status: api.PushStatus_OFFLINE}
		out[i] = t
		cs := tg.cs
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
		ev := stage.Event{Signal: stage.SignalDownlink, Conn: cs.stageConn(), Seq: seq, MsgID: msgID, Payload: payload, QoS: qos, TraceParent: sp.traceParent()}
		s.through(ev, false, func(o pipeline.Outcome) {
			defer pending.Done()
			status, code, msg := s.downlinkOutcome(cs, seq, msgID, payload, o, w, i)
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
	for i, t := range out {
		if w == nil || t.Status != api.PushStatus_SENT {
			continue
		}
		w.mu.Lock()
		acked := w.acked[i]
		w.mu.Unlock()
		if acked {
			t.Status = api.PushStatus_ACKED
		} else {
			t.Status = api.PushStatus_TIMEOUT
		}
	}
	return out
}

// downlinkOutcome sends the downlink a pipeline let through, or forgets one it stopped.
func (s *Server) downlinkOutcome(cs *connState, seq, msgID uint64, payload []byte, out pipeline.Outcome, w *waiter, idx int) (api.PushStatus, protocol.Code, string) {
	if out.Verdict != stage.Continue {
		if out.Stage != "" {
			s.metrics.downlinksRejected.Add(1)
		}
		s.untrack(cs, seq, w, idx)
		code, msg := rejection(out)
		return api.PushStatus_REJECTED, code, msg
	}
	if out.Payload != nil {
		payload = out.Payload
	}
	body := (&protocol.Downlink{MsgID: msgID, Payload: payload}).Append(nil)
	if !s.send(cs, fleet.DownAction_SEND, protocol.SigDownlink, 0, seq, body) {
		s.untrack(cs, seq, w, idx)
		return api.PushStatus_FAILED, 0, "gateway queue full"
	}
	s.metrics.downlinks.Add(1)
	return api.PushStatus_SENT, 0, ""
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
		oldest := cs.order[0]
		cs.order = cs.order[1:]
		if _, ok := cs.inflight[oldest]; ok { // ACKed ones stay in order until compactOrder
			delete(cs.inflight, oldest)
			s.metrics.inflightEvicted.Add(1)
		}
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
