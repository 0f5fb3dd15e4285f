package state

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

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
	return s.pushStart(appID, targets, msgID, payload, qos, waitAck, timeout)(ctx)
}

// pushStart gives each target connection its seq and hands the downlinks to the pipeline, and
// returns the wait for their outcomes. A batch starts its pushes in its order and then waits for
// them all, so that downlinks to one connection keep the batch's order (seqs and pipeline lanes
// are per connection) while the pushes run together. The timeout counts from the start.
func (s *Server) pushStart(appID string, targets []target, msgID uint64, payload []byte, qos stage.QoS, waitAck bool, timeout time.Duration) func(ctx context.Context) []*api.PushTarget {
	r := &pushRun{}
	s.pushStartRun(r, appID, targets, msgID, payload, qos, waitAck, timeout)
	return func(ctx context.Context) []*api.PushTarget { return r.wait(ctx, targets) }
}

// pushStartRun is pushStart with the push's state in r, zero and not copied after: a batch keeps
// its pushes' in one allocation (localPushBatch); r.wait(ctx, targets) waits.
func (s *Server) pushStartRun(r *pushRun, appID string, targets []target, msgID uint64, payload []byte, qos stage.QoS, waitAck bool, timeout time.Duration) {
	r.init(s, len(targets), qos, waitAck)
	r.deadline = time.Now().Add(timeout)
	// No stage listens to downlinks (the shipped pipeline): each is handled here, without the hop
	// through its pipeline lane and the lane's goroutine (downlinkdirect.go).
	direct := s.skips(appID, stage.SignalDownlink)
	for i, tg := range targets {
		t := r.target(i)
		t.Did, t.Uid, t.Status = tg.did, tg.uid, api.PushStatus_OFFLINE
		cs := tg.cs
		if cs == nil {
			continue
		}
		t.ConnId = int64(cs.key.id)
		cs.pushMu.Lock()
		seq, tr := s.track(cs, msgID, payload, qos, r.w, i)
		switch tr {
		case trackClosed:
			cs.pushMu.Unlock()
			continue
		case trackParked:
			cs.pushMu.Unlock()
			t.Status, t.Message = api.PushStatus_QUEUED, queuedMessage
			s.metrics.pushesQueued.Add(1)
			continue
		}
		t.Seq = int64(seq)
		r.pending.add()
		sp := s.startSignal(stage.SignalDownlink, appID)
		switch lane := cs.downlinkLane(direct); lane {
		case laneNone:
			r.outcome(cs, seq, msgID, payload, qos, i, sp, pipeline.Outcome{})
		case laneFull:
			s.metrics.pipelineRefused.Add(1)
			r.outcome(cs, seq, msgID, payload, qos, i, sp, pipeline.Outcome{Verdict: stage.Reject, Code: uint16(protocol.CodeOverloaded), Message: "pipeline queue full; retry later"})
		default:
			ev := stage.Event{Signal: stage.SignalDownlink, Conn: cs.stageConn(), Seq: seq, MsgID: msgID, Payload: payload, QoS: qos, TraceParent: sp.traceParent()}
			s.through(ev, refusable, func(o pipeline.Outcome) {
				r.outcome(cs, seq, msgID, payload, qos, i, sp, o)
				// After the outcome queued its frame: a later downlink that skips the lane
				// queues behind it.
				cs.leftLane()
			})
		}
		cs.pushMu.Unlock()
	}
}

// pushRun is one push's state from pushStart to its answer, in one allocation: what a push to a
// single connection (each push of a typical PushBatch) needs is inside it.
type pushRun struct {
	s        *Server
	deadline time.Time
	out      []*api.PushTarget
	w        *waiter  // waitAck: the device ACKs; nil otherwise
	acc      *accepts // not at most once: the gateways' acceptance; nil otherwise
	// Outcomes arrive from pipeline lanes; the response is complete when all have, or at the
	// deadline, after which late outcomes no longer touch the response being encoded.
	mu       sync.Mutex
	finished bool
	// pending counts the outcomes still to come; a waiter, so the wait needs no goroutine.
	pending waiter

	// The storage of a push to one connection.
	one     [1]*api.PushTarget
	oneT    api.PushTarget
	oneAcc  accepts
	oneW    waiter
	oneAccW waiter
	oneBool [2][1]bool // the acked slices of oneAcc.w and w
	oneFail [1]atomic.Bool
}

// init readies a zero r for a push to n connections; r holds pointers into itself from then on.
func (r *pushRun) init(s *Server, n int, qos stage.QoS, waitAck bool) {
	r.s = s
	if n == 1 {
		r.out = r.one[:]
		if waitAck {
			r.oneW.acked = r.oneBool[0][:]
			r.w = &r.oneW
		}
		if qos != stage.AtMostOnce {
			r.oneAccW.acked = r.oneBool[1][:]
			r.oneAcc = accepts{w: &r.oneAccW, failed: r.oneFail[:]}
			r.acc = &r.oneAcc
		}
		return
	}
	r.out = make([]*api.PushTarget, n)
	if waitAck {
		r.w = newWaiter(n)
	}
	if qos != stage.AtMostOnce {
		r.acc = newAccepts(n)
	}
}

// target is the answer about the push's i-th target.
func (r *pushRun) target(i int) *api.PushTarget {
	if len(r.out) == 1 {
		r.out[0] = &r.oneT
	} else {
		r.out[i] = &api.PushTarget{}
	}
	return r.out[i]
}

// outcome acts on the pipeline's outcome for the downlink to the i-th target, and records it.
func (r *pushRun) outcome(cs *connState, seq, msgID uint64, payload []byte, qos stage.QoS, i int, sp *sigSpan, o pipeline.Outcome) {
	defer r.pending.doneOne()
	status, code, msg := r.s.downlinkOutcome(cs, seq, msgID, payload, qos, o, r.w, r.acc, i)
	sp.end(code)
	r.mu.Lock()
	if !r.finished {
		t := r.out[i]
		t.Status, t.Code, t.Message = status, int32(code), msg
	}
	r.mu.Unlock()
}

// wait returns the push's answers once its outcomes, the gateways' acceptance and (waitAck) the
// devices' ACKs are in, or at the deadline.
func (r *pushRun) wait(ctx context.Context, targets []target) []*api.PushTarget {
	// The deadline's context (and its timer) is made only if something is still awaited: in a
	// batch, the pushes waited for after the first mostly are not.
	var tctx context.Context
	var cancel context.CancelFunc
	defer func() {
		if cancel != nil {
			cancel()
		}
	}()
	await := func(w *waiter) {
		done := w.arm()
		if done == nil {
			return
		}
		select {
		case <-done:
			return
		default:
		}
		if tctx == nil {
			tctx, cancel = context.WithDeadline(ctx, r.deadline)
		}
		select {
		case <-done:
		case <-tctx.Done():
		}
	}
	await(&r.pending)
	if r.acc != nil {
		await(r.acc.w)
	}
	if r.w != nil {
		await(r.w)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished = true
	for i, t := range r.out {
		if r.acc != nil && t.Status == api.PushStatus_SENT && r.acc.failed[i].Load() {
			// The gateway did not answer: the device is likely dropping off. The downlink stays in
			// flight for its Resume, and is reported undelivered if the connection ends first.
			targets[i].cs.deferDownlink(uint64(t.Seq))
			t.Status, t.Message = api.PushStatus_QUEUED, "the gateway did not answer: "+queuedMessage
		}
		if r.w == nil || t.Status != api.PushStatus_SENT {
			continue
		}
		r.w.mu.Lock()
		acked := r.w.acked[i]
		r.w.mu.Unlock()
		if acked {
			t.Status = api.PushStatus_ACKED
		} else {
			t.Status = api.PushStatus_TIMEOUT
		}
	}
	return r.out
}

// downlinkOutcome sends the downlink a pipeline let through, or forgets one it stopped.
func (s *Server) downlinkOutcome(cs *connState, seq, msgID uint64, payload []byte, qos stage.QoS, out pipeline.Outcome, w *waiter, acc *accepts, idx int) (api.PushStatus, protocol.Code, string) {
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
	if !s.sendFirst(cs, seq, msgID, payload, out.Payload != nil, qos, acc, idx) {
		if cs.isParked() {
			// It dropped while the downlink was in the pipeline: the Resume replays it.
			s.metrics.pushesQueued.Add(1)
			s.consultFirst(cs, seq)
			return api.PushStatus_QUEUED, 0, queuedMessage
		}
		s.untrack(cs, seq, w, idx)
		return api.PushStatus_FAILED, 0, "gateway queue full"
	}
	s.metrics.downlinks.Add(1)
	s.consultFirst(cs, seq)
	return api.PushStatus_SENT, 0, ""
}

const queuedMessage = "the device is reconnecting: kept for its Resume"

// sendFirst queues the first copy of a downlink the pipeline let through, and marks it written
// (keeping the payload a stage rewrote) in the same step, under cs.mu. Whatever else writes that
// downlink takes cs.mu too: a stage's Resend (host.go) and a Resume's replay (resume.go) either
// find it unwritten and leave it to this call, or find it written and queue behind it on the
// connection's lane. So no copy flagged retransmit ever reaches the device before the original,
// which the device would deliver twice: it drops only flagged copies of a msg_id it has seen
// (docs/protocol.md §8.2).
func (s *Server) sendFirst(cs *connState, seq, msgID uint64, payload []byte, rewritten bool, qos stage.QoS, acc *accepts, idx int) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if in, ok := cs.inflight[seq]; ok {
		in.written = true
		if rewritten {
			in.payload = payload
		}
		cs.inflight[seq] = in
	}
	// batch.Add never blocks nor flushes inline, so queuing under cs.mu is safe (finishResume
	// does the same).
	return s.sendDownlink(cs, seq, 0, msgID, payload, qos, acc, idx)
}

// deferDownlink marks an in-flight downlink to be reported undelivered if the connection ends
// before the device ACKs it.
func (cs *connState) deferDownlink(seq uint64) {
	cs.mu.Lock()
	if in, ok := cs.inflight[seq]; ok {
		in.deferred = true
		cs.inflight[seq] = in
	}
	cs.mu.Unlock()
}

// isParked reports whether the connection waits for its device to Resume.
func (cs *connState) isParked() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.parked
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

// What track did with a downlink.
type tracked uint8

const (
	trackSent   tracked = iota // given a seq: run it through the pipeline and send it
	trackParked                // the connection is parked: kept until it resumes
	trackClosed                // the connection is gone: offline
)

// track assigns the connection's next downlink sequence number and remembers the downlink until
// the ACK. At MaxInflight the oldest unACKed entry is forgotten, so a device that never ACKs costs
// bounded memory. A parked connection keeps the push, without a seq, for its Resume.
func (s *Server) track(cs *connState, msgID uint64, payload []byte, qos stage.QoS, w *waiter, idx int) (uint64, tracked) {
	cs.mu.Lock()
	if cs.closed || !cs.loggedIn {
		cs.mu.Unlock()
		return 0, trackClosed
	}
	if w != nil {
		w.add()
	}
	now := time.Now().UnixNano()
	if cs.parked {
		var dropped *parkedPush
		p := cs.park
		if len(p.queued) >= s.cfg.MaxParked {
			d := p.queued[0]
			dropped = &d
			p.queued = p.queued[1:]
		}
		p.queued = append(p.queued, parkedPush{msgID: msgID, payload: payload, qos: qos, w: w, idx: idx, sent: now})
		cs.mu.Unlock()
		if dropped != nil {
			s.metrics.parkedDropped.Add(1)
			if dropped.qos != stage.AtMostOnce {
				_ = s.reportUndelivered(cs.stageConn(), 0, dropped.msgID, 0)
			}
			if dropped.w != nil {
				dropped.w.ack(dropped.idx)
			}
		}
		return 0, trackParked
	}
	seq := cs.trackLocked(s.cfg.MaxInflight, inflight{msgID: msgID, payload: payload, qos: qos, w: w, idx: idx, sent: now}, &s.metrics)
	evicted := cs.takeEvicted()
	cs.mu.Unlock()
	s.reportEvicted(cs, evicted)
	return seq, trackSent
}

// trackLocked files in under the connection's next seq. cs.mu is held.
func (cs *connState) trackLocked(max int, in inflight, m *metrics) uint64 {
	cs.nextDownSeq++
	seq := cs.nextDownSeq
	if cs.inflight == nil {
		cs.inflight = make(map[uint64]inflight)
	}
	for len(cs.inflight) >= max && len(cs.order) > 0 {
		oldest := cs.order[0]
		cs.order = cs.order[1:]
		if in, ok := cs.inflight[oldest]; ok { // ACKed ones stay in order until compactOrder
			in.stopTimer()
			if in.reportable() {
				cs.evicted = append(cs.evicted, undelivered{seq: oldest, msgID: in.msgID, attempts: in.attempts})
			}
			delete(cs.inflight, oldest)
			m.inflightEvicted.Add(1)
		}
	}
	cs.inflight[seq] = in
	cs.order = append(cs.order, seq)
	if len(cs.order) > 2*max {
		cs.compactOrder()
	}
	return seq
}

func (s *Server) untrack(cs *connState, seq uint64, w *waiter, idx int) {
	cs.mu.Lock()
	if in, ok := cs.inflight[seq]; ok {
		in.stopTimer()
	}
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
