package gateway_test

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/cloudwego/netpoll"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/core/gateway/gatewaytest"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// TestMain runs this package's tests under the buffer policy `plato` sets in main, before any
// connection exists, so that every test here exercises the small netpoll nodes.
func TestMain(m *testing.M) {
	if err := gateway.TuneNetpoll(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func TestTuneNetpollSetsSmallNodes(t *testing.T) {
	if netpoll.LinkBufferCap != gateway.NetpollMinNode {
		t.Fatalf("netpoll.LinkBufferCap = %d, want %d", netpoll.LinkBufferCap, gateway.NetpollMinNode)
	}
}

// TestFramesLargerThanTheBuffersGoThroughWhole: with 512-byte read nodes and 128-byte minimum
// nodes, a frame of 60 KB each way (a Login, an uplink, a downlink, and heartbeats between) spans
// many nodes and still arrives whole and in order, several times on one connection.
func TestFramesLargerThanTheBuffersGoThroughWhole(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	d := h.Login("demo", "big")
	for i := range 3 {
		body := bytes.Repeat([]byte{byte('a' + i)}, 60000+i*1000)
		seq := uint64(10 + i)
		d.Send(protocol.SigUplink, 0, seq, body)
		poll.Until(t, "the large uplink to reach the state server whole", func() bool {
			for _, ev := range h.State.Received(d.ID, protocol.SigUplink) {
				if uint64(ev.Seq) == seq && bytes.Equal(ev.Body, body) {
					return true
				}
			}
			return false
		})
		d.Send(protocol.SigHeartbeat, 0, seq, nil)
		poll.Until(t, "the heartbeat after it", func() bool {
			for _, ev := range h.State.Received(d.ID, protocol.SigHeartbeat) {
				if uint64(ev.Seq) == seq {
					return true
				}
			}
			return false
		})
		down := bytes.Repeat([]byte{byte('A' + i)}, 50000+i*1000)
		if gone := h.Push(&fleet.DownFrame{ConnId: int64(d.ID), Signal: int8(protocol.SigDownlink), Seq: int64(seq), Body: down}); len(gone) != 0 {
			t.Fatalf("push %d: connection gone", i)
		}
		f := d.Read()
		if f.Signal != protocol.SigDownlink || f.Seq != seq || !bytes.Equal(f.Body, down) {
			t.Fatalf("push %d: got %v with %d bytes, want a Downlink of %d bytes", i, f.Signal, len(f.Body), len(down))
		}
	}
}
