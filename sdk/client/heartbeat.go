package client

import (
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

// heartbeatLoop sends a Heartbeat whenever nothing was written for one interval: any frame counts as
// liveness for the server, so a busy connection sends none.
func (c *Client) heartbeatLoop() {
	defer c.wg.Done()
	t := time.NewTimer(c.interval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		idle := time.Since(c.start) - time.Duration(c.lastWrite.Load())
		if idle < c.interval {
			t.Reset(c.interval - idle)
			continue
		}
		c.wmu.Lock()
		c.hbSeq++
		err := c.writeLocked(protocol.SigHeartbeat, c.hbSeq, nil)
		c.wmu.Unlock()
		if err != nil {
			return
		}
		t.Reset(c.interval)
	}
}
