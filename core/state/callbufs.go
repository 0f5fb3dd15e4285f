package state

import (
	"sync"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// A batch's request to a business server or a gateway is built from the lane's items, sent, and
// dropped when the call returns: Kitex encodes it on the lane's goroutine (rpc.Detached: no pool
// goroutine can still hold it), a webhook marshals it before posting. So each link keeps the
// requests and their slices in a pool and reuses them, rather than allocate both per batch, about
// one batch per uplink at a few thousand uplinks per second (issue 13's allocation profile). The
// exception is a call made once the lane's context had ended (its Close gave up): Detached leaves
// that context alone, the call goes through Kitex's timeout pool and returns before it is done,
// so its request is left to the garbage collector.

// bizCall is one Business.Deliver request with its events slice.
type bizCall struct {
	events []*api.Event
	req    api.DeliverRequest
}

// bizCalls pools bizCall; the zero value is ready.
type bizCalls struct{ p sync.Pool }

// get returns a request whose events are items' (len(items) of them, in order).
func (c *bizCalls) get(items []bizItem) *bizCall {
	bc, _ := c.p.Get().(*bizCall)
	if bc == nil {
		bc = new(bizCall)
	}
	for _, it := range items {
		bc.events = append(bc.events, it.ev)
	}
	bc.req = api.DeliverRequest{Events: bc.events}
	return bc
}

// put takes bc back once its call returned; nothing of it may be kept (copy the events out).
func (c *bizCalls) put(bc *bizCall) {
	clear(bc.events)
	bc.events = bc.events[:0]
	bc.req = api.DeliverRequest{}
	c.p.Put(bc)
}

// pushCall is one Gateway.Push request with its frames slice.
type pushCall struct {
	frames []*fleet.DownFrame
	req    fleet.PushRequest
}

// pushCalls pools pushCall; the zero value is ready.
type pushCalls struct{ p sync.Pool }

// get returns a request for items' frames (in order), from stateID with proof.
func (c *pushCalls) get(items []downItem, stateID, proof string) *pushCall {
	pc, _ := c.p.Get().(*pushCall)
	if pc == nil {
		pc = new(pushCall)
	}
	for _, it := range items {
		pc.frames = append(pc.frames, it.f)
	}
	pc.req = fleet.PushRequest{Frames: pc.frames, StateId: stateID, Proof: proof}
	return pc
}

// put takes pc back once its call returned.
func (c *pushCalls) put(pc *pushCall) {
	clear(pc.frames)
	pc.frames = pc.frames[:0]
	pc.req = fleet.PushRequest{}
	c.p.Put(pc)
}
