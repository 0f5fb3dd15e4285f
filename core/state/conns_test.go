package state

import (
	"slices"
	"testing"
)

func TestConnsPendingLoginIsFoundByKeyOnly(t *testing.T) {
	c := newConns()
	cs := newConn(1, testApp, "d1", "u1")
	if !c.addPending(cs) {
		t.Fatal("addPending of a new key refused")
	}
	if c.get(cs.key) != cs {
		t.Error("a pending login is not found by its key: its next frames would be lost")
	}
	if c.byDID(testApp, "d1") != nil || len(c.byUID(testApp, "u1")) != 0 {
		t.Error("a pending login is reachable by did or uid before the pipeline let it in")
	}
	if c.addPending(newConn(1, testApp, "d2", "")) {
		t.Error("a second login on the same gateway connection was accepted")
	}
	if c.len() != 1 {
		t.Errorf("len = %d, want 1", c.len())
	}
}

func TestConnsKeysAreScopedByGateway(t *testing.T) {
	c := newConns()
	a := newConn(7, testApp, "d1", "")
	b := newConnState(connKey{gw: "gw-2", id: 7}, testApp, "d2", "", "", nil)
	if !c.addPending(a) || !c.addPending(b) {
		t.Fatal("the same connection ID on two gateways must be two connections")
	}
	if c.get(a.key) != a || c.get(b.key) != b {
		t.Error("get mixed up two gateways' connection 7")
	}
	if got := c.ofGateway("gw-2"); len(got) != 1 || got[0] != b {
		t.Errorf("ofGateway(gw-2) = %v, want only its own connection", got)
	}
	if got := c.ofGateway("gw-3"); len(got) != 0 {
		t.Errorf("ofGateway of an unknown gateway = %v", got)
	}
}

func TestConnsActivateReplacesTheDIDsConnection(t *testing.T) {
	c := newConns()
	old := newConn(1, testApp, "d1", "u1")
	c.addPending(old)
	if r := c.activate(old); r != nil {
		t.Fatalf("first activation replaced %v", r)
	}
	cur := newConn(2, testApp, "d1", "u1")
	c.addPending(cur)
	if r := c.activate(cur); r != old {
		t.Fatalf("activate returned %v, want the older connection", r)
	}
	if c.byDID(testApp, "d1") != cur {
		t.Fatal("the did does not reach its newest connection")
	}
	// The replaced connection is forgotten once its disconnect ran: that must not take the did's
	// new connection with it.
	if !c.remove(old) {
		t.Fatal("remove of the replaced connection reported it gone already")
	}
	if c.byDID(testApp, "d1") != cur {
		t.Error("removing the replaced connection unindexed the did's new one")
	}
	if got := c.byUID(testApp, "u1"); len(got) != 1 || got[0] != cur {
		t.Errorf("byUID after the replaced connection left = %v, want only the new one", got)
	}
	if c.get(old.key) != nil {
		t.Error("the replaced connection is still found by key")
	}
	if c.len() != 1 {
		t.Errorf("len = %d, want 1", c.len())
	}
}

func TestConnsRemoveLeavesNoIndexEntry(t *testing.T) {
	c := newConns()
	cs := newConn(1, testApp, "d1", "u1")
	c.addPending(cs)
	c.activate(cs)
	if !c.remove(cs) {
		t.Fatal("remove reported the connection gone already")
	}
	if c.remove(cs) {
		t.Error("a second remove reported the connection as still there")
	}
	if c.get(cs.key) != nil || c.byDID(testApp, "d1") != nil || len(c.byUID(testApp, "u1")) != 0 || c.len() != 0 {
		t.Error("a removed connection is still reachable")
	}
	// Empty uid sets are deleted, or every user who ever logged in would cost a map.
	for i := range c.shards {
		if n := len(c.shards[i].byUID) + len(c.shards[i].byDID) + len(c.shards[i].byKey); n != 0 {
			t.Fatalf("shard %d still holds %d index entries", i, n)
		}
	}
}

func TestConnsByUIDListsEveryDeviceOfTheUserInItsApp(t *testing.T) {
	c := newConns()
	phone, laptop := newConn(1, testApp, "phone", "alice"), newConn(2, testApp, "laptop", "alice")
	elsewhere := newConn(3, otherApp, "phone", "alice")
	anon := newConn(4, testApp, "kiosk", "")
	for _, cs := range []*connState{phone, laptop, elsewhere, anon} {
		c.addPending(cs)
		c.activate(cs)
	}
	got := c.byUID(testApp, "alice")
	if len(got) != 2 || !slices.Contains(got, phone) || !slices.Contains(got, laptop) {
		t.Errorf("byUID(app, alice) = %d connections, want phone and laptop", len(got))
	}
	if got := c.byUID(otherApp, "alice"); len(got) != 1 || got[0] != elsewhere {
		t.Error("byUID crossed apps")
	}
	if c.byDID(otherApp, "phone") != elsewhere || c.byDID(testApp, "phone") != phone {
		t.Error("byDID crossed apps")
	}
	if got := c.byUID(testApp, ""); len(got) != 0 {
		t.Errorf("connections without a uid are indexed under the empty uid: %d", len(got))
	}
	c.remove(phone)
	if got := c.byUID(testApp, "alice"); len(got) != 1 || got[0] != laptop {
		t.Error("byUID still lists a removed device")
	}
}

func TestWaiterClosesOnlyOnceArmedAndEveryTargetAcked(t *testing.T) {
	w := newWaiter(3)
	w.add()
	w.ack(0)
	// Every target tracked so far has ACKed, but later ones are still being sent.
	if w.finished {
		t.Fatal("finished before arm")
	}
	w.add()
	w.add()
	done := w.arm()
	if done == nil || isClosed(done) {
		t.Fatal("done closed with two targets pending")
	}
	w.ack(1)
	w.ack(1) // a duplicate ACK counts once
	if isClosed(done) {
		t.Fatal("a duplicate ACK was counted twice")
	}
	w.ack(2)
	if !isClosed(done) {
		t.Fatal("done not closed once every target ACKed")
	}
	w.ack(2) // late ACKs after done must not close it again (a panic)
}

func TestWaiterArmedWithNothingPendingIsDone(t *testing.T) {
	w := newWaiter(1)
	if done := w.arm(); done != nil {
		t.Fatal("a waiter with nothing to wait for never finishes")
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
