package ipconf

import (
	"math"
	"sync"
	"time"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/registry"
)

const (
	// DefaultWindow is how far back a gateway's load samples are averaged.
	DefaultWindow = 5 * time.Second
	// maxSamples bounds one gateway's window however fast it reports (it should report once a second).
	maxSamples = 64
	// bytesPerGB is the unit of the dynamic score: 1e9 bytes, as in the seed.
	bytesPerGB = 1e9
)

// Endpoint is one gateway as handed to a device.
type Endpoint struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
	// DynamicScore is the average remaining bandwidth over the window, in GB/s, two decimals.
	DynamicScore float64 `json:"dynamic_score"`
	// StaticScore is the average connection count over the window.
	StaticScore float64 `json:"static_score"`
	// Overloaded is set when the gateway's last report said it refuses logins for overload: it
	// ranks after every gateway that does not, and is listed only as a last resort.
	Overloaded bool `json:"overloaded,omitempty"`
}

// better reports whether a ranks before b: not overloaded, then more remaining bandwidth, then
// fewer connections, then the smaller ID so that equal gateways always come in the same order.
func better(a, b *Endpoint) bool {
	if a.Overloaded != b.Overloaded {
		return !a.Overloaded
	}
	if a.DynamicScore != b.DynamicScore {
		return a.DynamicScore > b.DynamicScore
	}
	if a.StaticScore != b.StaticScore {
		return a.StaticScore < b.StaticScore
	}
	return a.ID < b.ID
}

type sample struct {
	at        int64 // unix nanoseconds, ipconf's clock
	remaining float64
	conns     int64
}

// entry is one gateway. Rank reads only ep and last, which sit together in one slice so that a
// scan over a thousand gateways stays in cache.
type entry struct {
	ep   Endpoint
	last int64 // when the newest sample arrived, unix nanoseconds
	// ws is the gateway's WebSocket URL, handed out as the endpoint's Addr by RankWS; "" when it
	// has no WebSocket listener.
	ws string
}

// Scorer keeps the window of load samples of every gateway and ranks them. It is safe for
// concurrent use; see the package documentation for who takes which lock.
type Scorer struct {
	window     time.Duration
	staleAfter time.Duration

	mu      sync.RWMutex
	entries []entry          // ranking data, unordered
	samples [][]sample       // samples[i] belongs to entries[i], oldest first
	index   map[string]int32 // gateway ID -> position in entries
}

// NewScorer returns a Scorer averaging over window (default DefaultWindow when <= 0) and leaving
// out gateways whose newest sample is older than staleAfter (default config.DefaultStaleAfter when <= 0).
func NewScorer(window, staleAfter time.Duration) *Scorer {
	if window <= 0 {
		window = DefaultWindow
	}
	if staleAfter <= 0 {
		staleAfter = config.DefaultStaleAfter
	}
	return &Scorer{window: window, staleAfter: staleAfter, index: make(map[string]int32)}
}

// Observe records n's load as a sample taken at at and recomputes its scores. Samples older than
// the window, measured back from at, are dropped. A gateway without an endpoint cannot be handed
// out and is forgotten.
func (s *Scorer) Observe(n registry.Node, at time.Time) {
	if n.Endpoint == "" {
		s.Remove(n.ID)
		return
	}
	now := at.UnixNano()
	smp := sample{
		at:        now,
		remaining: n.Load.BandwidthBytesPerSec - n.Load.BytesInPerSec - n.Load.BytesOutPerSec,
		conns:     n.Load.Conns,
	}
	cutoff := now - int64(s.window)

	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.index[n.ID]
	if !ok {
		i = int32(len(s.entries))
		s.index[n.ID] = i
		s.entries = append(s.entries, entry{ep: Endpoint{ID: n.ID}})
		s.samples = append(s.samples, make([]sample, 0, 8))
	}
	win := s.samples[i]
	if k := len(win); k > 0 && win[k-1].at > now {
		smp.at = win[k-1].at // keep the window ordered if the clock stepped back
	}
	// Drop what fell out of the window (and the oldest past maxSamples), in place.
	drop := 0
	for drop < len(win) && (win[drop].at <= cutoff || len(win)-drop >= maxSamples) {
		drop++
	}
	win = append(win[:copy(win, win[drop:])], smp)
	s.samples[i] = win

	var rem float64
	var conns int64
	for _, w := range win {
		rem += w.remaining
		conns += w.conns
	}
	e := &s.entries[i]
	e.ep.Addr = n.Endpoint
	e.ws = n.WSEndpoint
	e.ep.DynamicScore = math.Round(rem/float64(len(win))/bytesPerGB*100) / 100
	e.ep.StaticScore = float64(conns) / float64(len(win))
	e.ep.Overloaded = n.Load.Overloaded // the latest report, not the window: it acts at once
	e.last = smp.at
}

// Remove forgets a gateway (it left the registry).
func (s *Scorer) Remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(id)
}

func (s *Scorer) removeLocked(id string) {
	i, ok := s.index[id]
	if !ok {
		return
	}
	// Swap with the last entry so removal is O(1) and the slices stay dense.
	last := int32(len(s.entries) - 1)
	if i != last {
		s.entries[i] = s.entries[last]
		s.samples[i] = s.samples[last]
		s.index[s.entries[i].ep.ID] = i
	}
	s.entries[last] = entry{}
	s.samples[last] = nil
	s.entries = s.entries[:last]
	s.samples = s.samples[:last]
	delete(s.index, id)
}

// Prune forgets gateways whose newest sample is older than before, and returns how many. The
// registry normally reports every departure; this bounds memory if a delete was ever missed.
func (s *Scorer) Prune(before time.Time) int {
	cut := before.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i := len(s.entries) - 1; i >= 0; i-- {
		if s.entries[i].last < cut {
			s.removeLocked(s.entries[i].ep.ID)
			n++
		}
	}
	return n
}

// Len returns how many gateways the Scorer knows, stale or not.
func (s *Scorer) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.entries)
}

// Rank appends to dst[:0] the best limit gateways that are fresh at now, best first, and returns
// it. With a dst of capacity limit it allocates nothing. Only the top limit are ordered: a
// bounded insertion keeps the best so far, so ranking n gateways costs O(n·limit) comparisons
// rather than a full sort, and the read lock is held only for that one pass.
func (s *Scorer) Rank(now time.Time, limit int, dst []Endpoint) []Endpoint {
	return s.rank(now, limit, dst, false)
}

// RankWS is Rank for WebSocket clients: the same order, among the gateways with a WebSocket
// listener, each with its ws:// URL as Addr.
func (s *Scorer) RankWS(now time.Time, limit int, dst []Endpoint) []Endpoint {
	return s.rank(now, limit, dst, true)
}

func (s *Scorer) rank(now time.Time, limit int, dst []Endpoint, ws bool) []Endpoint {
	top := dst[:0]
	if limit <= 0 {
		return top
	}
	fresh := now.UnixNano() - int64(s.staleAfter)

	s.mu.RLock()
	defer s.mu.RUnlock()
	for i := range s.entries {
		e := &s.entries[i]
		if e.last < fresh || ws && e.ws == "" {
			continue
		}
		if len(top) == limit && !better(&e.ep, &top[limit-1]) {
			continue
		}
		// Find the slot and shift the worse ones down, dropping the last if full.
		j := len(top)
		if j < limit {
			top = append(top, Endpoint{})
		} else {
			j = limit - 1
		}
		for j > 0 && better(&e.ep, &top[j-1]) {
			top[j] = top[j-1]
			j--
		}
		top[j] = e.ep
		if ws {
			top[j].Addr = e.ws
		}
	}
	return top
}
