package gateway_test

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/core/gateway/gatewaytest"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// A frame that arrives in pieces is framed whole once complete, and while one device is mid-frame
// the others' frames go through: a read never waits for the rest of a frame (carry.go), which on
// netpoll's poller would hold up every connection of the poller.
func TestAFrameInPiecesHoldsUpNoOtherDevice(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	slow := h.Login("a", "slow")
	quick := h.Login("a", "quick")
	body := bytes.Repeat([]byte("piece"), 200)
	frame := protocol.AppendFrame(nil, protocol.SigUplink, 0, 1, body)
	slow.WriteRaw(frame[:5]) // not even a whole header
	for seq := uint64(1); seq <= 3; seq++ {
		quick.Send(protocol.SigUplink, 0, seq, []byte("quick"))
	}
	poll.Until(t, "the other device's uplinks", func() bool { return len(h.State.Received(quick.ID, protocol.SigUplink)) == 3 })
	slow.WriteRaw(frame[5 : protocol.HeaderLen+100])
	quick.Send(protocol.SigUplink, 0, 4, []byte("quick"))
	poll.Until(t, "the other device's fourth uplink", func() bool { return len(h.State.Received(quick.ID, protocol.SigUplink)) == 4 })
	if n := len(h.State.Received(slow.ID, protocol.SigUplink)); n != 0 {
		t.Fatalf("%d uplinks of the device mid-frame reached the state server", n)
	}
	// The rest, and a second frame in the same write.
	slow.WriteRaw(append(frame[protocol.HeaderLen+100:], protocol.AppendFrame(nil, protocol.SigUplink, 0, 2, []byte("two"))...))
	poll.Until(t, "the frame sent in pieces", func() bool { return len(h.State.Received(slow.ID, protocol.SigUplink)) == 2 })
	ups := h.State.Received(slow.ID, protocol.SigUplink)
	if ups[0].Seq != 1 || !bytes.Equal(ups[0].Body, body) || ups[1].Seq != 2 || string(ups[1].Body) != "two" {
		t.Fatalf("got seq %d (%d bytes) and seq %d %q, want the frame in pieces whole, then \"two\"", ups[0].Seq, len(ups[0].Body), ups[1].Seq, ups[1].Body)
	}
}

// gateway.read_timeout bounds how long a frame may take to complete: a device that stops mid-frame
// is closed then, and one whose frames keep completing is not, however long it streams.
func TestAFrameThatDoesNotCompleteClosesTheConnection(t *testing.T) {
	const timeout = 400 * time.Millisecond
	h := gatewaytest.New(t, gatewaytest.Options{Configure: func(c *gateway.Config) { c.ReadTimeout = timeout }})
	steady := h.Login("a", "steady")
	// Each frame completes within the timeout, while some frame is always under way for longer.
	var stream []byte
	for seq := uint64(1); seq <= 4; seq++ {
		stream = protocol.AppendFrame(stream, protocol.SigUplink, 0, seq, bytes.Repeat([]byte{byte(seq)}, 60))
	}
	step := len(stream)/7 + 1 // not at frame boundaries: some bytes stay carried between writes
	for i := 0; i < len(stream); i += step {
		steady.WriteRaw(stream[i:min(i+step, len(stream))])
		time.Sleep(timeout / 3)
	}
	poll.Until(t, "the streamed uplinks", func() bool { return len(h.State.Received(steady.ID, protocol.SigUplink)) == 4 })

	stalled := h.Login("a", "stalled")
	stalled.WriteRaw(protocol.AppendFrame(nil, protocol.SigUplink, 0, 1, []byte("never finished"))[:protocol.HeaderLen+4])
	stalled.ExpectClosed()
	steady.Send(protocol.SigUplink, 0, 5, []byte("still here"))
	poll.Until(t, "the steady device's next uplink", func() bool { return len(h.State.Received(steady.ID, protocol.SigUplink)) == 5 })
}

// Devices stopped mid-frame hold no goroutine: a read that waited for the rest held one each (a
// netpoll task), up to gateway.read_timeout, so a peer could pin a goroutine per connection it
// opened by sending half a header on each.
func TestDevicesStoppedMidFrameHoldNoGoroutine(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	const n = 100
	devs := make([]*gatewaytest.Device, n)
	for i := range devs {
		devs[i] = h.Login("a", fmt.Sprintf("half-%d", i))
	}
	// netpoll's runner keeps up to taskrun.MaxIdle workers waiting between tasks: they are not held.
	held := func() int { return runtime.NumGoroutine() - gateway.NetpollIdleWorkers() }
	before := held()
	for _, d := range devs {
		d.WriteRaw(protocol.AppendFrame(nil, protocol.SigUplink, 0, 1, []byte("half"))[:protocol.HeaderLen-2])
	}
	// The reads happen on their own time, and a worker still finishing one counts: wait for the
	// count to settle. A read that waited would hold its goroutine for the read timeout (30 s),
	// longer than the poll.
	quick := h.Login("a", "quick")
	quick.Send(protocol.SigUplink, 0, 1, []byte("after"))
	poll.Until(t, "an uplink sent after the halves", func() bool { return len(h.State.Received(quick.ID, protocol.SigUplink)) == 1 })
	poll.Within(t, 10*time.Second, "no goroutine held by a device stopped mid-frame", func() bool {
		return held()-before <= n/2
	})
	for _, d := range devs {
		d.WriteRaw(protocol.AppendFrame(nil, protocol.SigUplink, 0, 1, []byte("half"))[protocol.HeaderLen-2:])
	}
	poll.Until(t, "every completed frame", func() bool {
		return h.State.Count(func(ev *fleet.UpEvent) bool { return string(ev.Body) == "half" }) == n
	})
}
