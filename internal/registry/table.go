package registry

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// TableConfig says what a Table links to and what happens when links come and go.
type TableConfig[L any] struct {
	// Role is the role whose nodes the table follows.
	Role Role
	// Self is a node ID not to link to: the process itself, when it follows its own role.
	Self string
	// Dial makes the link to a node (a Kitex client, a batcher in front of it). It runs with no
	// lock held; an error leaves the node out until its next registry update.
	Dial func(Node) (L, error)
	// Drop is called once for every link that leaves the table: its node left (gone) or
	// re-registered at another RPC address (replaced by a fresh link). It runs with no lock held,
	// on the watch goroutine: a slow Drop delays later registry events. Optional.
	Drop func(l L, id string, gone bool)
	// Changed is called after a link joined or left the table (after Drop), with no lock held, on
	// the watch goroutine: the caller may look at the table as it now is. Optional.
	Changed func()
	// Log reports nodes joining and leaving. Optional.
	Log *slog.Logger
}

// Table keeps one link per live node of a role, following the registry: a link is dialed when a
// node appears, dialed again when the node's RPC address changes, and dropped when it leaves.
// Gateways keep one to each state server, state servers one to each gateway and to each other
// state server. A node that re-registers at the same address keeps its link; Node is updated.
type Table[L any] struct {
	cfg TableConfig[L]

	mu    sync.RWMutex
	byID  map[string]tableEntry[L]
	links []L // every link, rebuilt on change: List hands it out without copying
}

type tableEntry[L any] struct {
	node Node
	link L
}

// NewTable returns an empty table; Follow fills it.
func NewTable[L any](cfg TableConfig[L]) *Table[L] {
	return &Table[L]{cfg: cfg, byID: map[string]tableEntry[L]{}}
}

// Follow watches the registry until ctx ends. It returns once the watch is set up.
func (t *Table[L]) Follow(ctx context.Context, r Registry) error {
	if err := Follow(ctx, r, t.cfg.Role, t.Put, t.Remove); err != nil {
		return fmt.Errorf("watching %s nodes: %w", t.cfg.Role, err)
	}
	return nil
}

// Get returns the link to node id.
func (t *Table[L]) Get(id string) (L, bool) {
	t.mu.RLock()
	e, ok := t.byID[id]
	t.mu.RUnlock()
	return e.link, ok
}

// Node returns the last registry entry of node id.
func (t *Table[L]) Node(id string) (Node, bool) {
	t.mu.RLock()
	e, ok := t.byID[id]
	t.mu.RUnlock()
	return e.node, ok
}

// List returns every link. The slice is shared and replaced, never modified: do not write to it.
func (t *Table[L]) List() []L {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.links
}

// IDs lists the nodes linked to.
func (t *Table[L]) IDs() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	ids := make([]string, 0, len(t.byID))
	for id := range t.byID {
		ids = append(ids, id)
	}
	return ids
}

// Len is the number of links.
func (t *Table[L]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.byID)
}

// Put links to n, or refreshes its entry when it is already linked at the same address. The
// registry watch calls it; so may a caller that learned of a node before the watch did.
func (t *Table[L]) Put(n Node) {
	if n.ID == t.cfg.Self {
		return
	}
	t.mu.Lock()
	old, had := t.byID[n.ID]
	if had && old.node.RPCAddr == n.RPCAddr {
		old.node = n
		t.byID[n.ID] = old
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	l, err := t.cfg.Dial(n)
	if err != nil {
		if t.cfg.Log != nil {
			t.cfg.Log.Error("cannot link to "+string(n.Role), "id", n.ID, "addr", n.RPCAddr, "err", err)
		}
		return
	}
	t.mu.Lock()
	// The watch is the only writer that replaces entries, so old is still what is there.
	t.byID[n.ID] = tableEntry[L]{node: n, link: l}
	t.rebuild()
	t.mu.Unlock()
	if t.cfg.Log != nil {
		t.cfg.Log.Info(string(n.Role)+" joined", "id", n.ID, "addr", n.RPCAddr)
	}
	if had && t.cfg.Drop != nil {
		t.cfg.Drop(old.link, n.ID, false)
	}
	if t.cfg.Changed != nil {
		t.cfg.Changed()
	}
}

// Remove drops the link to node id, if there is one.
func (t *Table[L]) Remove(id string) {
	t.mu.Lock()
	e, ok := t.byID[id]
	delete(t.byID, id)
	if ok {
		t.rebuild()
	}
	t.mu.Unlock()
	if !ok {
		return
	}
	if t.cfg.Log != nil {
		t.cfg.Log.Warn(string(t.cfg.Role)+" left", "id", id)
	}
	if t.cfg.Drop != nil {
		t.cfg.Drop(e.link, id, true)
	}
	if t.cfg.Changed != nil {
		t.cfg.Changed()
	}
}

// Clear empties the table and returns the links it held, for the caller to close (at shutdown:
// Drop is not called).
func (t *Table[L]) Clear() []L {
	t.mu.Lock()
	defer t.mu.Unlock()
	links := t.links
	t.byID, t.links = map[string]tableEntry[L]{}, nil
	return links
}

// rebuild replaces links; t.mu is held.
func (t *Table[L]) rebuild() {
	links := make([]L, 0, len(t.byID))
	for _, e := range t.byID {
		links = append(links, e.link)
	}
	t.links = links
}
