package client

import (
	"cmp"
	"slices"

	"github.com/platoim/plato/sdk/protocol"
)

// uplink is one Send waiting for its UplinkAck. It stays in Client.pending across a reconnect: a
// Resume sends it again with the same seq, a Login fails it.
type uplink struct {
	seq     uint64 // set before it is added to pending
	payload []byte
	resent  bool // guarded by Client.pmu: a 1008 answer then means the server had it
	// result receives the outcome, once: from the reader (the ack) or from whoever gives up on it.
	result chan error
	// moved receives the connection it was sent again on, so Send restarts its ack timer. Nil
	// without Config.Reconnect: nothing is sent again.
	moved chan *conn
}

// newUplink prepares payload for Send; reconnect says whether it may have to be sent again.
func newUplink(payload []byte, reconnect bool) *uplink {
	u := &uplink{payload: payload, result: make(chan error, 1)}
	if reconnect {
		// A resend may happen after Send returned (on a timeout, say), and the caller owns payload.
		u.payload = append([]byte(nil), payload...)
		u.moved = make(chan *conn, 1)
	}
	return u
}

func (c *Client) addPending(u *uplink) {
	c.pmu.Lock()
	c.pending[u.seq] = u
	c.pmu.Unlock()
}

// forget drops u, unless its seq now belongs to another uplink (seqs restart after a Login).
func (c *Client) forget(u *uplink) {
	c.pmu.Lock()
	if c.pending[u.seq] == u {
		delete(c.pending, u.seq)
	}
	c.pmu.Unlock()
}

// resolve hands an UplinkAck to the Send waiting for it; acks for abandoned Sends are dropped.
func (c *Client) resolve(seq uint64, ack protocol.Ack) {
	c.pmu.Lock()
	u := c.pending[seq]
	delete(c.pending, seq)
	resent := u != nil && u.resent
	c.pmu.Unlock()
	switch {
	case u == nil:
	case ack.Code == protocol.CodeDuplicate && resent:
		u.result <- nil // §11.1: the server had it before the connection dropped
	default:
		u.result <- ackErr(ack)
	}
}

func ackErr(ack protocol.Ack) error {
	if ack.Code != protocol.CodeOK {
		return &protocol.Error{Code: ack.Code, Msg: ack.Message}
	}
	return nil
}

// failPending ends every waiting Send with the error why(u) gives.
func (c *Client) failPending(why func(*uplink) error) {
	c.pmu.Lock()
	all := c.pending
	c.pending = make(map[uint64]*uplink)
	c.pmu.Unlock()
	for _, u := range all {
		u.result <- why(u)
	}
}

// resend writes the waiting uplinks again on a resumed connection, in seq order and with their
// seqs, before any new one: an older seq after a newer one would be taken for a duplicate. cn.umu
// must be held. Those it cannot write stay pending for the next connection.
func (c *Client) resend(cn *conn) {
	c.pmu.Lock()
	all := make([]*uplink, 0, len(c.pending))
	for _, u := range c.pending {
		u.resent = true
		all = append(all, u)
	}
	c.pmu.Unlock()
	slices.SortFunc(all, func(a, b *uplink) int { return cmp.Compare(a.seq, b.seq) })
	for _, u := range all {
		if err := cn.write(protocol.SigUplink, u.seq, u.payload); err != nil {
			return
		}
		// Only the goroutine taking over a connection sends here, so the slot is free once drained.
		select {
		case <-u.moved:
		default:
		}
		u.moved <- cn
	}
	if len(all) > 0 {
		cn.log.Info("plato uplinks sent again after resume", "count", len(all))
	}
}
