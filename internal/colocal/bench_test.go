package colocal

import (
	"fmt"
	"testing"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
)

// BenchmarkClone is the copy an in-process Deliver makes of its request, for batches of 1 and 16
// uplinks of 64 bytes: what isolation costs instead of the wire's encode, syscalls and decode
// (docs/adr/0015-in-process-link.md). "deep" is clone; "codec" is the round trip through the
// Thrift fast codec it replaced, kept here as the measure of what the change saved.
func BenchmarkClone(b *testing.B) {
	for _, n := range []int{1, 16} {
		req := &fleet.DeliverRequest{GatewayId: "gw-host-1234", Proof: "0123456789abcdef0123456789abcdef", Boot: "boot-1", AcksInReply: true}
		for i := range n {
			req.Events = append(req.Events, &fleet.UpEvent{ConnId: int64(i), Kind: fleet.UpKind_FRAME, Signal: 3, Seq: int64(i), Body: make([]byte, 64)})
		}
		b.Run(fmt.Sprintf("deep/events=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := clone(req); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("codec/events=%d", n), func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				buf = buf[:req.BLength()]
				w := req.FastWrite(buf)
				if _, err := new(fleet.DeliverRequest).FastRead(buf[:w]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
