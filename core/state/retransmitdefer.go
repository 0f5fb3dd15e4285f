package state

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/stage"
)

// The question after a downlink's first write (consultFirst) is deferred: most downlinks are ACKed
// in milliseconds, long before the stage's first wait (2 s as shipped), and a question about a
// downlink ACKed meanwhile is never asked. The stage's answer counts from the write, not from the
// answer (decided's since), so the resend comes when the policy said, deferred question or not.
//
// How long to defer is learned per app from the stage itself: half the first wait it last answered
// (firstWaits), at most maxDeferral, and no deferral until it answered once, or while that wait is under minDeferredWait,
// so that the question, asked up to one sweep late, is always answered before the wait is over. A
// stage whose first wait shrinks on a reload may see the downlinks deferred under the old wait
// resent late by at most half the old one; never early, never lost.

const (
	// askSweep is how often the deferred questions due are asked: the wheel's tick.
	askSweep = 100 * time.Millisecond
	// minDeferredWait is the shortest first wait that defers its questions: its half, plus one
	// sweep, plus the lane's time, stays under the wait.
	minDeferredWait = 4 * askSweep
	// maxDeferral bounds the deferral whatever the stage's first wait: a question owed longer
	// only holds more in the queue, while nearly every ACK comes far sooner.
	maxDeferral = time.Second
	// maxDeferredAsks bounds the questions waiting; past it, questions are asked at once as before.
	// At 35,000 downlinks/s and the shipped 1 s deferral, 35,000 wait.
	maxDeferredAsks = 1 << 16
)

// deferredAsk is a first question not asked yet: about cs's downlink seq, written at at.
type deferredAsk struct {
	cs  *connState
	seq uint64
	at  int64 // unix nanoseconds of the write
	due int64 // when to ask, unix nanoseconds
}

// deferredAsks holds the deferred first questions in the order they were deferred, and the one
// wheel timer that sweeps them: no timer or goroutine per downlink.
type deferredAsks struct {
	mu    sync.Mutex
	q     []deferredAsk
	head  int
	armed bool // the sweep timer is pending
	// firstWaits is each app's first wait, as its stage last answered it (nanoseconds).
	firstWaits sync.Map // app ID -> *atomic.Int64
}

// firstWait is the app's learned first wait, or 0 when its stage has not answered yet.
func (d *deferredAsks) firstWait(app string) time.Duration {
	v, ok := d.firstWaits.Load(app)
	if !ok {
		return 0
	}
	return time.Duration(v.(*atomic.Int64).Load())
}

// learn keeps the first wait the app's stage just answered.
func (d *deferredAsks) learn(app string, wait time.Duration) {
	v, ok := d.firstWaits.Load(app)
	if !ok {
		v, _ = d.firstWaits.LoadOrStore(app, new(atomic.Int64))
	}
	if a := v.(*atomic.Int64); a.Load() != int64(wait) {
		a.Store(int64(wait))
	}
}

// consultFirst asks the retransmit stage about a downlink just written for the first time; the
// question is deferred when the app's stage is known to wait long enough (see above).
func (s *Server) consultFirst(cs *connState, seq uint64) {
	wait := s.asks.firstWait(cs.appID)
	if wait < minDeferredWait || s.skips(cs.appID, stage.SignalRetransmit) {
		s.consult(cs, seq, 1)
		return
	}
	cs.mu.Lock()
	in, ok := cs.inflight[seq]
	if !ok {
		cs.mu.Unlock()
		return
	}
	// As consult does: the question is owed from now, so the end of the connection reports it.
	in.attempts, in.pending = 1, true
	cs.inflight[seq] = in
	cs.mu.Unlock()
	now := time.Now().UnixNano()
	switch s.asks.add(deferredAsk{cs: cs, seq: seq, at: now, due: now + int64(min(wait/2, maxDeferral))}) {
	case askFull:
		s.ask(cs, seq, 1, now)
	case askArm:
		s.wheel.AfterFunc(askSweep, s.sweepAsks)
	}
}

// What add did with a question.
type askAdded uint8

const (
	askQueued askAdded = iota // queued; the sweep is armed
	askArm                    // queued; the caller arms the sweep
	askFull                   // refused: the queue is full
)

// add queues a deferred question.
func (d *deferredAsks) add(a deferredAsk) askAdded {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.q)-d.head >= maxDeferredAsks {
		return askFull
	}
	d.q = append(d.q, a)
	if !d.armed {
		d.armed = true
		return askArm
	}
	return askQueued
}

// takeDue removes the questions due by now, in order, into buf, and reports whether others wait.
func (d *deferredAsks) takeDue(now int64, buf []deferredAsk) ([]deferredAsk, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.head < len(d.q) && d.q[d.head].due <= now {
		buf = append(buf, d.q[d.head])
		d.q[d.head] = deferredAsk{}
		d.head++
	}
	switch {
	case d.head == len(d.q):
		d.q, d.head = d.q[:0], 0
	case d.head > len(d.q)/2:
		n := copy(d.q, d.q[d.head:])
		clear(d.q[n:])
		d.q, d.head = d.q[:n], 0
	}
	more := len(d.q) > 0
	d.armed = more
	return buf, more
}

// sweepAsks runs on the wheel's goroutine: it asks the deferred questions now due about the
// downlinks still unACKed, then re-arms while others wait. It never blocks (the lane's reserve).
func (s *Server) sweepAsks() {
	due, more := s.asks.takeDue(time.Now().UnixNano(), nil)
	for _, a := range due {
		if a.cs.owesFirstAsk(a.seq) {
			s.ask(a.cs, a.seq, 1, a.at)
		}
	}
	if more {
		s.wheel.AfterFunc(askSweep, s.sweepAsks)
	}
}

// owesFirstAsk reports whether the downlink with seq is still in flight with its first question
// owed: not ACKed, forgotten, evicted, nor asked about by another road (an adoption) meanwhile.
func (cs *connState) owesFirstAsk(seq uint64) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	in, ok := cs.inflight[seq]
	return ok && in.attempts == 1 && in.pending && in.timer == nil
}

// answeredFirst learns the app's first wait from an answer about a first write.
func (s *Server) answeredFirst(app string, out pipeline.Outcome) {
	switch {
	case out.Verdict == stage.Reject, out.Verdict == stage.Continue && out.After > 0:
		s.asks.learn(app, out.After)
	}
}
