package gateway

import (
	"testing"
	"unsafe"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
)

// TestConnStaysSmall pins the size of what every connection carries: conn in the 176-byte size
// class (it was 288 before the rarely used fields moved to connCold and the app ID and did to one
// key). A field added to conn must fit there, or go to connCold, or the figure in
// docs/performance.md moves.
func TestConnStaysSmall(t *testing.T) {
	if s := unsafe.Sizeof(conn{}); s > 176 {
		t.Fatalf("conn is %d bytes, want at most 176 (move what most connections do not use to connCold)", s)
	}
	if s := unsafe.Sizeof(connCold{}); s > 144 {
		t.Fatalf("connCold is %d bytes, want at most 144", s)
	}
}

// TestColdIsDroppedOnceEmpty: what made a connCold going away drops it, but for used limits.
func TestColdIsDroppedOnceEmpty(t *testing.T) {
	gw := &Gateway{}
	c := &conn{gw: gw}
	c.mu.Lock()
	c.trackLocked(&fleet.DownFrame{Seq: 3})
	c.mu.Unlock()
	if c.cold == nil || len(c.cold.unacked) != 1 {
		t.Fatal("tracking a downlink made no connCold")
	}
	if c.acked(4) || c.cold == nil {
		t.Fatal("an ACK of another downlink forgot the tracked one")
	}
	if !c.acked(3) || c.cold != nil {
		t.Fatalf("ACKing the last tracked downlink kept the connCold: %+v", c.cold)
	}
	c.mu.Lock()
	c.coldLocked().limits.msgs.last = 1
	c.trimColdLocked()
	c.mu.Unlock()
	if c.cold == nil {
		t.Fatal("a connCold with used limits was dropped: the device's buckets would refill")
	}
}

// TestIdentitySharesOneString: the app ID, did and a uid equal to the did are the did index key's
// parts, and a connection before its Login has none.
func TestIdentitySharesOneString(t *testing.T) {
	c := &conn{}
	if c.appID() != "" || c.did() != "" {
		t.Fatalf("before a Login: app %q, did %q", c.appID(), c.did())
	}
	c.setIdentityLocked("app", "dev-1", "dev-1")
	if c.appID() != "app" || c.did() != "dev-1" || c.uid != "dev-1" || c.key != didKey("app", "dev-1") {
		t.Fatalf("app %q, did %q, uid %q, key %q", c.appID(), c.did(), c.uid, c.key)
	}
	if unsafe.StringData(c.uid) != unsafe.StringData(c.did()) {
		t.Fatal("a uid equal to the did is a copy of it")
	}
	c.setIdentityLocked("app", "dev-2", "user-9")
	if c.did() != "dev-2" || c.uid != "user-9" {
		t.Fatalf("did %q, uid %q", c.did(), c.uid)
	}
}
