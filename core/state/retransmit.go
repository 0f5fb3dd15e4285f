package state

import (
	"time"

	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// The state server keeps every unACKed downlink (cs.inflight, for Resume) and, for the ones a
// stage tracks, the resend timer, on the server's timing wheel: a tracked downlink costs one wheel
// node, no goroutine and no runtime timer, and no call to a stage per message. The policy (how
// often, how long, when to give up, what is tracked at all) stays with the stage that listens to
// the retransmit signal (plugins/retransmit): the state server asks it, through the pipeline's
// lanes, which batch the questions, once after a downlink's first write and once after each
// resend. Its answer (pipeline.Outcome.After and Verdict) arms the entry's timer:
//
//	Continue, After > 0  resend when the timer fires, then ask again (attempts + 1)
//	Reject               report UNDELIVERED when the timer fires (After may be 0: now)
//	Drop, or no After    untracked: never resent nor reported (no stage, or AtMostOnce)
//
// An ACK stops the timer; the end of the connection reports every tracked entry undelivered.

// consult asks the pipeline's retransmit stage what to do next about the downlink with seq, which
// has been written attempts times. The question takes the lane's reserve: there is at most one per
// in-flight downlink at a time, and a missed one would leave the downlink without a resend.
func (s *Server) consult(cs *connState, seq uint64, attempts int) { s.ask(cs, seq, attempts, 0) }

// ask is consult for a question that may have been deferred: since, when not 0, is when the
// downlink was written, which the answer's wait counts from (retransmitdefer.go).
func (s *Server) ask(cs *connState, seq uint64, attempts int, since int64) {
	listened := !s.skips(cs.appID, stage.SignalRetransmit)
	cs.mu.Lock()
	in, ok := cs.inflight[seq]
	if !ok {
		cs.mu.Unlock()
		return
	}
	in.attempts = attempts
	// pending: the connection may end before the answer comes (its disconnect can be ahead of the
	// question on the lane); reportable says what is reported then.
	in.pending = listened
	cs.inflight[seq] = in
	cs.mu.Unlock()
	if !listened {
		return // no stage keeps a policy: kept for the ACK and a Resume, never resent nor reported
	}
	ev := stage.Event{Signal: stage.SignalRetransmit, Conn: cs.stageConn(), Seq: seq, MsgID: in.msgID, QoS: in.qos, Attempts: attempts}
	s.through(ev, reserved, func(out pipeline.Outcome) { s.decided(cs, seq, attempts, out, since) })
}

// decided arms the downlink's timer as the stage answered. An answer about an older attempt, or a
// downlink ACKed or forgotten meanwhile, is dropped. since, when not 0, is when the downlink was
// written: the wait counts from then, as the question was deferred.
func (s *Server) decided(cs *connState, seq uint64, attempts int, out pipeline.Outcome, since int64) {
	if attempts == 1 {
		s.answeredFirst(cs.appID, out)
	}
	wait := out.After
	if since != 0 {
		wait -= time.Duration(time.Now().UnixNano() - since)
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	in, ok := cs.inflight[seq]
	if !ok || in.attempts != attempts || in.timer != nil {
		return
	}
	in.pending = false
	switch {
	case out.Verdict == stage.Reject:
		in.tracked, in.giveUp = true, true
	case out.Verdict == stage.Continue && out.After > 0:
		in.tracked, in.giveUp = true, false
	default:
		in.tracked = false
	}
	if !in.tracked || cs.closed {
		// Closed: its disconnect is on its way to forget, which reports it when tracked.
		cs.inflight[seq] = in
		return
	}
	in.gen++
	gen := in.gen
	in.timer = s.wheel.AfterFunc(wait, func() { s.due(cs, seq, gen) })
	cs.inflight[seq] = in
}

// due runs on the wheel's goroutine when a tracked downlink's wait is over, so it never blocks:
// a resend is queued on the gateway's batcher, the next question on the pipeline's lane, a report
// on the business batcher.
func (s *Server) due(cs *connState, seq uint64, gen uint32) {
	cs.mu.Lock()
	in, ok := cs.inflight[seq]
	if !ok || in.timer == nil || in.gen != gen || cs.closed {
		cs.mu.Unlock()
		return
	}
	in.timer = nil
	if in.giveUp {
		in.tracked = false
		if cs.parked {
			// The device may still get it when it resumes: reported only if the connection ends
			// without the device ACKing it.
			in.deferred = true
			cs.inflight[seq] = in
			cs.mu.Unlock()
			return
		}
		cs.inflight[seq] = in
		cs.mu.Unlock()
		_ = s.reportUndelivered(cs.stageConn(), seq, in.msgID, in.attempts)
		return
	}
	// A parked connection gets its downlinks again when it resumes; a downlink whose first copy is
	// still in the pipeline (possible after an adoption replay only) is written by sendFirst. Either
	// way the attempt counts, so a device that never comes back is given up on after the stage's
	// limit. A write the gateway's full queue refuses counts too, for the same reason.
	if cs.parked {
		// nothing to write now
	} else if !in.written {
		s.metrics.resendsEarly.Add(1)
	} else if s.sendDownlink(cs, seq, protocol.FlagRetransmit, in.msgID, in.payload, in.qos, nil, 0) {
		s.metrics.retransmits.Add(1)
	}
	cs.inflight[seq] = in
	cs.mu.Unlock()
	s.consult(cs, seq, in.attempts+1)
}

// reportable reports whether the end of the connection reports the downlink UNDELIVERED: a stage
// tracks it, gave up on it while the connection was parked, or its question is still out (then
// unless it was sent at most once, which the stage would not have tracked).
func (in *inflight) reportable() bool {
	return in.tracked || in.deferred || in.pending && in.qos != stage.AtMostOnce
}

// stopTimer stops the resend timer of an entry being removed; cs.mu is held.
func (in *inflight) stopTimer() {
	if in.timer != nil {
		in.timer.Stop()
		in.timer = nil
	}
}

// stopAllTimers stops the resend timers of every in-flight downlink; cs.mu is held.
func (cs *connState) stopAllTimers() {
	for seq, in := range cs.inflight {
		if in.timer != nil {
			in.timer.Stop()
			in.timer = nil
			cs.inflight[seq] = in
		}
	}
}

// takeEvicted returns the tracked downlinks trackLocked forgot at state.max_inflight; cs.mu is held.
func (cs *connState) takeEvicted() []undelivered {
	e := cs.evicted
	cs.evicted = nil
	return e
}

// reportEvicted reports downlinks forgotten unACKed at state.max_inflight: a stage had them
// tracked, so the business hears they were not delivered.
func (s *Server) reportEvicted(cs *connState, evicted []undelivered) {
	for _, u := range evicted {
		_ = s.reportUndelivered(cs.stageConn(), u.seq, u.msgID, u.attempts)
	}
}
