package gateway

import "sync"

const tableShards = 64

// table indexes connections by ID and logged-in connections by app ID + did.
type table struct {
	shards [tableShards]tableShard
}

type tableShard struct {
	mu    sync.RWMutex
	byID  map[uint64]*conn
	byDID map[string]*conn
}

func newTable() *table {
	t := &table{}
	for i := range t.shards {
		t.shards[i].byID = make(map[uint64]*conn)
		t.shards[i].byDID = make(map[string]*conn)
	}
	return t
}

func didKey(appID, did string) string { return appID + "\x00" + did }

func (t *table) idShard(id uint64) *tableShard { return &t.shards[id%tableShards] }

func (t *table) didShard(key string) *tableShard { return &t.shards[keyHash(key)%tableShards] }

// keyHash is FNV-1a: cheap and stable, and avoids allocating a hasher.
func keyHash(key string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return h
}

func (t *table) add(c *conn) {
	s := t.idShard(c.id)
	s.mu.Lock()
	s.byID[c.id] = c
	s.mu.Unlock()
}

func (t *table) get(id uint64) *conn {
	s := t.idShard(id)
	s.mu.RLock()
	c := s.byID[id]
	s.mu.RUnlock()
	return c
}

// bindDID makes c the connection of its did; an older connection of the same did is left in byID
// (the state server closes it) but no longer found by did.
func (t *table) bindDID(key string, c *conn) {
	s := t.didShard(key)
	s.mu.Lock()
	s.byDID[key] = c
	s.mu.Unlock()
}

func (t *table) byDID(key string) *conn {
	s := t.didShard(key)
	s.mu.RLock()
	c := s.byDID[key]
	s.mu.RUnlock()
	return c
}

// remove forgets c by ID, and by did when c is still the did's connection.
func (t *table) remove(c *conn, didKey string) {
	s := t.idShard(c.id)
	s.mu.Lock()
	delete(s.byID, c.id)
	s.mu.Unlock()
	if didKey == "" {
		return
	}
	s = t.didShard(didKey)
	s.mu.Lock()
	if s.byDID[didKey] == c {
		delete(s.byDID, didKey)
	}
	s.mu.Unlock()
}

// each calls f for every connection; f must not block.
func (t *table) each(f func(*conn)) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		conns := make([]*conn, 0, len(s.byID))
		for _, c := range s.byID {
			conns = append(conns, c)
		}
		s.mu.RUnlock()
		for _, c := range conns {
			f(c)
		}
	}
}

func (t *table) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		n += len(s.byID)
		s.mu.RUnlock()
	}
	return n
}
