// Package colocal lets a gateway and a state server that run in one process (`plato up`) call each
// other's service directly instead of over loopback Kitex, with what the wire guarantees kept:
// each side gets its own copy of what crosses (through the generated Thrift codec), a handler's
// panic or error reaches the caller as the Kitex client would report it, calls are bounded and
// observed the same way, and once the local server stops, calls go to the wire, where they fail
// as a refused connection does (docs/adr/0015-in-process-link.md).
//
// The process that starts both roles makes one Dir and hands it to both; nothing is global. A
// peer the Dir does not hold, at the address the registry shows, is called over Kitex as before.
package colocal

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
)

// Dir is the process's directory of local servers: registry node ID and RPC address to handler.
// A nil *Dir holds nothing (the in-process link is off).
type Dir struct {
	mu       sync.Mutex
	states   map[string]*Entry[fleet.State]
	gateways map[string]*Entry[fleet.Gateway]
	calls    [numMethods]atomic.Int64
}

// New returns an empty directory.
func New() *Dir {
	return &Dir{states: map[string]*Entry[fleet.State]{}, gateways: map[string]*Entry[fleet.Gateway]{}}
}

// Entry is one local server's handler, served until Stop.
type Entry[H any] struct {
	id, addr string
	h        H
	// n counts the calls in the handler; stoppedBit is set by Stop, after which no call enters.
	n      atomic.Int64
	remove func()
}

const stoppedBit = int64(1) << 62

func (e *Entry[H]) enter() bool {
	if e.n.Add(1)&stoppedBit != 0 {
		e.n.Add(-1)
		return false
	}
	return true
}

func (e *Entry[H]) leave() { e.n.Add(-1) }

// Stop ends local calls: from now on they go to the wire, as the server's Kitex clients would, and
// fail as they do once its listener is closed. It waits up to wait for the calls in its handler to
// return, as Kitex's server waits for those in flight (rpc.Server's exit wait). Safe on nil and
// more than once.
func (e *Entry[H]) Stop(wait time.Duration) {
	if e == nil {
		return
	}
	e.n.Or(stoppedBit)
	e.remove()
	deadline := time.Now().Add(wait)
	for e.n.Load()&^stoppedBit > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// ServeState puts a state server's handler in the directory, under its registry ID and the RPC
// address it registers; it replaces one of the same ID. Nil on a nil Dir.
func (d *Dir) ServeState(id, addr string, h fleet.State) *Entry[fleet.State] {
	if d == nil {
		return nil
	}
	return serve(d, d.states, id, addr, h)
}

// ServeGateway puts a gateway's handler in the directory, as ServeState.
func (d *Dir) ServeGateway(id, addr string, h fleet.Gateway) *Entry[fleet.Gateway] {
	if d == nil {
		return nil
	}
	return serve(d, d.gateways, id, addr, h)
}

func serve[H any](d *Dir, m map[string]*Entry[H], id, addr string, h H) *Entry[H] {
	e := &Entry[H]{id: id, addr: addr, h: h}
	e.remove = func() {
		d.mu.Lock()
		if m[id] == e {
			delete(m, id)
		}
		d.mu.Unlock()
	}
	d.mu.Lock()
	m[id] = e
	d.mu.Unlock()
	return e
}

func lookup[H any](d *Dir, m map[string]*Entry[H], id, addr string) *Entry[H] {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := m[id]; e != nil && e.addr == addr {
		return e
	}
	return nil
}

// Calls reports how many calls went through the in-process link, by Kitex method name
// (Deliver, Ping, Push, Sessions, ...). Zero on a nil Dir.
func (d *Dir) Calls() map[string]int64 {
	out := map[string]int64{}
	if d == nil {
		return out
	}
	for i := range numMethods {
		out[methodNames[i]] = d.calls[i].Load()
	}
	return out
}

// method indexes the services' methods, for counting without a map lookup.
type method int

const (
	mDeliver method = iota
	mPing
	mLocalPush
	mLocalPushBatch
	mLocalSession
	mPush
	mSessions
	numMethods
)

var methodNames = [numMethods]string{"Deliver", "Ping", "LocalPush", "LocalPushBatch", "LocalSession", "Push", "Sessions"}

// requestLent marks the methods whose handler only borrows its request: it reads it during the
// call and copies what it keeps, so the request goes to the handler as it is, uncopied, and the
// caller may reuse it once the call returns. Deliver's is (core/state's handler keeps strings and
// an uplink's body, which the gateway made for that frame and never reuses): the copy was a
// quarter of the bytes the process allocated per uplink at 20k uplinks/s. The others keep their
// copy (Push's frames are kept by the gateway).
var requestLent = [numMethods]bool{mDeliver: true}

// answerHandedOver marks the methods whose handler builds its answer for the call and keeps no
// part of it, so the answer goes to the caller as it is, uncopied. Deliver's is (core/state,
// finish: frames made for this reply, the business's answer bodies, which nothing else holds):
// the copy was 7% of the bytes the process allocated per uplink at 20k uplinks/s. The others
// keep their copy (LocalPush's answer lives in its push's record, for one).
var answerHandedOver = [numMethods]bool{mDeliver: true}
