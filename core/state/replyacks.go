package state

import (
	"sync"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/protocol"
)

// UplinkAcks in the Deliver reply (docs/adr/0012-uplink-acks-in-the-deliver-reply.md). A gateway
// that sets DeliverRequest.acks_in_reply has its call held up to state.uplink_ack_wait while the
// uplinks in it go through the pipeline and the business server; the answers decided meanwhile
// return in DeliverResponse.acks, saving the Push call each would take, and the others go by Push.
//
// A connection's answers must reach its device in the order they were decided, though they now
// take two roads that can overtake each other. Three rules keep the order:
//   - A connection answers through a call's reply only if, when the call arrived, it had no uplink
//     unanswered and no answer on its way by Push (connState.upUnanswered, pushAcks): everything
//     decided earlier is on the gateway's socket queue before the reply is read.
//   - Its answers staged for the reply go by Push instead, in order, if the call stops waiting
//     while one of its uplinks is still unanswered: an answer decided later, which can only go by
//     Push, cannot overtake them.
//   - A gateway sends a connection's events on one lane, one call at a time, and writes a reply's
//     answers before the next call: the next reply comes after this one.
//
// An app whose business server takes longer than the wait (its calls' moving average) is not
// waited for: its answers go by Push, and a slow app holds the lane it shares with others only
// until its average shows it.

// ackCollector gathers the answers of one Deliver call that asked for them in its reply.
type ackCollector struct {
	mu      sync.Mutex
	open    bool
	waiting int           // uplinks of eligible connections not answered yet
	done    chan struct{} // made by wait; closed when waiting reaches 0
	slots   []replySlot   // one per eligible connection, indexed by connState.replyIdx
	// heartbeats are the HeartbeatAcks decided while the call was open (heartbeatreply.go).
	heartbeats []heartbeatAck
	// ups and hbs are the call's uplinks and heartbeats: the most slots and heartbeats it can
	// gather, so that each list is made once at its full size rather than grown by doubling.
	ups, hbs int
}

// replySlot is one connection's part of a reply: the route it answers on, and what it staged.
type replySlot struct {
	cs       *connState
	r        *route
	acks     []keptAck
	expected int // its uplinks in the call not answered yet
}

// newAckCollector returns the collector of a call carrying events.
func newAckCollector(events []*fleet.UpEvent) *ackCollector {
	c := &ackCollector{open: true}
	for _, ev := range events {
		switch protocol.Signal(ev.Signal) {
		case protocol.SigUplink:
			c.ups++
		case protocol.SigHeartbeat:
			c.hbs++
		}
	}
	return c
}

// expectUplink counts an uplink of cs arriving in the call col collects for (nil: the caller does
// not read answers in its reply), and makes cs answer through col when the rules allow.
func (s *Server) expectUplink(cs *connState, col *ackCollector) {
	inTime := col != nil && s.answersInTime(cs.appID)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.upUnanswered++
	if col == nil {
		return
	}
	if cs.replyTo == col {
		col.mu.Lock()
		col.slots[cs.replyIdx].expected++
		col.waiting++
		col.mu.Unlock()
		return
	}
	r := cs.route.Load()
	if cs.replyTo != nil || cs.upUnanswered > 1 || cs.pushAcks.Load() > 0 || r == nil || !inTime {
		return
	}
	col.mu.Lock()
	if col.slots == nil {
		col.slots = make([]replySlot, 0, max(col.ups, 1))
	}
	cs.replyTo, cs.replyIdx = col, int32(len(col.slots))
	col.slots = append(col.slots, replySlot{cs: cs, r: r, expected: 1})
	col.waiting++
	col.mu.Unlock()
}

// answersInTime reports whether app's business server answers within the wait, on average.
func (s *Server) answersInTime(app string) bool {
	l, err := s.business.forApp(app)
	if err != nil || l == nil {
		return true // answered at once (1304)
	}
	return time.Duration(l.callTime.Load()) <= s.cfg.UplinkAckWait
}

// wait holds the call until every expected answer is in or the bound passes, and counts which.
func (c *ackCollector) wait(bound time.Duration, m *metrics, timers *sync.Pool) {
	c.mu.Lock()
	if c.waiting <= 0 {
		if len(c.slots) > 0 {
			m.ackWaits[waitAnswered].Add(1) // in before the call was done with its events
		}
		c.mu.Unlock()
		return
	}
	c.done = make(chan struct{})
	done := c.done
	c.mu.Unlock()
	// A timer from the pool: a new one per waiting call was most of the wait's allocations. Since
	// Go 1.23 a stopped timer's channel holds no stale tick, so a reused one cannot fire early.
	t, _ := timers.Get().(*time.Timer)
	if t == nil {
		t = time.NewTimer(bound)
	} else {
		t.Reset(bound)
	}
	select {
	case <-done:
		m.ackWaits[waitAnswered].Add(1)
	case <-t.C:
		m.ackWaits[waitTimedOut].Add(1)
	}
	t.Stop()
	timers.Put(t)
}

// Outcomes of a Deliver call's wait, the index of metrics.ackWaits.
const (
	waitAnswered = iota // every answer waited for came in
	waitTimedOut        // state.uplink_ack_wait passed first
)

// finish closes col and returns the answers its reply carries. A connection with an uplink still
// unanswered sends what it staged by Push, under its lock so that no later answer overtakes them.
// A gateway in this process gets the answers as they are (internal/colocal's answerHandedOver):
// nothing here keeps or changes them once returned.
func (s *Server) finish(col *ackCollector) []*fleet.DownFrame {
	col.mu.Lock()
	col.open = false
	slots := col.slots
	n := len(col.slots) + len(col.heartbeats)
	col.mu.Unlock()
	fs := newFrameSet(n)
	for i := range slots {
		sl := &slots[i]
		cs := sl.cs
		cs.mu.Lock()
		if cs.replyTo != col {
			cs.mu.Unlock()
			continue // an answer decided after the close took the staged ones to Push already
		}
		cs.replyTo = nil
		col.mu.Lock()
		acks := sl.acks
		sl.acks = nil
		col.mu.Unlock()
		if cs.upUnanswered > 0 || cs.route.Load() != sl.r {
			s.sendAcksLocked(cs, acks)
			cs.mu.Unlock()
			continue
		}
		cs.mu.Unlock()
		for _, a := range acks {
			fs.add(fleet.DownFrame{
				ConnId: int64(sl.r.key.id), Signal: int8(protocol.SigUplinkAck), Seq: int64(a.seq), Body: a.body,
			})
		}
	}
	s.metrics.ackPaths[ackByReply].Add(int64(len(fs.frames)))
	s.heartbeatFrames(col, &fs)
	return fs.frames
}

// frameSet makes a reply's frames in one array sized for the usual reply (one answer per slot
// and heartbeat) instead of one object each; a frame beyond it is made on its own.
type frameSet struct {
	frames []*fleet.DownFrame
	vals   []fleet.DownFrame
}

func newFrameSet(n int) frameSet {
	if n == 0 {
		return frameSet{}
	}
	return frameSet{frames: make([]*fleet.DownFrame, 0, n), vals: make([]fleet.DownFrame, 0, n)}
}

func (f *frameSet) add(fr fleet.DownFrame) {
	var p *fleet.DownFrame
	if len(f.vals) < cap(f.vals) {
		f.vals = append(f.vals, fr)
		p = &f.vals[len(f.vals)-1]
	} else {
		p = &fleet.DownFrame{}
		*p = fr
	}
	f.frames = append(f.frames, p)
}

// routeAck sends one UplinkAck: staged for the reply of the call that carried its uplink when cs
// answers through one that is still open, otherwise by Push (or kept while cs is parked), after
// anything cs staged for a reply that closed.
func (s *Server) routeAck(cs *connState, seq uint64, body []byte) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.upUnanswered > 0 {
		cs.upUnanswered--
	}
	col := cs.replyTo
	if col == nil {
		s.sendAckLocked(cs, seq, body)
		return
	}
	col.mu.Lock()
	sl := &col.slots[cs.replyIdx]
	if col.open {
		staging := cs.route.Load() == sl.r
		n := 1
		if !staging {
			n = sl.expected // cs answers by Push from now on: the call waits for none of them
		}
		sl.expected -= n
		col.waiting -= n
		if col.waiting == 0 && col.done != nil {
			close(col.done)
			col.done = nil // wait kept its own copy; a later answer must not close it again
		}
		if staging {
			sl.acks = append(sl.acks, keptAck{seq: seq, body: body})
			col.mu.Unlock()
			return
		}
	}
	// The call stopped waiting, or cs dropped or resumed elsewhere meanwhile: what cs staged
	// leaves first, by Push (or is kept for its Resume).
	staged := sl.acks
	sl.acks = nil
	col.mu.Unlock()
	cs.replyTo = nil
	s.sendAcksLocked(cs, staged)
	s.sendAckLocked(cs, seq, body)
}

func (s *Server) sendAcksLocked(cs *connState, acks []keptAck) {
	for _, a := range acks {
		s.sendAckLocked(cs, a.seq, a.body)
	}
}

// sendAckLocked queues an UplinkAck by Push, counted in cs.pushAcks until the Push call returns,
// or keeps it for a parked connection's Resume. cs.mu is held: a connection's answers leave in the
// order decided.
func (s *Server) sendAckLocked(cs *connState, seq uint64, body []byte) {
	for try := 0; try < 2; try++ {
		if r := cs.route.Load(); r != nil && s.sendAckRoute(cs, r, seq, body) {
			return
		}
		if cs.keepAckLocked(seq, body, &s.metrics) {
			return
		}
		// Resumed in between (or the gateway's queue is full): one more try.
	}
}

// Roads an UplinkAck takes, the index of metrics.ackPaths.
const (
	ackByReply = iota
	ackByPush
	ackKept
	numAckPaths
)
