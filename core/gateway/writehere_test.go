package gateway_test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/core/gateway/gatewaytest"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/protocol"
)

// stalledBody is the body of downlink seq: its seq repeated, so a frame cut or written twice shows.
func stalledBody(seq int64) []byte {
	b := make([]byte, 8<<10)
	for i := 0; i < len(b); i += 8 {
		binary.BigEndian.PutUint64(b[i:], uint64(seq))
	}
	return b
}

// A Push writes on its caller's goroutine while the socket takes the frames (writehere.go). A
// device that stops reading must not hold that goroutine: once its socket is full, what it did not
// take goes to a writer, the Push returns, and another device in the same Push gets its frame at
// once. When the stalled device reads again, it gets every frame whole and in order.
func TestAStalledDeviceDoesNotHoldUpThePush(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{Configure: func(c *gateway.Config) {
		// Nothing closes the stalled device during the test: the write waits, as a slow device's
		// would, far longer than the Push may take.
		c.WriteTimeout = 10 * time.Minute
		c.WriteQueue, c.WriteQueueBytes = 1<<20, 1<<30
		c.SlowConsumer.MaxUnsentBytes, c.SlowConsumer.MaxStall = 1<<30, 10*time.Minute
		c.SocketSendBuffer = 4096
	}})
	stalled := h.Login("a", "stalled")
	healthy := h.Login("a", "healthy")

	// 8 KiB frames, one per Push, until one is left to a writer: the device's receive buffer
	// (the kernel's autotuning allows it a few MiB) and the socket's send buffer are full.
	var seq int64
	for !gateway.Flushing(h.Gateway, stalled.ID) {
		if seq == 4096 {
			t.Fatalf("32 MiB pushed to a device that reads nothing and its socket still takes it")
		}
		seq++
		h.Push(&fleet.DownFrame{ConnId: int64(stalled.ID), Signal: int8(protocol.SigDownlink), Seq: seq, Body: stalledBody(seq)})
	}
	// The socket takes nothing more: this Push only queues for the stalled device, and writes to
	// the healthy one before it returns.
	seq++
	h.Push(
		&fleet.DownFrame{ConnId: int64(stalled.ID), Signal: int8(protocol.SigDownlink), Seq: seq, Body: stalledBody(seq)},
		&fleet.DownFrame{ConnId: int64(healthy.ID), Signal: int8(protocol.SigDownlink), Seq: 1, Body: []byte("not held up")},
	)
	if f := healthy.Read(); f.Signal != protocol.SigDownlink || f.Seq != 1 || string(f.Body) != "not held up" {
		t.Fatalf("the healthy device got %v %q", f, f.Body)
	}
	if !gateway.Flushing(h.Gateway, stalled.ID) {
		t.Fatal("the stalled device's writer finished while the device reads nothing")
	}

	for want := int64(1); want <= seq; want++ {
		f := stalled.Read()
		if f.Signal != protocol.SigDownlink || int64(f.Seq) != want || !bytes.Equal(f.Body, stalledBody(want)) {
			t.Fatalf("frame %d of %d: got %v with a body of %d bytes, want downlink %d whole", want, seq, f.Signal, len(f.Body), want)
		}
	}
}
