package state

import "math"

// Where a downlink goes before it is sent (connState.downlinkLane).
type downlinkRoute uint8

const (
	laneUsed downlinkRoute = iota // through the connection's pipeline lane
	laneNone                      // no stage listens: its outcome is decided at once
	laneFull                      // the connection has as many downlinks in its lane as it can count
)

// downlinkLane decides whether a downlink goes through the connection's pipeline lane. direct
// says no stage of the app listens to downlinks; the downlink still takes the lane while an
// earlier one of the connection is there, so the connection's downlinks reach its gateway in seq
// order whatever a pipeline reload changed meanwhile. A downlink given laneUsed must call
// leftLane once its outcome has queued its frame. The caller holds cs.pushMu, which orders the
// connection's downlinks.
func (cs *connState) downlinkLane(direct bool) downlinkRoute {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	switch {
	case direct && cs.laneDownlinks == 0:
		return laneNone
	case !cs.enterLaneLocked():
		// 65,535 downlinks of one connection queued in the pipeline: far beyond any lane's
		// room, refused as a full lane would refuse it.
		return laneFull
	}
	return laneUsed
}

// enterLaneLocked counts a downlink about to enter the lane, and reports whether it could (see
// downlinkLane); cs.mu is held. One counted must call leftLane.
func (cs *connState) enterLaneLocked() bool {
	if cs.laneDownlinks == math.MaxUint16 {
		return false
	}
	cs.laneDownlinks++
	return true
}

// leftLane ends what downlinkLane(…) == laneUsed started.
func (cs *connState) leftLane() {
	cs.mu.Lock()
	cs.laneDownlinks--
	cs.mu.Unlock()
}
