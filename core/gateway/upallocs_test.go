package gateway_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// An uplink costs the gateway a bounded number of heap objects, the way `plato up` runs it (the
// state server linked in-process, internal/colocal): 96 logged-in devices on real loopback sockets
// each send one uplink a round, the state server answers every one in the Deliver reply (ADR
// 0012), and each device reads its UplinkAck. Everything the process allocates for that round
// trip is counted, the fake state server's answers and records and colocal's copies included;
// as in TestPushAllocationsPerPush, the gateway runs one lane and the fake holds a round's calls
// until the gateway has read every device's uplink, so that a round travels in a few calls.
//
// 6.4 objects per uplink in all when this was written, most of them outside the gateway: the
// fake's record of each event and its answer, colocal's copies of the calls, netpoll's read task.
// 4.2 since Deliver crosses the in-process link uncopied (ADR 0015's amendment). The gateway's own
// work allocates nothing: the event (pushpool.go) and its record of the uplink in flight, kept in
// the device's connCold (failover.go), are reused; the build that made that record again for
// every uplink counted one more. The bound of 5 leaves room for the calls' share to vary, not for
// one more object per uplink.
func TestUplinkAllocationsPerUplink(t *testing.T) {
	if gateway.RaceEnabled {
		t.Skip("the race detector allocates")
	}
	const n = 96
	h, dir, devs := countingHarness(t, n)
	var open atomic.Bool
	open.Store(true)
	okBody := (&protocol.Ack{}).Append(nil)
	h.State.SetReply(func(req *fleet.DeliverRequest) *fleet.DeliverResponse {
		for deadline := time.Now().Add(poll.Timeout); !open.Load() && time.Now().Before(deadline); {
			time.Sleep(20 * time.Microsecond)
		}
		resp := &fleet.DeliverResponse{}
		for _, ev := range req.Events {
			if protocol.Signal(ev.Signal) == protocol.SigUplink {
				resp.Acks = append(resp.Acks, &fleet.DownFrame{
					ConnId: ev.ConnId, Signal: int8(protocol.SigUplinkAck), Seq: ev.Seq, Body: okBody,
				})
			}
		}
		return resp
	})
	up := make([]byte, protocol.HeaderLen+len("hello, state"))
	copy(up[protocol.HeaderLen:], "hello, state")
	in := make([]byte, protocol.HeaderLen+len(okBody))
	seq := uint64(0)
	uplinks := gateway.FramesIn(h.Gateway, protocol.SigUplink)
	round := func() {
		seq++
		open.Store(false)
		for _, d := range devs {
			protocol.PutHeader(up, protocol.Header{Signal: protocol.SigUplink, Seq: seq, Length: uint32(len("hello, state"))})
			d.WriteRaw(up)
		}
		for deadline := time.Now().Add(poll.Timeout); gateway.FramesIn(h.Gateway, protocol.SigUplink) < uplinks+n && time.Now().Before(deadline); {
			time.Sleep(20 * time.Microsecond)
		}
		uplinks += n
		open.Store(true)
		for _, d := range devs {
			d.ReadFull(in)
			if h := protocol.Signal(in[3]); h != protocol.SigUplinkAck {
				t.Fatalf("%s: got %x, want an UplinkAck", d.DID, in[:protocol.HeaderLen])
			}
		}
	}
	round()
	h.State.Forget()
	calls := dir.Calls()["Deliver"]
	perUplink := testing.AllocsPerRun(20, round) / n
	t.Logf("%.1f heap objects per uplink, %.2f Deliver calls per uplink", perUplink, float64(dir.Calls()["Deliver"]-calls)/(21*n))
	if perUplink > 5 {
		t.Errorf("%.1f heap objects per uplink, want at most 5", perUplink)
	}
}
