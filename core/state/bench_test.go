package state

import (
	"fmt"
	"testing"
)

// BenchmarkSessionJoin is what a Bind of one device costs the state server's index today, against
// which docs/adr/0009-failover-from-the-gateways.md weighs keeping bindings in JetStream KV.
func BenchmarkSessionJoin(b *testing.B) {
	ss := newSessions()
	conns := make([]*connState, 1024)
	for i := range conns {
		conns[i] = newConn(uint64(i+1), testApp, fmt.Sprintf("d%d", i), "")
	}
	names := []string{"room-42"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		cs := conns[i%len(conns)]
		ss.join(cs, names)
		ss.leave(cs, names[0])
	}
}
