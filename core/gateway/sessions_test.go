package gateway_test

import (
	"slices"
	"testing"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/core/gateway/gatewaytest"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

func ids(ds ...*gatewaytest.Device) []uint64 {
	out := make([]uint64, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.ID)
	}
	slices.Sort(out)
	return out
}

func wantMembers(t *testing.T, h *gatewaytest.Harness, app, session string, want ...*gatewaytest.Device) {
	t.Helper()
	got := h.Gateway.SessionMembers(app, session)
	if w := ids(want...); !slices.Equal(got, w) && !(len(got) == 0 && len(w) == 0) {
		t.Fatalf("members of %s/%s = %v, want %v", app, session, got, w)
	}
}

func TestSessionsJoinLeaveIdempotent(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{NoNATS: true})
	a, b := h.Login("app", "a"), h.Login("app", "b")

	gone := h.Sessions(
		gatewaytest.Join(a, "s1"), gatewaytest.Join(b, "s1"), gatewaytest.Join(a, "s1"), gatewaytest.Join(a, "s2"),
	)
	if len(gone) != 0 {
		t.Fatalf("gone %v, want none", gone)
	}
	wantMembers(t, h, "app", "s1", a, b)
	wantMembers(t, h, "app", "s2", a)
	wantMembers(t, h, "other-app", "s1")
	if st := h.Gateway.Stats(); st.SessionMemberships != 3 {
		t.Fatalf("memberships %d, want 3 (a joining s1 twice counts once)", st.SessionMemberships)
	}

	h.Sessions(gatewaytest.Leave(a, "s1"), gatewaytest.Leave(a, "s1"), gatewaytest.Leave(b, "never-joined"))
	wantMembers(t, h, "app", "s1", b)
	h.Sessions(gatewaytest.Leave(a, "s2"))
	wantMembers(t, h, "app", "s2")
	if n := h.Gateway.Stats().Sessions; n != 1 {
		t.Fatalf("sessions %d, want 1: an empty session must be deleted", n)
	}
	if left, held := gateway.ConnSessions(h.Gateway, a.ID); !held || left != nil {
		t.Fatalf("a's sessions %v (held %v) after leaving all, want nil", left, held)
	}
	// Changes apply in order: a leave then a join of the same session leaves the conn in it.
	h.Sessions(gatewaytest.Leave(b, "s1"), gatewaytest.Join(b, "s1"))
	wantMembers(t, h, "app", "s1", b)
	if st := h.Gateway.Stats(); st.SessionMemberships != 1 {
		t.Fatalf("memberships %d, want 1", st.SessionMemberships)
	}
}

func TestSessionsReportsGoneConnections(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{NoNATS: true})
	live := h.Login("app", "live")
	pending := h.Connect("app", "pending")
	closed := h.Login("app", "closed")
	closed.Close()
	poll.Until(t, "the gateway notices the closed connection", func() bool { return !gateway.Holds(h.Gateway, closed.ID) })

	gone := h.Sessions(
		gatewaytest.Join(live, "s"),
		&fleet.SessionChange{ConnId: 999999, Session: "s", Join: true},
		gatewaytest.Join(pending, "s"), // the state server binds a login before it answers it
		gatewaytest.Join(closed, "s"),
		gatewaytest.Leave(closed, "s"),
		&fleet.SessionChange{ConnId: 999999, Session: "s"},
	)
	if want := []int64{999999, int64(closed.ID)}; !slices.Equal(gone, want) {
		t.Fatalf("gone %v, want %v (each once, in order)", gone, want)
	}
	wantMembers(t, h, "app", "s", live, pending)
}

func TestSessionsRefusesAConnectionWithoutLogin(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{NoNATS: true})
	d := h.Login("app", "d")
	h.Dial()
	var silent uint64
	poll.Until(t, "the gateway accepts the silent connection", func() bool {
		silent = 0
		for _, id := range gateway.ConnIDs(h.Gateway) {
			if id != d.ID {
				silent = id
			}
		}
		return silent != 0
	})
	gone := h.Sessions(&fleet.SessionChange{ConnId: int64(silent), Session: "s", Join: true})
	if !slices.Equal(gone, []int64{int64(silent)}) {
		t.Fatalf("gone %v, want the connection that never logged in", gone)
	}
}

// Whoever closes a connection, it leaves every session it was in.
func TestClosedConnectionLeavesItsSessions(t *testing.T) {
	closers := map[string]func(h *gatewaytest.Harness, d *gatewaytest.Device){
		"device hangs up": func(_ *gatewaytest.Harness, d *gatewaytest.Device) { d.Close() },
		"device sends Close": func(_ *gatewaytest.Harness, d *gatewaytest.Device) {
			d.Send(protocol.SigClose, 0, 0, (&protocol.Close{Code: protocol.CodeClientClose}).Append(nil))
		},
		"protocol error": func(_ *gatewaytest.Harness, d *gatewaytest.Device) {
			d.WriteRaw([]byte("GET / HTTP/1.1\r\n\r\nxxxx"))
		},
		"state server replaces it": func(h *gatewaytest.Harness, d *gatewaytest.Device) {
			h.Push(&fleet.DownFrame{
				ConnId: int64(d.ID), Action: fleet.DownAction_SEND_AND_CLOSE, Signal: int8(protocol.SigClose),
				Body: (&protocol.Close{Code: protocol.CodeReplaced, Message: "replaced"}).Append(nil),
			})
		},
	}
	for name, closeIt := range closers {
		t.Run(name, func(t *testing.T) {
			h := gatewaytest.New(t, gatewaytest.Options{NoNATS: true})
			d, other := h.Login("app", "d"), h.Login("app", "other")
			h.Sessions(gatewaytest.Join(d, "s1"), gatewaytest.Join(d, "s2"), gatewaytest.Join(other, "s1"))
			closeIt(h, d)
			poll.Until(t, "the connection is gone", func() bool { return !gateway.Holds(h.Gateway, d.ID) })
			wantMembers(t, h, "app", "s1", other)
			wantMembers(t, h, "app", "s2")
			if st := h.Gateway.Stats(); st.SessionMemberships != 1 {
				t.Fatalf("memberships %d, want 1", st.SessionMemberships)
			}
		})
	}
}

func TestShutdownEmptiesTheIndex(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	a, b := h.Login("app", "a"), h.Login("app", "b")
	h.Sessions(gatewaytest.Join(a, "s"), gatewaytest.Join(b, "s"), gatewaytest.Join(b, "t"))
	if err := h.Gateway.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := h.Gateway.Stats().SessionMemberships; n != 0 {
		t.Fatalf("memberships %d after shutdown, want 0", n)
	}
	wantMembers(t, h, "app", "s")
	if gateway.BroadcastSubscription(h.Gateway).IsValid() {
		t.Fatal("the broadcast subscription is still active after shutdown")
	}
}
