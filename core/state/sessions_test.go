package state

import (
	"slices"
	"sync"
	"testing"
)

func TestSessionJoinAddsOnlyNewNames(t *testing.T) {
	ss := newSessions()
	cs := newConn(1, testApp, "d1", "")
	if got := ss.join(cs, []string{"room", "", "room", "news"}); !slices.Equal(got, []string{"room", "news"}) {
		t.Fatalf("join = %q, want room and news once each (empty names skipped)", got)
	}
	if got := ss.join(cs, []string{"news", "sport"}); !slices.Equal(got, []string{"sport"}) {
		t.Fatalf("second join = %q, want only the new session: the gateway must not be told twice", got)
	}
	if got := cs.sessionList(); !slices.Equal(got, []string{"room", "news", "sport"}) {
		t.Errorf("the connection's sessions = %q", got)
	}
	if ss.size(testApp, "room") != 1 || ss.count() != 3 {
		t.Errorf("size(room) = %d, count = %d; want 1 and 3", ss.size(testApp, "room"), ss.count())
	}
}

func TestSessionsAreScopedByApp(t *testing.T) {
	ss := newSessions()
	a, b := newConn(1, testApp, "d1", ""), newConn(2, otherApp, "d1", "")
	ss.join(a, []string{"room"})
	ss.join(b, []string{"room"})
	if got := ss.members(testApp, "room"); len(got) != 1 || got[0] != a {
		t.Errorf("members(app, room) = %d connections, want only app's", len(got))
	}
	if ss.size(otherApp, "room") != 1 || ss.size("third", "room") != 0 {
		t.Error("a session name is shared between apps")
	}
}

func TestSessionLeaveRemovesOneMembership(t *testing.T) {
	ss := newSessions()
	a, b := newConn(1, testApp, "a", ""), newConn(2, testApp, "b", "")
	ss.join(a, []string{"room", "news"})
	ss.join(b, []string{"room"})
	if !ss.leave(a, "room") {
		t.Fatal("leave of a member reported it was not one")
	}
	if ss.leave(a, "room") || ss.leave(a, "never") {
		t.Error("leave of a non-member reported a change (the gateway would be told)")
	}
	if got := ss.members(testApp, "room"); len(got) != 1 || got[0] != b {
		t.Error("room should hold only b")
	}
	if !a.member("news") || a.member("room") {
		t.Errorf("a's sessions = %q, want [news]", a.sessionList())
	}
	ss.leave(b, "room")
	// An emptied session leaves no entry behind, or every session ever used would cost a map.
	if n := len(ss.shard(didKey(testApp, "room")).byKey[didKey(testApp, "room")]); n != 0 || ss.count() != 1 {
		t.Errorf("after everyone left: room has %d members, count %d", n, ss.count())
	}
	if _, ok := ss.shard(didKey(testApp, "room")).byKey[didKey(testApp, "room")]; ok {
		t.Error("an empty session keeps its map")
	}
}

func TestSessionLeaveAllEmptiesEveryIndex(t *testing.T) {
	ss := newSessions()
	a, b := newConn(1, testApp, "a", ""), newConn(2, testApp, "b", "")
	ss.join(a, []string{"room", "news", "sport"})
	ss.join(b, []string{"room"})
	ss.leaveAll(a)
	if a.sessionList() != nil {
		t.Errorf("a still lists %q", a.sessionList())
	}
	for _, name := range []string{"room", "news", "sport"} {
		if slices.Contains(ss.members(testApp, name), a) {
			t.Errorf("%s still holds a closed connection", name)
		}
	}
	if ss.count() != 1 || ss.size(testApp, "room") != 1 {
		t.Errorf("count = %d, want b's one membership", ss.count())
	}
}

func TestClosedConnectionJoinsNothing(t *testing.T) {
	ss := newSessions()
	cs := newConn(1, testApp, "d1", "")
	cs.closed = true
	if got := ss.join(cs, []string{"room"}); got != nil {
		t.Errorf("a closed connection joined %q", got)
	}
	if ss.size(testApp, "room") != 0 {
		t.Error("a closed connection is in the index")
	}
}

// A Bind racing with the connection's disconnect either lands first (and is undone by it) or
// finds it closed: the index never keeps a closed connection.
func TestJoinRacingDisconnectLeavesNoClosedMember(t *testing.T) {
	ts := newTestServer(t)
	for i := range 200 {
		cs := newConn(uint64(i+1), testApp, "d", "")
		ts.conns.addPending(cs)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); ts.sessions.join(cs, []string{"room", "news"}) }()
		go func() { defer wg.Done(); ts.disconnect(cs, 1209) }()
		wg.Wait()
		if n := ts.sessions.size(testApp, "room") + ts.sessions.size(testApp, "news"); n != 0 {
			t.Fatalf("round %d: %d memberships of a closed connection remain", i, n)
		}
	}
}

func TestSessionMembersListsTheIndexedDIDs(t *testing.T) {
	ts := newTestServer(t)
	a, b := newConn(1, testApp, "a", ""), newConn(2, testApp, "b", "")
	ts.sessions.join(a, []string{"room"})
	ts.sessions.join(b, []string{"room"})
	got := ts.SessionMembers(testApp, "room")
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("SessionMembers = %q", got)
	}
	if got := ts.SessionMembers(otherApp, "room"); len(got) != 0 {
		t.Errorf("SessionMembers of another app = %q", got)
	}
}
