package gateway

import (
	"sync"
	"time"
)

// Bounds of the set of recent at-least-once broadcasts whose device ACKs go to the state server.
// An ACK later than ackWindow is dropped: by then the state server has given up on it.
const (
	ackWindow  = 5 * time.Minute
	ackMaxIDs  = 1 << 16
	ackMinTrim = 1024
)

// Bounds of the set of connections closed lately whose close event is on its way to their state
// server: well beyond a Deliver call and its retries. A push after that is answered "gone", which
// still ends the connection at its state server should the close event have been lost.
const (
	closedWindow = 10 * time.Second
	closedMaxIDs = 1 << 16
)

// recentIDs is a set of IDs seen recently, with expiry and a bound on its size (the oldest go
// first): the msg IDs the gateway broadcast at least once (per gateway, not per connection: every
// member of a broadcast acks the same msg ID), and the connections closed lately.
type recentIDs struct {
	ttl time.Duration
	max int

	mu sync.RWMutex
	// until maps a msg ID to when it expires, in Unix nanoseconds.
	until map[uint64]int64
	// fifo is every add in order, from head on; an entry whose expiry differs from until's is an
	// older add of an ID broadcast again, skipped when it comes out.
	fifo []recentID
	head int
}

type recentID struct {
	id    uint64
	until int64
}

func newRecentIDs(ttl time.Duration, max int) *recentIDs {
	return &recentIDs{ttl: ttl, max: max, until: make(map[uint64]int64)}
}

// add remembers id until now+ttl, evicting expired IDs and, past max, the oldest.
func (r *recentIDs) add(id uint64, now time.Time) {
	t := now.UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.head < len(r.fifo) && (r.fifo[r.head].until <= t || len(r.fifo)-r.head >= r.max) {
		r.pop()
	}
	if r.head >= ackMinTrim && r.head*2 >= len(r.fifo) {
		r.fifo = append(r.fifo[:0], r.fifo[r.head:]...)
		r.head = 0
	}
	e := recentID{id: id, until: t + int64(r.ttl)}
	r.until[id] = e.until
	r.fifo = append(r.fifo, e)
}

func (r *recentIDs) pop() {
	e := r.fifo[r.head]
	r.head++
	if r.until[e.id] == e.until {
		delete(r.until, e.id)
	}
}

// has reports whether id was added and has not expired or been evicted.
func (r *recentIDs) has(id uint64, now time.Time) bool {
	r.mu.RLock()
	until, ok := r.until[id]
	r.mu.RUnlock()
	return ok && until > now.UnixNano()
}

// len is how many IDs are remembered, expired ones not yet evicted included.
func (r *recentIDs) len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.until)
}
