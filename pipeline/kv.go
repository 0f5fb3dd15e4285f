package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/internal/tick"
)

// ErrStateFull is returned by a stage's Host.Put when the stage's state would exceed
// Config.StateLimit.
var ErrStateFull = errors.New("pipeline: stage state limit reached")

// kvEntryOverhead approximates what an entry costs beyond its key and value bytes (map slot,
// string headers, expiry), so that many tiny entries cannot slip past the limit.
const kvEntryOverhead = 64

// kvShards spreads one stage's keys over independently locked maps: every lane may Put for the
// same stage at once.
const kvShards = 16

// kvStore is one stage's Host state: values per (app, key) with an optional expiry, bounded in
// bytes. Expired entries are dropped when read, when the store is full, and by a periodic sweep.
type kvStore struct {
	limit  int64
	used   atomic.Int64
	shards [kvShards]kvShard
}

type kvShard struct {
	mu sync.Mutex
	m  map[kvKey]kvEntry
}

type kvKey struct{ app, key string }

type kvEntry struct {
	val     []byte
	expires int64 // unix nanoseconds; 0: never
}

func newKVStore(limit int64) *kvStore {
	s := &kvStore{limit: limit}
	for i := range s.shards {
		s.shards[i].m = map[kvKey]kvEntry{}
	}
	return s
}

func (s *kvStore) shard(k kvKey) *kvShard {
	return &s.shards[timerKey(k.app, k.key)%kvShards]
}

func entrySize(k kvKey, v []byte) int64 {
	return int64(len(k.app) + len(k.key) + len(v) + kvEntryOverhead)
}

// get returns a copy of the value, so a stage cannot change what the store holds.
func (s *kvStore) get(app, key string) ([]byte, bool) {
	k := kvKey{app, key}
	sh := s.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.m[k]
	if !ok {
		return nil, false
	}
	if e.expires != 0 && time.Now().UnixNano() >= e.expires {
		s.removeLocked(sh, k, e)
		return nil, false
	}
	return append([]byte(nil), e.val...), true
}

// put stores a copy of value; ttl 0 keeps it until deleted.
func (s *kvStore) put(app, key string, value []byte, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("putting %q: negative ttl %v", key, ttl)
	}
	k := kvKey{app, key}
	e := kvEntry{val: append([]byte(nil), value...)}
	if ttl > 0 {
		e.expires = time.Now().Add(ttl).UnixNano()
	}
	sh := s.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	delta := entrySize(k, e.val)
	old, had := sh.m[k]
	if had {
		delta -= entrySize(k, old.val)
	}
	if delta > 0 && s.used.Add(delta) > s.limit {
		s.used.Add(-delta)
		// Maybe expired entries are what fills it: sweep this shard and try once more.
		s.sweepShard(sh, time.Now().UnixNano())
		if old, had = sh.m[k]; had {
			delta = entrySize(k, e.val) - entrySize(k, old.val)
		} else {
			delta = entrySize(k, e.val)
		}
		if s.used.Add(delta) > s.limit {
			s.used.Add(-delta)
			return fmt.Errorf("putting %q (%d bytes): %w (%d bytes)", key, len(value), ErrStateFull, s.limit)
		}
	} else if delta <= 0 {
		s.used.Add(delta)
	}
	sh.m[k] = e
	return nil
}

func (s *kvStore) delete(app, key string) {
	k := kvKey{app, key}
	sh := s.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.m[k]; ok {
		s.removeLocked(sh, k, e)
	}
}

func (s *kvStore) removeLocked(sh *kvShard, k kvKey, e kvEntry) {
	delete(sh.m, k)
	s.used.Add(-entrySize(k, e.val))
}

// sweep drops expired entries, one shard lock at a time.
func (s *kvStore) sweep(now int64) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		s.sweepShard(sh, now)
		sh.mu.Unlock()
	}
}

func (s *kvStore) sweepShard(sh *kvShard, now int64) {
	for k, e := range sh.m {
		if e.expires != 0 && now >= e.expires {
			s.removeLocked(sh, k, e)
		}
	}
}

func (s *kvStore) clear() {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.mu.Unlock()
	}
	s.used.Store(0)
}

// kvSweepEvery is how often expired state is dropped even if nobody reads it.
const kvSweepEvery = 10 * time.Second

// sweepState drops expired state of every stage until ctx ends.
func (p *Pipelines) sweepState(ctx context.Context) {
	tick.Every(ctx, kvSweepEvery, func(now time.Time) {
		for _, sc := range p.scopes.all() {
			sc.kv.sweep(now.UnixNano())
		}
	})
}
