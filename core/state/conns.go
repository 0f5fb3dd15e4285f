package state

import (
	"sync"
	"sync/atomic"

	"github.com/platoim/plato/internal/timewheel"
)

// connKey identifies a connection: connection IDs are unique per gateway.
type connKey struct {
	gw string
	id uint64
}

// waiter collects the ACKs of one Push that asked to wait for them. done closes once every tracked
// target ACKed, but not before arm: ACKs may arrive while later targets are still being sent.
type waiter struct {
	mu       sync.Mutex
	pending  int
	acked    []bool
	armed    bool
	finished bool
	done     chan struct{}
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

func (w *waiter) arm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = true
	w.finish()
}

func (w *waiter) finish() {
	if w.armed && w.pending == 0 && !w.finished {
		w.finished = true
		close(w.done)
	}
}

// inflight is a downlink sent to the device and not yet ACKed.
type inflight struct {
	msgID uint64
	w     *waiter
	idx   int
	sent  int64 // unix nanoseconds of the Push, for the ACK latency histogram
}

// connState is what the state server knows about one logged-in connection.
type connState struct {
	key      connKey
	appID    string
	did, uid string
	remote   string
	gw       *gatewayLink
	lastSeen atomic.Int64 // unix nanoseconds of the last frame

	mu          sync.Mutex
	closed      bool
	loggedIn    bool
	hbTimer     *timewheel.Timer
	lastUpSeq   uint64
	nextDownSeq uint64
	// upInflight counts uplinks the business server has not answered; a duplicate's ACK waits in
	// dupAcks until they are, so a device's ACKs always come back in the order it sent.
	upInflight int
	dupAcks    []uint64
	// inflight is allocated on the first downlink: idle connections carry no map.
	inflight map[uint64]inflight
	order    []uint64 // inflight sequence numbers, oldest first, for eviction at MaxInflight
	// sessions the connection is in (nil for most): it leaves them all when it closes.
	sessions []string
}

const connShards = 64

// registry is the sharded table of connections and the did index.
type conns struct {
	shards [connShards]connShard
}

type connShard struct {
	mu    sync.RWMutex
	byKey map[connKey]*connState
	byDID map[string]*connState
	// byUID holds the logged-in connections of a user (app + "\x00" + uid): one per device.
	byUID map[string]map[*connState]struct{}
}

func newConns() *conns {
	c := &conns{}
	for i := range c.shards {
		c.shards[i].byKey = map[connKey]*connState{}
		c.shards[i].byDID = map[string]*connState{}
		c.shards[i].byUID = map[string]map[*connState]struct{}{}
	}
	return c
}

func didKey(appID, did string) string { return appID + "\x00" + did }

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
	return true
}

// activate makes cs its did's connection, returning the connection it replaced.
func (c *conns) activate(cs *connState) (replaced *connState) {
	key := didKey(cs.appID, cs.did)
	s := c.didShard(key)
	s.mu.Lock()
	replaced = s.byDID[key]
	s.byDID[key] = cs
	s.mu.Unlock()
	if cs.uid != "" {
		key := didKey(cs.appID, cs.uid)
		s := c.didShard(key)
		s.mu.Lock()
		m := s.byUID[key]
		if m == nil {
			m = map[*connState]struct{}{}
			s.byUID[key] = m
		}
		m[cs] = struct{}{}
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
	m := s.byUID[key]
	out := make([]*connState, 0, len(m))
	for cs := range m {
		out = append(out, cs)
	}
	return out
}

// remove forgets cs; it reports false if it was already gone.
func (c *conns) remove(cs *connState) bool {
	s := c.keyShard(cs.key)
	s.mu.Lock()
	_, ok := s.byKey[cs.key]
	delete(s.byKey, cs.key)
	s.mu.Unlock()
	key := didKey(cs.appID, cs.did)
	s = c.didShard(key)
	s.mu.Lock()
	if s.byDID[key] == cs {
		delete(s.byDID, key)
	}
	s.mu.Unlock()
	if cs.uid != "" {
		key := didKey(cs.appID, cs.uid)
		s := c.didShard(key)
		s.mu.Lock()
		if m := s.byUID[key]; m != nil {
			delete(m, cs)
			if len(m) == 0 {
				delete(s.byUID, key)
			}
		}
		s.mu.Unlock()
	}
	return ok
}

// ofGateway returns the connections held through one gateway.
func (c *conns) ofGateway(gw string) []*connState {
	var out []*connState
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		for k, cs := range s.byKey {
			if k.gw == gw {
				out = append(out, cs)
			}
		}
		s.mu.RUnlock()
	}
	return out
}

func (c *conns) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.byKey)
		s.mu.RUnlock()
	}
	return n
}
