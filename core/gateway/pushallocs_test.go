package gateway_test

import (
	"context"
	"fmt"
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

// An at-least-once push costs the gateway a bounded number of heap objects, the way `plato up`
// runs it (the state server linked in-process, internal/colocal): 64 logged-in devices on real
// loopback sockets, one Push of one tracked Downlink for each, each device reading its Downlink
// and answering a DownlinkAck, which the gateway forwards to the state server in Deliver calls.
// What is counted is everything the process allocates for that round trip: colocal's copies of
// the Push and of each Deliver (as the wire would decode them), the gateway's own work (the
// failover record of the unACKed downlink, the write queue and its flush, the DownlinkAck's
// event), and the fake state server's answer to each Deliver. See the bound below.
func TestPushAllocationsPerPush(t *testing.T) {
	if gateway.RaceEnabled {
		t.Skip("the race detector allocates")
	}
	dir := colocal.New()
	h := gatewaytest.New(t, gatewaytest.Options{NoNATS: true, Local: dir, Configure: func(c *gateway.Config) {
		// No periodic work of the gateway's own while the pushes are counted.
		c.ReportInterval = time.Hour
		c.StatePingInterval = time.Hour
	}})
	const n = 64
	devs := make([]*gatewaytest.Device, n)
	frames := make([]*fleet.DownFrame, n)
	body := (&protocol.Downlink{MsgID: 1, Payload: []byte("hello, device")}).Append(nil)
	for i := range devs {
		devs[i] = h.Login("app", fmt.Sprintf("d%d", i))
		frames[i] = &fleet.DownFrame{
			ConnId: int64(devs[i].ID), Signal: int8(protocol.SigDownlink), Body: body, Track: true,
		}
	}
	cli := dir.GatewayClient(registry.Node{ID: gatewaytest.ID, RPCAddr: h.Gateway.RPCAddr()}, nil, colocal.Options{Timeout: poll.Timeout})
	req := &fleet.PushRequest{Frames: frames, StateId: gatewaytest.StateID}
	in := make([]byte, protocol.HeaderLen+len(body))
	ack := make([]byte, protocol.HeaderLen)
	ctx := context.Background()
	seq := int64(1)
	push := func() {
		seq++
		for _, f := range frames {
			f.Seq = seq // colocal copies the request: the next round may change it
		}
		before := h.State.Delivered()
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
		for deadline := time.Now().Add(poll.Timeout); h.State.Delivered() < before+n; time.Sleep(50 * time.Microsecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d DownlinkAcks of %d reached the state server", h.State.Delivered()-before, n)
			}
		}
	}
	push()
	perPush := testing.AllocsPerRun(20, push) / n
	t.Logf("%.1f heap objects per push", perPush)
	if perPush > 30 {
		t.Errorf("%.1f heap objects per push, want at most 30", perPush)
	}
}
