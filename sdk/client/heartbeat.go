package client

import (
	"math/rand/v2"
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

// heartbeatLoop sends a Heartbeat whenever nothing was written for one interval plus a little
// jitter (heartbeatDelay): any frame counts as liveness for the server, so a busy connection sends none.
func (cn *conn) heartbeatLoop() {
	due := heartbeatDelay(cn.interval, rand.Int64N)
	t := time.NewTimer(due)
	defer t.Stop()
	for {
		select {
		case <-cn.done:
			return
		case <-t.C:
		}
		idle := time.Since(cn.start) - time.Duration(cn.lastWrite.Load())
		if idle < due {
			t.Reset(due - idle)
			continue
		}
		cn.wmu.Lock()
		cn.hbSeq++
		err := cn.writeLocked(protocol.SigHeartbeat, cn.hbSeq, nil)
		cn.wmu.Unlock()
		if err != nil {
			return
		}
		due = heartbeatDelay(cn.interval, rand.Int64N)
		t.Reset(due)
	}
}
