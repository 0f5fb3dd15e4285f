package registry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// How a watch looks after itself.
const (
	// watchRetry is how soon a watch that could not be opened while the registry looks up is
	// tried again.
	watchRetry = 500 * time.Millisecond
	// watchTick is how often a watch checks its timers (silence, the end of a resync).
	watchTick = 250 * time.Millisecond
	// silentTTLs and silentFraction bound how long a watch may hear nothing before it is opened
	// again. Every live node puts itself each report interval (a small fraction of the TTL), so a
	// watch that holds nodes and hears nothing for half a TTL has most likely died without saying
	// so (its consumer was on a cluster node that went away, say), unless every node it holds died
	// at once (their markers come a TTL after their last put): opening it again costs a snapshot
	// then, and changes nothing. One that holds no node is opened again, quietly, after two TTLs.
	silentTTLs     = 2
	silentFraction = 2
)

// Watch implements Registry. The watch (a watch value, below) reopens itself whenever the monitor
// says the registry came back or changed, when the NATS watcher closes, and when it has been
// silent too long, and reconciles what it knew with what the registry holds then.
func (r *NATS) Watch(ctx context.Context, role Role) (<-chan Event, error) {
	filter, err := roleFilter(role)
	if err != nil {
		return nil, fmt.Errorf("watching nodes: %w", err)
	}
	st := r.state()
	kw, cancel, err := r.openFirstWatcher(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("watching %s nodes: %w", role, err)
	}
	out := make(chan Event, watchBuffer)
	w := &watch{r: r, role: role, filter: filter, out: out, known: map[string]bool{}, heard: time.Now()}
	r.mu.Lock()
	r.watches[w] = struct{}{}
	r.mu.Unlock()
	go w.run(ctx, kw, cancel, st.gen)
	return out, nil
}

// openFirstWatcher opens a watch's first watcher, waiting out a JetStream that cannot take it yet
// (a cluster electing the bucket's leader after losing a node) for up to bucketReadyTimeout or
// ctx's deadline, so that a role started then comes up once the cluster has recovered.
func (r *NATS) openFirstWatcher(ctx context.Context, filter string) (jetstream.KeyWatcher, context.CancelFunc, error) {
	deadline := time.Now().Add(bucketReadyTimeout)
	for {
		kw, cancel, err := r.openWatcher(ctx, filter)
		if err == nil || !transient(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return kw, cancel, err
		}
		r.checkSoon()
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(watchRetry):
		}
	}
}

// watch is one Watch: the nodes it reported, and whether its view is current.
//
// After the registry comes back (or the watch broke) it is opened again and resyncs: every node
// it knew becomes unconfirmed, and is confirmed by a put. A delete of an unconfirmed node is not
// believed at once (an entry that expired during the outage, because its node could not refresh
// it, says nothing about the node); what is still unconfirmed a TTL after the resync began, by
// when every live node has put itself again, is reported deleted. Then the view is fresh again.
type watch struct {
	r      *NATS
	role   Role
	filter string
	out    chan<- Event

	// Only the watch's goroutine writes these; mu guards them for Health.
	mu         sync.Mutex
	known      map[string]bool // node ID -> confirmed since the resync began (always true outside one)
	stale      time.Time       // when the view went stale; zero while fresh
	heard      time.Time       // when the registry last sent an entry (or the watch opened)
	resyncEnd  time.Time       // when unconfirmed nodes are given up on; zero outside a resync
	snapshotIn bool            // the current watcher delivered its snapshot
	synced     bool            // EventSynced was sent (after the first snapshot)
}

func (w *watch) staleSince() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stale
}

func (w *watch) size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.known)
}

// run is the watch's goroutine: it consumes the watcher it was given, opening a new one each
// time that one has to go, until ctx ends.
func (w *watch) run(ctx context.Context, kw jetstream.KeyWatcher, cancel context.CancelFunc, gen uint64) {
	defer close(w.out)
	defer func() {
		w.r.mu.Lock()
		delete(w.r.watches, w)
		w.r.mu.Unlock()
	}()
	tick := time.NewTicker(watchTick)
	defer tick.Stop()
	for {
		if kw == nil {
			st := w.r.state()
			if !st.up {
				w.goStale(ctx, "the registry is unreachable: "+st.reason)
				if !w.wait(ctx, st.changed, nil) {
					return
				}
				continue
			}
			var err error
			if kw, cancel, err = w.r.openWatcher(ctx, w.filter); err != nil {
				if ctx.Err() != nil {
					return
				}
				w.goStale(ctx, "the watch could not be opened again: "+err.Error())
				w.r.log.Debug("opening the watch again failed", "role", w.role, "err", err)
				w.r.checkSoon()
				if !w.wait(ctx, st.changed, time.After(watchRetry)) {
					return
				}
				continue
			}
			w.r.watchReopens.Add(1)
			w.r.log.Debug("watch opened again", "role", w.role, "known", len(w.known))
			gen = st.gen
			w.beginResync()
		}
		why := w.consume(ctx, kw, gen, tick.C)
		stopWatcher(kw, cancel)
		kw, cancel = nil, nil
		if why == "" {
			return
		}
		if len(w.known) > 0 {
			w.goStale(ctx, why)
		}
	}
}

// wait waits for the state to change, or for retry, and reports whether ctx is still alive.
func (w *watch) wait(ctx context.Context, changed <-chan struct{}, retry <-chan time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-changed:
	case <-retry:
	}
	return true
}

// consume reports kw's entries until kw has to be replaced, and says why ("" when ctx ended).
func (w *watch) consume(ctx context.Context, kw jetstream.KeyWatcher, gen uint64, tick <-chan time.Time) string {
	for {
		st := w.r.state()
		if !st.up {
			return "the registry is unreachable: " + st.reason
		}
		if st.gen != gen {
			return "the registry came back or its bucket was re-created"
		}
		select {
		case <-ctx.Done():
			return ""
		case <-st.changed:
			// Loop: the state says what to do.
		case now := <-tick:
			if !w.resyncEnd.IsZero() && !now.Before(w.resyncEnd) {
				w.giveUp(ctx)
			}
			limit := silentTTLs * w.r.ttl
			if len(w.known) > 0 {
				limit = w.r.ttl / silentFraction
			}
			if silent := now.Sub(w.heard); silent > limit {
				return fmt.Sprintf("the watch heard nothing for %v", silent.Round(100*time.Millisecond))
			}
		case e, ok := <-kw.Updates():
			if !ok {
				return "the watch was closed by the NATS client"
			}
			w.entry(ctx, e)
		}
	}
}

// entry handles one watcher entry: nil marks the end of the snapshot.
func (w *watch) entry(ctx context.Context, e jetstream.KeyValueEntry) {
	now := time.Now()
	w.mu.Lock()
	w.heard = now
	w.mu.Unlock()
	if e == nil {
		w.mu.Lock()
		w.snapshotIn = true
		first := !w.synced
		w.synced = true
		w.mu.Unlock()
		if first {
			w.send(ctx, Event{Type: EventSynced, At: now})
		}
		w.maybeFresh(ctx)
		return
	}
	ev, ok := toEvent(e)
	if !ok {
		return
	}
	id := ev.Node.ID
	switch ev.Type {
	case EventPut:
		w.mu.Lock()
		w.known[id] = true
		w.mu.Unlock()
		w.send(ctx, ev)
		w.maybeFresh(ctx)
	case EventDelete:
		confirmed, had := w.known[id]
		// A snapshot's markers are of nodes gone before; an unconfirmed node's delete during a
		// resync may be its entry expiring while it could not refresh it (see watch).
		if !had || !confirmed {
			return
		}
		w.mu.Lock()
		delete(w.known, id)
		w.mu.Unlock()
		w.send(ctx, ev)
	}
}

// beginResync starts reconciling the known nodes with a watcher just opened.
func (w *watch) beginResync() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range w.known {
		w.known[id] = false
	}
	w.snapshotIn = false
	w.heard = time.Now()
	w.resyncEnd = w.heard.Add(w.r.ttl)
}

// giveUp reports every node still unconfirmed at the end of a resync as deleted.
func (w *watch) giveUp(ctx context.Context) {
	var gone []string
	w.mu.Lock()
	for id, ok := range w.known {
		if !ok {
			gone = append(gone, id)
			delete(w.known, id)
		}
	}
	w.mu.Unlock()
	if len(gone) > 0 {
		w.r.log.Warn("nodes did not register again after the registry came back: dropping them", "role", w.role, "nodes", gone)
	}
	for _, id := range gone {
		w.send(ctx, Event{Type: EventDelete, Node: Node{ID: id, Role: w.role}})
	}
	w.mu.Lock()
	w.snapshotIn = true // a watcher that never delivered its snapshot in a TTL has nothing more to say
	w.mu.Unlock()
	w.maybeFresh(ctx)
}

// maybeFresh ends a resync once the snapshot is in and every known node is confirmed, and tells
// the reader that the view is current again if it had been told it was stale.
func (w *watch) maybeFresh(ctx context.Context) {
	w.mu.Lock()
	if w.resyncEnd.IsZero() || !w.snapshotIn {
		w.mu.Unlock()
		return
	}
	for _, ok := range w.known {
		if !ok {
			w.mu.Unlock()
			return
		}
	}
	w.resyncEnd = time.Time{}
	since := w.stale
	w.stale = time.Time{}
	n := len(w.known)
	w.mu.Unlock()
	if since.IsZero() {
		return
	}
	now := time.Now()
	w.r.log.Info("registry view current again", "role", w.role, "nodes", n, "stale_for", now.Sub(since).Round(time.Millisecond))
	w.send(ctx, Event{Type: EventFresh, At: now})
}

// goStale tells the reader, once per outage, that its view is the last known one.
func (w *watch) goStale(ctx context.Context, why string) {
	w.mu.Lock()
	if !w.stale.IsZero() {
		w.mu.Unlock()
		return
	}
	w.stale = time.Now()
	heard, n := w.heard, len(w.known)
	w.mu.Unlock()
	w.r.log.Warn("registry view stale: keeping the last known nodes", "role", w.role, "nodes", n, "reason", why)
	w.send(ctx, Event{Type: EventStale, At: heard})
}

// send hands ev to the reader unless ctx ended.
func (w *watch) send(ctx context.Context, ev Event) {
	select {
	case w.out <- ev:
	case <-ctx.Done():
	}
}
