package gateway_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/core/gateway/gatewaytest"
	"github.com/platoim/plato/internal/colocal"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// countingHarness starts a gateway as the allocation tests count it: the state server linked
// in-process (colocal), one lane, no periodic work of its own, and n devices logged in.
func countingHarness(t *testing.T, n int) (*gatewaytest.Harness, *colocal.Dir, []*gatewaytest.Device) {
	t.Helper()
	dir := colocal.New()
	h := gatewaytest.New(t, gatewaytest.Options{NoNATS: true, Local: dir, Configure: func(c *gateway.Config) {
		c.ReportInterval = time.Hour
		c.StatePingInterval = time.Hour
		c.Batch.Lanes = 1
	}})
	devs := make([]*gatewaytest.Device, n)
	for i := range devs {
		devs[i] = h.Login("app", fmt.Sprintf("d%d", i))
	}
	return h, dir, devs
}

// An at-least-once push costs the gateway a bounded number of heap objects, the way `plato up`
// runs it (the state server linked in-process, internal/colocal): 96 logged-in devices on real
// loopback sockets, one Push of one tracked Downlink for each, each device reading its Downlink
// and answering a DownlinkAck, which the gateway forwards to the state server in Deliver calls.
// Everything the process allocates for that round trip is counted. 96 is below taskrun.MaxIdle, so
// every flush and ACK read of a round finds a waiting worker (past that, each starts a goroutine,
// an allocation).
//
// A Deliver call costs 6 objects whatever it carries (colocal's copies of its request, its event
// list and two strings, and of its answer; the fake's answer), and on an idle loopback most
// calls carry one ACK, which would drown the gateway's own count and make it vary with timing. So
// the gateway runs one lane to the state server, and the fake state server holds each round's
// calls until the gateway has read every device's ACK, as a busy state server would: a round's
// ACKs travel in a few calls (the first, then up to gateway.batch.max_size at a time).
//
// What is left per push: colocal's copy of the pushed frame's body (the frames and the events of
// a call are each decoded in one block), netpoll's read task for the ACK (a closure per read,
// inside netpoll), and the calls' share: 2.2 to 2.4 in all when this was written. The gateway's
// own work allocates nothing: the failover record of the unACKed downlink (connCold and its
// unacked slice), the write queue, the flush's task and the ACK's event are reused
// (pushpool.go), as are a Deliver call's request and context. The build before made 7.3 objects
// per push in this test. The bound of 3 leaves room for the calls' share to vary, not for one
// more object per push.
func TestPushAllocationsPerPush(t *testing.T) {
	if gateway.RaceEnabled {
		t.Skip("the race detector allocates")
	}
	const n = 96
	h, dir, devs := countingHarness(t, n)
	frames := make([]*fleet.DownFrame, n)
	body := (&protocol.Downlink{MsgID: 1, Payload: []byte("hello, device")}).Append(nil)
	for i := range devs {
		frames[i] = &fleet.DownFrame{
			ConnId: int64(devs[i].ID), Signal: int8(protocol.SigDownlink), Body: body, Track: true,
		}
	}
	var open atomic.Bool
	h.State.SetReply(func(*fleet.DeliverRequest) *fleet.DeliverResponse {
		for deadline := time.Now().Add(poll.Timeout); !open.Load() && time.Now().Before(deadline); {
			time.Sleep(20 * time.Microsecond)
		}
		return nil
	})
	open.Store(true) // until the rounds start
	cli := dir.GatewayClient(registry.Node{ID: gatewaytest.ID, RPCAddr: h.Gateway.RPCAddr()}, nil, colocal.Options{Timeout: poll.Timeout})
	req := &fleet.PushRequest{Frames: frames, StateId: gatewaytest.StateID}
	in := make([]byte, protocol.HeaderLen+len(body))
	ack := make([]byte, protocol.HeaderLen)
	ctx := context.Background()
	seq := int64(1)
	acks := gateway.FramesIn(h.Gateway, protocol.SigDownlinkAck)
	push := func() {
		seq++
		for _, f := range frames {
			f.Seq = seq // colocal copies the request: the next round may change it
		}
		before := h.State.Delivered()
		open.Store(false)
		resp, err := cli.Push(ctx, req)
		if err != nil || len(resp.Gone) != 0 || len(resp.Moved) != 0 {
			t.Fatalf("Push: %v %+v", err, resp)
		}
		for _, d := range devs {
			d.ReadFull(in)
			if protocol.Signal(in[3]) != protocol.SigDownlink {
				t.Fatalf("%s: got %x, want a Downlink", d.DID, in[:protocol.HeaderLen])
			}
			protocol.PutHeader(ack, protocol.Header{Signal: protocol.SigDownlinkAck, Seq: uint64(seq)})
			d.WriteRaw(ack)
		}
		// Every ACK read (each is counted before it is queued for the state server): the held
		// calls may go.
		for deadline := time.Now().Add(poll.Timeout); gateway.FramesIn(h.Gateway, protocol.SigDownlinkAck) < acks+n && time.Now().Before(deadline); {
			time.Sleep(20 * time.Microsecond)
		}
		acks += n
		open.Store(true)
		for deadline := time.Now().Add(poll.Timeout); h.State.Delivered() < before+n; time.Sleep(50 * time.Microsecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d DownlinkAcks of %d reached the state server", h.State.Delivered()-before, n)
			}
		}
	}
	push()
	calls := dir.Calls()["Deliver"]
	perPush := testing.AllocsPerRun(20, push) / n
	t.Logf("%.1f heap objects per push, %.2f Deliver calls per push", perPush, float64(dir.Calls()["Deliver"]-calls)/(21*n))
	if perPush > 3 {
		t.Errorf("%.1f heap objects per push, want at most 3", perPush)
	}
}
