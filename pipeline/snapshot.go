package pipeline

import (
	"context"
	"maps"
	"sync/atomic"
	"time"
)

// snapshot is one immutable set of compiled chains. A reload builds a new one and stores it; the
// lanes pin the one they loaded for the length of a batch, so the reload can tell when the old
// one is no longer used.
type snapshot struct {
	apps map[string]*chain // app ID -> the chain of its own file
	def  *chain            // default.yaml's chain; nil: apps without a file pass through
	refs atomic.Int64      // batches currently running on this snapshot
}

// chainFor returns the chain serving appID, or nil when signals of appID pass through.
func (s *snapshot) chainFor(appID string) *chain {
	if c, ok := s.apps[appID]; ok {
		return c
	}
	return s.def
}

// chains lists every chain of the snapshot.
func (s *snapshot) chains() []*chain {
	out := make([]*chain, 0, len(s.apps)+1)
	if s.def != nil {
		out = append(out, s.def)
	}
	for _, c := range s.apps {
		out = append(out, c)
	}
	return out
}

// with returns a copy of s where pipeline's chain is c (nil: removed). pipeline is an app ID or
// the default pipeline's name.
func (s *snapshot) with(pipeline string, c *chain) *snapshot {
	n := &snapshot{apps: maps.Clone(s.apps), def: s.def}
	switch {
	case pipeline == defaultPipeline:
		n.def = c
	case c == nil:
		delete(n.apps, pipeline)
	default:
		n.apps[pipeline] = c
	}
	return n
}

// acquire pins the current snapshot. The second load closes the race with a reload that stores a
// new snapshot between our load and our increment: then the reload may already have seen zero
// references, so we let go and take the new one instead.
func (p *Pipelines) acquire() *snapshot {
	for {
		s := p.snap.Load()
		s.refs.Add(1)
		if p.snap.Load() == s {
			return s
		}
		s.refs.Add(-1)
	}
}

func (s *snapshot) release() { s.refs.Add(-1) }

// waitUnused waits until no batch runs on s any more (s must no longer be current), or until ctx
// ends. It reports whether s drained. Reloads are rare, so polling is simpler than a wake-up on
// every release.
func (s *snapshot) waitUnused(ctx context.Context) bool {
	return pollUntil(ctx, func() bool { return s.refs.Load() == 0 })
}

// pollUntil calls cond every millisecond or so until it holds or ctx ends.
func pollUntil(ctx context.Context, cond func() bool) bool {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return cond()
		case <-t.C:
		}
	}
	return true
}
