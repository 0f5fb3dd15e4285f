package state

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/internal/timewheel"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// connKey identifies a connection: connection IDs are unique per gateway.
type connKey struct {
	gw string
	id uint64
}

// waiter collects the ACKs of one Push that asked to wait for them. done closes once every tracked
// target ACKed, but not before arm: ACKs may arrive while later targets are still being sent. done
// is made by arm only when something is still awaited then: most waits of a batch end before.
type waiter struct {
	mu       sync.Mutex
	pending  int
	acked    []bool
	armed    bool
	finished bool
	done     chan struct{}
}

func newWaiter(n int) *waiter {
	return &waiter{acked: make([]bool, n)}
}

func (w *waiter) add() {
	w.mu.Lock()
	w.pending++
	w.mu.Unlock()
}

func (w *waiter) ack(i int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.acked[i] {
		return
	}
	w.acked[i] = true
	w.pending--
	w.finish()
}

// newCountdown is a waiter of items that are not told apart: each add is ended by a doneOne.
func newCountdown() *waiter {
	return &waiter{}
}

func (w *waiter) doneOne() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending--
	w.finish()
}

// arm lets done close once nothing is awaited, and returns it: nil when nothing is awaited now.
func (w *waiter) arm() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = true
	w.finish()
	if w.finished {
		return nil
	}
	if w.done == nil {
		w.done = make(chan struct{})
	}
	return w.done
}

func (w *waiter) finish() {
	if w.armed && w.pending == 0 && !w.finished {
		w.finished = true
		if w.done != nil {
			close(w.done)
		}
	}
}

// inflight is a downlink whose seq is assigned and which the device has not ACKed. It keeps the
// body, so that a connection that resumes gets it again (docs/protocol.md §11.1).
type inflight struct {
	msgID   uint64
	payload []byte
	qos     stage.QoS
	w       *waiter
	idx     int
	sent    int64 // unix nanoseconds of the Push, for the ACK latency histogram
	// written is set once the downlink went to a gateway: a replay then carries the retransmit flag.
	written bool
	// deferred is set when a stage gave up on it while the connection was parked: it is reported
	// undelivered only if the connection ends without the device ACKing it.
	deferred bool
	// The resend state (retransmit.go). tracked: a stage asked for resends or a report, so the end
	// of the connection reports it undelivered; attempts: writes so far; timer, gen and giveUp: the
	// armed wait (gen tells a stale firing from the current one), and what its end does.
	tracked  bool
	pending  bool // the stage has been asked and has not answered yet
	giveUp   bool
	gen      uint32
	attempts int
	timer    *timewheel.Timer
}

// parkedPush is a push that reached a parked connection: it gets its seq, and runs through the
// pipeline, when the device resumes.
type parkedPush struct {
	msgID   uint64
	payload []byte
	qos     stage.QoS
	w       *waiter
	idx     int
	sent    int64
}

// route is where a connection is reachable: the gateway holding its socket and the ID that gateway
// gave it. A resumed connection gets a new route and keeps its identity.
type route struct {
	key    connKey
	gw     *gatewayLink
	remote string
}

// connState is what the state server knows about one logged-in connection.
type connState struct {
	// key is the connection's identity: the key of its first route. Stages (stage.Conn) and business
	// servers (conn_id) know it by this key, which a Resume does not change.
	key connKey
	// appID and did slice didKey, the did index's key for them, and uid does too when it is the
	// did (most devices): one string where the event's three and the index's two keys took five.
	appID    string
	did, uid string
	didKey   string
	// route is nil while the connection is parked.
	route    atomic.Pointer[route]
	lastSeen atomic.Int64 // unix nanoseconds of the last frame

	// pushMu makes giving a downlink its seq and handing it to the pipeline one step, so that
	// concurrent pushes to the connection enter its pipeline lane, and reach its gateway, in seq
	// order (docs/protocol.md §8.2). Taken before mu, never while holding it.
	pushMu sync.Mutex

	mu       sync.Mutex
	closed   bool
	loggedIn bool
	// parked is set from the drop of the socket until a Resume or the end of the reconnect
	// window (park.timer), when the connection ends with parkReason; park holds what a parked
	// connection keeps, nil while it has a route (most of the time, for most connections).
	// resuming is set while a Resume is being answered.
	parked     bool
	resuming   bool
	parkReason protocol.Code
	// laneDownlinks counts the downlinks handed to the pipeline lane whose outcome has not been
	// acted on yet. A downlink no stage listens to skips the lane only when it is 0, so it never
	// overtakes one still queued there (after a reload that removed the app's downlink stage).
	// It sits in the padding after parkReason (TestConnStateStaysSmall).
	laneDownlinks uint16
	park          *parkState
	hbTimer       *timewheel.Timer
	lastUpSeq     uint64
	nextDownSeq   uint64
	// upInflight counts uplinks the business server has not answered; a duplicate's ACK waits in
	// dupAcks until they are, so a device's ACKs always come back in the order it sent.
	dupAcks []uint64
	// The roads of its UplinkAcks (replyacks.go): uplinks received and not answered yet, answers
	// queued by Push whose call has not returned, and the Deliver call it answers through (nil:
	// by Push) with its slot there. The four int32s share two words (TestConnStateStaysSmall).
	upInflight   int32
	upUnanswered int32
	replyIdx     int32
	pushAcks     atomic.Int32
	replyTo      *ackCollector
	// inflight is allocated on the first downlink: idle connections carry no map.
	inflight map[uint64]inflight
	order    []uint64      // inflight sequence numbers, oldest first, for eviction at MaxInflight
	evicted  []undelivered // tracked entries evicted under mu, reported once it is released
	// sessions the connection is in (nil for most): it leaves them all when it closes.
	sessions []string
}

// parkState is what a connection keeps while parked: made when it parks, dropped when it resumes
// or is forgotten, so a connection with a route carries one pointer for it (TestConnStateStaysSmall).
type parkState struct {
	// timer ends the reconnect window. lastRoute is the route the connection dropped from, whose
	// conn ID a Resume names.
	timer     *timewheel.Timer
	lastRoute connKey
	queued    []parkedPush // pushes that arrived while parked, oldest first
	acks      []keptAck    // UplinkAcks decided while parked (keepAck)
}

// routeKey is the key of the connection's current route, and false while it is parked.
func (cs *connState) routeKey() (connKey, bool) {
	if r := cs.route.Load(); r != nil {
		return r.key, true
	}
	return connKey{}, false
}

// gatewayID is the gateway holding the connection now, or the one it last had while parked.
func (cs *connState) gatewayID() string {
	if r := cs.route.Load(); r != nil {
		return r.key.gw
	}
	return cs.key.gw
}

func (cs *connState) remote() string {
	if r := cs.route.Load(); r != nil {
		return r.remote
	}
	return ""
}

func newConnState(key connKey, appID, did, uid, remote string, gw *gatewayLink) *connState {
	dk := didKey(appID, did)
	appID, did = dk[:len(appID)], dk[len(appID)+1:]
	if uid == did {
		uid = did
	}
	cs := &connState{key: key, appID: appID, did: did, uid: uid, didKey: dk}
	cs.route.Store(&route{key: key, gw: gw, remote: remote})
	cs.lastSeen.Store(time.Now().UnixNano())
	return cs
}

const connShards = 64

// registry is the sharded table of connections and the did index.
type conns struct {
	shards [connShards]connShard
	n      atomic.Int64 // connections filed (byKey also holds the routes of resumed ones)
}

type connShard struct {
	mu sync.RWMutex
	// byKey holds every connection under its identity and, once it resumed, under its current route
	// too: get answers both, and callers check which they were given (byIdentity, byRoute).
	byKey map[connKey]*connState
	byDID map[string]*connState
	// byUID holds the logged-in connections of a user (app + "\x00" + uid): one per device. A
	// user has a handful of devices, and a slice of them costs 8 bytes for one where a map
	// took over 200.
	byUID map[string][]*connState
}

func newConns() *conns {
	c := &conns{}
	for i := range c.shards {
		c.shards[i].byKey = map[connKey]*connState{}
		c.shards[i].byDID = map[string]*connState{}
		c.shards[i].byUID = map[string][]*connState{}
	}
	return c
}

func didKey(appID, did string) string { return appID + "\x00" + did }

// uidKey is the byUID key of cs: its didKey when the uid is the did.
func (cs *connState) uidKey() string {
	if cs.uid == cs.did {
		return cs.didKey
	}
	return didKey(cs.appID, cs.uid)
}

func hashString(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

func (c *conns) keyShard(k connKey) *connShard {
	return &c.shards[(uint32(k.id)^hashString(k.gw))%connShards]
}

func (c *conns) didShard(key string) *connShard { return &c.shards[hashString(key)%connShards] }

func (c *conns) get(k connKey) *connState {
	s := c.keyShard(k)
	s.mu.RLock()
	cs := s.byKey[k]
	s.mu.RUnlock()
	return cs
}

// byIdentity is the connection whose identity is k (what stages name), or nil.
func (c *conns) byIdentity(k connKey) *connState {
	if cs := c.get(k); cs != nil && cs.key == k {
		return cs
	}
	return nil
}

// byRoute is the connection a gateway holds as k now (what gateways name), or nil: a parked
// connection, or one that resumed elsewhere, is not the gateway's any more.
func (c *conns) byRoute(k connKey) *connState {
	cs := c.get(k)
	if cs == nil {
		return nil
	}
	if rk, ok := cs.routeKey(); !ok || rk != k {
		return nil
	}
	return cs
}

// reroute files cs under its new route key, and forgets the old one unless it is its identity.
func (c *conns) reroute(cs *connState, old, next connKey) {
	if old != cs.key && old != (connKey{}) {
		s := c.keyShard(old)
		s.mu.Lock()
		if s.byKey[old] == cs {
			delete(s.byKey, old)
		}
		s.mu.Unlock()
	}
	if next != cs.key {
		s := c.keyShard(next)
		s.mu.Lock()
		s.byKey[next] = cs
		s.mu.Unlock()
	}
}

func (c *conns) byDID(app, did string) *connState {
	key := didKey(app, did)
	s := c.didShard(key)
	s.mu.RLock()
	cs := s.byDID[key]
	s.mu.RUnlock()
	return cs
}

// addPending registers cs by key only: its login is still in the pipeline, so it is not yet its
// did's connection. It reports false when the key is taken.
func (c *conns) addPending(cs *connState) bool {
	s := c.keyShard(cs.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.byKey[cs.key]; taken {
		return false
	}
	s.byKey[cs.key] = cs
	c.n.Add(1)
	return true
}

// activate makes cs its did's connection, returning the connection it replaced.
func (c *conns) activate(cs *connState) (replaced *connState) {
	key := cs.didKey
	s := c.didShard(key)
	s.mu.Lock()
	replaced = s.byDID[key]
	s.byDID[key] = cs
	s.mu.Unlock()
	if cs.uid != "" {
		key := cs.uidKey()
		s := c.didShard(key)
		s.mu.Lock()
		if m := s.byUID[key]; !slices.Contains(m, cs) {
			s.byUID[key] = append(m, cs)
		}
		s.mu.Unlock()
	}
	return replaced
}

// byUID returns the logged-in connections of a user.
func (c *conns) byUID(app, uid string) []*connState {
	key := didKey(app, uid)
	s := c.didShard(key)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.byUID[key])
}

// remove forgets cs; it reports false if it was already gone.
func (c *conns) remove(cs *connState) bool {
	if rk, ok := cs.routeKey(); ok && rk != cs.key {
		c.reroute(cs, rk, cs.key)
	}
	s := c.keyShard(cs.key)
	s.mu.Lock()
	ok := s.byKey[cs.key] == cs
	if ok {
		delete(s.byKey, cs.key)
		c.n.Add(-1)
	}
	s.mu.Unlock()
	key := cs.didKey
	s = c.didShard(key)
	s.mu.Lock()
	if s.byDID[key] == cs {
		delete(s.byDID, key)
	}
	s.mu.Unlock()
	if cs.uid != "" {
		key := cs.uidKey()
		s := c.didShard(key)
		s.mu.Lock()
		if m := s.byUID[key]; m != nil {
			if i := slices.Index(m, cs); i >= 0 {
				m = slices.Delete(m, i, i+1)
			}
			if len(m) == 0 {
				delete(s.byUID, key)
			} else {
				s.byUID[key] = m
			}
		}
		s.mu.Unlock()
	}
	return ok
}

// ofGateway returns the connections held through one gateway now.
func (c *conns) ofGateway(gw string) []*connState {
	var out []*connState
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		for k, cs := range s.byKey {
			if rk, ok := cs.routeKey(); ok && k == rk && k.gw == gw {
				out = append(out, cs)
			}
		}
		s.mu.RUnlock()
	}
	return out
}

// len counts connections, parked ones included.
func (c *conns) len() int { return int(c.n.Load()) }
