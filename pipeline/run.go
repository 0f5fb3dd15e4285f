package pipeline

import (
	"errors"
	"fmt"

	"github.com/platoim/plato/internal/batch"
	"github.com/platoim/plato/sdk/stage"
)

// item is one queued signal. It is stored by value in the lane's ring, so queuing allocates
// nothing of its own.
type item struct {
	ev   stage.Event
	done func(Outcome)
	// target is set for a timer signal: the one stage (pipeline + name) that set the timer.
	target *scope
}

// Run queues ev on its connection's lane and returns at once; done (which may be nil) is called
// exactly once with the outcome, on a lane goroutine, after the done of every earlier signal of
// the same connection. An uplink that no stage of its app listens to, on an idle lane, gets its
// done on the caller's goroutine before Run returns (passes): the caller must not hold what done
// takes. Run returns ErrBackpressure when the lane is full and ErrClosed after
// Close; done is not called then.
func (p *Pipelines) Run(ev stage.Event, done func(Outcome)) error { return p.run(ev, done, false) }

// RunReserved is Run for the signals that keep the stages' view right (a disconnect, the ACK of a
// downlink in flight, a resumed connection's replay): it takes the lane's reserve and is never
// refused with ErrBackpressure. The caller bounds how many there are (one disconnect per
// connection, one ACK per downlink).
func (p *Pipelines) RunReserved(ev stage.Event, done func(Outcome)) error {
	return p.run(ev, done, true)
}

func (p *Pipelines) run(ev stage.Event, done func(Outcome), reserved bool) error {
	if ev.Signal == stage.SignalTimer {
		return errors.New("running a signal: timer signals come from Host.SetTimer only")
	}
	key := connKey(ev.Conn)
	if ev.Signal == stage.SignalRoute {
		// A push has no connection: spread pushes over the lanes by message.
		key = (fnvOffset ^ ev.MsgID) * fnvPrime
	} else if ev.Signal == stage.SignalUplink && p.passes(ev, key, done) {
		return nil
	}
	return laneErr(p.lanes.add(ev.Conn.AppID, key, item{ev: ev, done: done}, reserved))
}

// passes gives an uplink its outcome at once, on the caller's goroutine, when no stage of its app's
// chain listens to its signal and its lane is idle (batch.Batcher.RunIdle): the lane would only
// have called done with ev's payload, after the done of every signal queued before it, and an idle
// lane has none left. The order a connection's signals get their done in is that of Run, as
// through the lane. What it spares is the lane goroutine's wake-up per signal: the shipped auth
// stage does not act on uplinks (ActsOn), so each uplink took a hand-off to a lane only to pass.
// A reload that adds a listening stage meanwhile finds ev as it would find a signal a lane had
// just run. Only uplinks pass: the state server's one caller of Run for them (its Deliver handler)
// holds no lock across it; the other signals keep their lane.
func (p *Pipelines) passes(ev stage.Event, key uint64, done func(Outcome)) bool {
	if p.noPass || p.Listens(ev.Conn.AppID, ev.Signal) {
		return false
	}
	b := p.lanes.of(ev.Conn.AppID)
	if b == nil {
		return false // closed: the lanes answer ErrClosed
	}
	return b.RunIdle(key, func() {
		if done != nil {
			p.finish(done, Outcome{Payload: ev.Payload})
		}
	})
}

// Fill is how full the fullest lane of any app is, as a fraction of its bound (batch.Batcher.Fill):
// what the state server's overload manager watches.
func (p *Pipelines) Fill() float64 { return p.lanes.fill() }

// enqueueTimer queues a fired timer for the stage that set it, on the lane of its app and key.
func (p *Pipelines) enqueueTimer(target *scope, appID, key string, data []byte) error {
	ev := stage.Event{Signal: stage.SignalTimer, Conn: stage.Conn{AppID: appID}, TimerKey: key, TimerData: data}
	return laneErr(p.lanes.add(appID, timerKey(appID, key), item{ev: ev, target: target}, false))
}

func laneErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, batch.ErrFull):
		return ErrBackpressure
	case errors.Is(err, batch.ErrClosed):
		return ErrClosed
	}
	return fmt.Errorf("queuing a signal: %w", err)
}

// FNV-1a, inlined so hashing a connection allocates nothing.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// connKey is the lane key of a connection: its gateway and its ID on that gateway.
func connKey(c stage.Conn) uint64 {
	h := fnvString(fnvOffset, c.GatewayID)
	h ^= c.ConnID
	h *= fnvPrime
	return h
}

// timerKey is the lane key of a timer signal.
func timerKey(appID, key string) uint64 {
	h := fnvString(fnvOffset, appID)
	h ^= 0xff // separator: ("ab","c") and ("a","bc") differ
	h *= fnvPrime
	return fnvString(h, key)
}

// ListensRoute reports whether a stage of appID's current chain would be called for the route
// event of a push that names a session (session) or names none: ListensRoute(app, true) is
// Listens(app, SignalRoute); with false, the stages that act on session pushes only
// (stage.RouteSelector) do not count. A push's route event is not ordered with any connection's
// signals, so a caller may settle it without the pipeline when nobody listens.
func (p *Pipelines) ListensRoute(appID string, session bool) bool {
	c := p.snap.Load().chainFor(appID)
	if c == nil {
		return false
	}
	ev := stage.Event{Signal: stage.SignalRoute}
	if session {
		ev.Session = "-"
	}
	for _, st := range c.steps {
		if st.inst.actsOn().calls(st.signals, &ev) {
			return true
		}
	}
	return false
}

// Listens reports whether a stage of appID's current chain listens to sig (lists it and, at its
// last Init, said it acts on it). A caller may skip the
// pipeline for a notification nobody listens to (a downlink ACK, a retransmit question); a reload
// can change the answer at any moment, so it suits only signals whose order with the connection's
// other signals does not matter.
func (p *Pipelines) Listens(appID string, sig stage.Signal) bool {
	c := p.snap.Load().chainFor(appID)
	if c == nil {
		return false
	}
	for _, st := range c.steps {
		if st.calledFor().has(sig) {
			return true
		}
	}
	return false
}
