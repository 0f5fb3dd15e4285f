package gateway

import (
	"net"
	"slices"
	"testing"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"

	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

func ids(ds ...*device) []uint64 {
	out := make([]uint64, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.id)
	}
	slices.Sort(out)
	return out
}

func (h *harness) wantMembers(app, session string, want ...*device) {
	h.t.Helper()
	got := h.gw.SessionMembers(app, session)
	if w := ids(want...); !slices.Equal(got, w) && !(len(got) == 0 && len(w) == 0) {
		h.t.Fatalf("members of %s/%s = %v, want %v", app, session, got, w)
	}
}

func TestSessionsJoinLeaveIdempotent(t *testing.T) {
	h := newHarness(t, harnessOpts{noNATS: true})
	a, b := h.login("app", "a"), h.login("app", "b")

	if gone := h.sessions(join(a, "s1"), join(b, "s1"), join(a, "s1"), join(a, "s2")); len(gone) != 0 {
		t.Fatalf("gone %v, want none", gone)
	}
	h.wantMembers("app", "s1", a, b)
	h.wantMembers("app", "s2", a)
	h.wantMembers("other-app", "s1")
	if st := h.gw.Stats(); st.SessionMemberships != 3 {
		t.Fatalf("memberships %d, want 3 (a joining s1 twice counts once)", st.SessionMemberships)
	}

	h.sessions(leave(a, "s1"), leave(a, "s1"), leave(b, "never-joined"))
	h.wantMembers("app", "s1", b)
	h.sessions(leave(a, "s2"))
	h.wantMembers("app", "s2")
	if n := h.gw.sessions.sessions.Load(); n != 1 {
		t.Fatalf("sessions %d, want 1: an empty session must be deleted", n)
	}
	c := h.gw.conns.get(a.id)
	c.mu.Lock()
	left := c.sessions
	c.mu.Unlock()
	if left != nil {
		t.Fatalf("a's sessions %v after leaving all, want nil", left)
	}
	// Changes apply in order: a leave then a join of the same session leaves the conn in it.
	h.sessions(leave(b, "s1"), join(b, "s1"))
	h.wantMembers("app", "s1", b)
	if st := h.gw.Stats(); st.SessionMemberships != 1 {
		t.Fatalf("memberships %d, want 1", st.SessionMemberships)
	}
}

func TestSessionsReportsGoneConnections(t *testing.T) {
	h := newHarness(t, harnessOpts{noNATS: true})
	live := h.login("app", "live")
	pending := h.connect("app", "pending")
	closed := h.login("app", "closed")
	closed.nc.Close()
	poll.Until(t, "the gateway notices the closed connection", func() bool { return h.gw.conns.get(closed.id) == nil })

	gone := h.sessions(
		join(live, "s"),
		&fleet.SessionChange{ConnId: 999999, Session: "s", Join: true},
		join(pending, "s"), // the state server binds a login before it answers it
		join(closed, "s"),
		leave(closed, "s"),
		&fleet.SessionChange{ConnId: 999999, Session: "s"},
	)
	if want := []int64{999999, int64(closed.id)}; !slices.Equal(gone, want) {
		t.Fatalf("gone %v, want %v (each once, in order)", gone, want)
	}
	h.wantMembers("app", "s", live, pending)
}

func TestSessionsRefusesAConnectionWithoutLogin(t *testing.T) {
	h := newHarness(t, harnessOpts{noNATS: true})
	d := h.login("app", "d")
	nc, err := net.DialTimeout("tcp", h.gw.Addr(), wait)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var silent *conn
	poll.Until(t, "the gateway accepts the silent connection", func() bool {
		silent = nil
		h.gw.conns.each(func(c *conn) {
			if c.id != d.id {
				silent = c
			}
		})
		return silent != nil
	})
	gone := h.sessions(&fleet.SessionChange{ConnId: int64(silent.id), Session: "s", Join: true})
	if !slices.Equal(gone, []int64{int64(silent.id)}) {
		t.Fatalf("gone %v, want the connection that never logged in", gone)
	}
}

// Whoever closes a connection, it leaves every session it was in.
func TestClosedConnectionLeavesItsSessions(t *testing.T) {
	closers := map[string]func(h *harness, d *device){
		"device hangs up": func(_ *harness, d *device) { d.nc.Close() },
		"device sends Close": func(_ *harness, d *device) {
			d.send(protocol.SigClose, 0, 0, (&protocol.Close{Code: protocol.CodeClientClose}).Append(nil))
		},
		"protocol error": func(_ *harness, d *device) { _, _ = d.nc.Write([]byte("GET / HTTP/1.1\r\n\r\nxxxx")) },
		"state server replaces it": func(h *harness, d *device) {
			h.push(&fleet.DownFrame{
				ConnId: int64(d.id), Action: fleet.DownAction_SEND_AND_CLOSE, Signal: int8(protocol.SigClose),
				Body: (&protocol.Close{Code: protocol.CodeReplaced, Message: "replaced"}).Append(nil),
			})
		},
	}
	for name, closeIt := range closers {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{noNATS: true})
			d, other := h.login("app", "d"), h.login("app", "other")
			h.sessions(join(d, "s1"), join(d, "s2"), join(other, "s1"))
			closeIt(h, d)
			poll.Until(t, "the connection is gone", func() bool { return h.gw.conns.get(d.id) == nil })
			h.wantMembers("app", "s1", other)
			h.wantMembers("app", "s2")
			if st := h.gw.Stats(); st.SessionMemberships != 1 {
				t.Fatalf("memberships %d, want 1", st.SessionMemberships)
			}
		})
	}
}

func TestShutdownEmptiesTheIndex(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	a, b := h.login("app", "a"), h.login("app", "b")
	h.sessions(join(a, "s"), join(b, "s"), join(b, "t"))
	if err := h.gw.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := h.gw.sessions.memberships.Load(); n != 0 {
		t.Fatalf("memberships %d after shutdown, want 0", n)
	}
	h.wantMembers("app", "s")
	if h.gw.sub.Load().IsValid() {
		t.Fatal("the broadcast subscription is still active after shutdown")
	}
}
