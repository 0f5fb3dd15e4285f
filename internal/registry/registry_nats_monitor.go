package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// How the monitor watches the bucket.
const (
	// checkEvery is how often a healthy registry's bucket is looked at; NATS' own connection
	// events and failed puts and watches ask for a look at once, so this only bounds how long a
	// bucket deleted by hand goes unnoticed by a process that neither puts nor watches.
	checkEvery = 5 * time.Second
	// checkRetry is how often an unreachable registry is tried again.
	checkRetry = 250 * time.Millisecond
	// checkTimeout bounds one look (or one re-creation) of the bucket.
	checkTimeout = 2 * time.Second
)

// natsState is what the monitor knows of the registry. changed is closed (and replaced) at every
// change of up or of the incarnation; reset only when what was put may be gone: the connection
// came back, or the bucket is not the one it was.
type natsState struct {
	up         bool
	since      time.Time // when up last changed
	reason     string    // why it is down
	created    time.Time // the bucket stream's creation time
	reconnects uint64    // the connection's reconnect count when last looked at
	gen        uint64    // incremented at each reset
	changed    chan struct{}
	reset      chan struct{}
}

// Health is the registry's state as a process's metrics and logs show it.
type Health struct {
	// Up is false while NATS or the bucket cannot be reached; DownSince says since when.
	Up        bool
	DownSince time.Time
	// StaleSince is when the oldest stale watch of this process lost the registry, zero when
	// every watch's view is current.
	StaleSince time.Time
	// BucketCreates counts the times this process found the bucket gone and created it again.
	BucketCreates int64
	// WatchReopens counts watches started again after an outage or a broken watch.
	WatchReopens int64
	// Nodes is, per role watched, the nodes in this process's view (the largest view among its
	// watches of that role: what the roles route by).
	Nodes map[Role]int
}

// Health reports the registry's state.
func (r *NATS) Health() Health {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := Health{Up: r.st.up, BucketCreates: r.bucketCreates.Load(), WatchReopens: r.watchReopens.Load(), Nodes: map[Role]int{}}
	if !r.st.up {
		h.DownSince = r.st.since
	}
	for w := range r.watches {
		if s := w.staleSince(); !s.IsZero() && (h.StaleSince.IsZero() || s.Before(h.StaleSince)) {
			h.StaleSince = s
		}
		h.Nodes[w.role] = max(h.Nodes[w.role], w.size())
	}
	return h
}

// Resets implements Registry.
func (r *NATS) Resets() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.reset
}

// state returns a copy of the monitor's state.
func (r *NATS) state() natsState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// checkSoon asks the monitor to look at the bucket now.
func (r *NATS) checkSoon() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// monitor looks at the connection and the bucket until ctx ends: at once when the connection
// changes state or someone asks, every checkEvery while all is well, every checkRetry while not.
func (r *NATS) monitor(ctx context.Context) {
	defer close(r.monitorDone)
	// nats.go sends these without blocking and drops what does not fit: a missed one is caught
	// by the next look, which compares the reconnect count. (Its RemoveStatusListener removes
	// every listener of the connection, so the channel is left registered.)
	status := r.nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	t := time.NewTimer(checkEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-status:
		case <-r.kick:
		case <-t.C:
		}
		next := checkEvery
		if !r.check(ctx) {
			next = checkRetry
		}
		t.Reset(next)
	}
}

// check looks at the connection and the bucket once, re-creates the bucket if it is gone, and
// records what it found. It reports whether the registry is up.
func (r *NATS) check(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	if !r.nc.IsConnected() {
		r.setDown("not connected to NATS (" + r.nc.Status().String() + ")")
		return false
	}
	reconnects := r.nc.Stats().Reconnects
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	kv := r.current()
	st, err := kv.Status(cctx)
	switch {
	case err == nil:
		r.setUp(kv, created(st), reconnects)
		return true
	case errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound):
		kv, at, err := r.ensureBucket(ctx)
		if err != nil {
			r.setDown(err.Error())
			return false
		}
		r.bucketCreates.Add(1)
		r.log.Warn("the registry bucket was gone (a NATS server restarted with it in memory, or it was deleted); created it again: every process puts itself again")
		r.setUp(kv, at, reconnects)
		return true
	default:
		if ctx.Err() == nil {
			r.setDown(fmt.Sprintf("reading the bucket: %v", err))
		}
		return false
	}
}

// setUp records a reachable registry, resetting when it was down, the connection reconnected, or
// the bucket is another one.
func (r *NATS) setUp(kv jetstream.KeyValue, created time.Time, reconnects uint64) {
	r.mu.Lock()
	st := r.st
	wasDown := !st.up
	reset := wasDown || !created.Equal(st.created) || reconnects != st.reconnects
	r.kv = kv
	r.st.created, r.st.reconnects = created, reconnects
	if !reset {
		r.mu.Unlock()
		return
	}
	now := time.Now()
	if wasDown {
		r.st.up, r.st.since, r.st.reason = true, now, ""
	}
	r.st.gen++
	close(r.st.changed)
	close(r.st.reset)
	r.st.changed, r.st.reset = make(chan struct{}), make(chan struct{})
	r.mu.Unlock()
	if wasDown {
		r.log.Info("registry reachable again", "down_for", now.Sub(st.since).Round(time.Millisecond))
	}
}

// setDown records an unreachable registry.
func (r *NATS) setDown(reason string) {
	r.mu.Lock()
	if !r.st.up {
		r.st.reason = reason
		r.mu.Unlock()
		return
	}
	r.st.up, r.st.since, r.st.reason = false, time.Now(), reason
	close(r.st.changed)
	r.st.changed = make(chan struct{})
	r.mu.Unlock()
	r.log.Warn("registry unreachable: every role keeps its last known view of the others until it is back", "reason", reason)
}
