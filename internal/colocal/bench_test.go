package colocal

import (
	"fmt"
	"testing"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
)

// BenchmarkCloneDeliver is the copy an in-process Deliver makes of its request, for batches of 1
// and 16 uplinks of 64 bytes: what isolation costs instead of the wire's encode, syscalls and
// decode (docs/adr/0015-in-process-link.md).
func BenchmarkCloneDeliver(b *testing.B) {
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			req := &fleet.DeliverRequest{GatewayId: "gw-host-1234", Proof: "0123456789abcdef0123456789abcdef", Boot: "boot-1", AcksInReply: true}
			for i := range n {
				req.Events = append(req.Events, &fleet.UpEvent{ConnId: int64(i), Kind: fleet.UpKind_FRAME, Signal: 3, Seq: int64(i), Body: make([]byte, 64)})
			}
			bufs := newBufs()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := clone(bufs, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
