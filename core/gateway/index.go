package gateway

import (
	"sync"
	"sync/atomic"
)

const sessionShards = 64

// sessionIndex maps app ID + session to the connections of this gateway in it: the local part of
// the state server's session index, which a NATS broadcast is fanned out through.
//
// Lock order: a conn's mu, then a shard's mu. Joins, leaves and closes change a session while
// holding the conn's mu, so a connection that is closing can never be added after it left every
// session; nothing takes a conn's mu while holding a shard's.
type sessionIndex struct {
	shards [sessionShards]sessionShard
	// memberships and sessions are gauges: conn-session pairs and non-empty sessions held.
	memberships atomic.Int64
	sessions    atomic.Int64
}

type sessionShard struct {
	mu sync.RWMutex
	m  map[string]*sessionMembers
}

type sessionMembers struct {
	conns map[*conn]struct{}
	// snap is the member list a broadcast iterates, built on the first broadcast after a change and
	// dropped by the next change, so a large stable session costs no copy per message. A stored
	// snapshot is never modified.
	snap atomic.Pointer[[]*conn]
}

func newSessionIndex() *sessionIndex {
	x := &sessionIndex{}
	for i := range x.shards {
		x.shards[i].m = make(map[string]*sessionMembers)
	}
	return x
}

// sessionKey is how the index names a session: session names are per app.
func sessionKey(appID, session string) string { return appID + "\x00" + session }

func (x *sessionIndex) shard(key string) *sessionShard {
	return &x.shards[keyHash(key)%sessionShards]
}

// add puts c in the session; it reports false when c was already there.
func (x *sessionIndex) add(key string, c *conn) bool {
	s := x.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	sm := s.m[key]
	if sm == nil {
		sm = &sessionMembers{conns: make(map[*conn]struct{}, 1)}
		s.m[key] = sm
		x.sessions.Add(1)
	} else if _, ok := sm.conns[c]; ok {
		return false
	}
	sm.conns[c] = struct{}{}
	sm.snap.Store(nil)
	x.memberships.Add(1)
	return true
}

// remove takes c out of the session, deleting a session left empty; it reports false when c was
// not there.
func (x *sessionIndex) remove(key string, c *conn) bool {
	s := x.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	sm := s.m[key]
	if sm == nil {
		return false
	}
	if _, ok := sm.conns[c]; !ok {
		return false
	}
	delete(sm.conns, c)
	sm.snap.Store(nil)
	x.memberships.Add(-1)
	if len(sm.conns) == 0 {
		delete(s.m, key)
		x.sessions.Add(-1)
	}
	return true
}

// members returns the session's connections, nil for an unknown session. The slice is shared with
// other callers and must not be modified; it may include connections that closed since.
func (x *sessionIndex) members(key string) []*conn {
	s := x.shard(key)
	s.mu.RLock()
	defer s.mu.RUnlock()
	sm := s.m[key]
	if sm == nil {
		return nil
	}
	if p := sm.snap.Load(); p != nil {
		return *p
	}
	// Changes take the write lock, so the set cannot change while it is copied; two readers
	// building at once store equal snapshots.
	list := make([]*conn, 0, len(sm.conns))
	for c := range sm.conns {
		list = append(list, c)
	}
	sm.snap.Store(&list)
	return list
}
