package statetest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/protocol"
)

// Device is one connection on the fake gateway. Its methods send what a device sent, as the
// gateway forwards it (one Deliver call each, with the gateway's proof), and wait for the frames
// the state server pushes back. The Next methods consume what they return, so waiting twice for
// an answer with the same seq gets the two answers in order. Safe for use by one goroutine at a
// time.
type Device struct {
	// ConnID, AppID, DID and UID are set by Gateway.Connect.
	ConnID     uint64
	AppID, DID string
	UID        string
	// Token and Platform go in the Login; Plato checks the token only in an auth stage. Empty by
	// default.
	Token, Platform string

	g     *Gateway
	mu    sync.Mutex
	taken map[int]bool // indexes into g.frames already returned by Next
}

// RemoteAddr is the address the gateway reports for the device.
func (d *Device) RemoteAddr() string { return fmt.Sprintf("192.0.2.1:%d", 10000+d.ConnID%50000) }

// Login sends the device's Login (seq 1) and returns the state server's LoginAck, accepted
// (Code 0) or not.
func (d *Device) Login(t testing.TB) protocol.LoginAck {
	t.Helper()
	body := (&protocol.Login{AppID: d.AppID, DID: d.DID, UID: d.UID, Token: d.Token, Platform: d.Platform}).Append(nil)
	d.g.deliver(t, &fleet.UpEvent{
		ConnId: int64(d.ConnID), Signal: int8(protocol.SigLogin), Seq: 1, Body: body,
		AppId: d.AppID, Did: d.DID, Uid: d.UID, RemoteAddr: d.RemoteAddr(),
	})
	var ack protocol.LoginAck
	d.decode(t, d.nextAnswer(t, protocol.SigLoginAck, 1), ack.Decode)
	return ack
}

// Uplink sends a message with seq and returns its UplinkAck: code 0 once the business server
// has it, its refusal, or Plato's code.
func (d *Device) Uplink(t testing.TB, seq uint64, payload []byte) protocol.Ack {
	t.Helper()
	d.Send(t, protocol.SigUplink, 0, seq, payload)
	var ack protocol.Ack
	d.decode(t, d.nextAnswer(t, protocol.SigUplinkAck, seq), ack.Decode)
	return ack
}

// Heartbeat sends a Heartbeat and waits for its HeartbeatAck.
func (d *Device) Heartbeat(t testing.TB, seq uint64) {
	t.Helper()
	d.Send(t, protocol.SigHeartbeat, 0, seq, nil)
	d.nextAnswer(t, protocol.SigHeartbeatAck, seq)
}

// AckDownlink sends the DownlinkAck of the downlink with seq; nothing is answered.
func (d *Device) AckDownlink(t testing.TB, seq uint64) {
	t.Helper()
	d.Send(t, protocol.SigDownlinkAck, 0, seq, nil)
}

// Send forwards any frame of the device, and waits for nothing.
func (d *Device) Send(t testing.TB, sig protocol.Signal, flags uint16, seq uint64, body []byte) {
	t.Helper()
	d.g.deliver(t, &fleet.UpEvent{ConnId: int64(d.ConnID), Signal: int8(sig), Flags: int16(flags), Seq: int64(seq), Body: body})
}

// Close tells the state server the connection closed for reason (1209 when the device left), as
// the gateway's close callback does. The gateway no longer holds it.
func (d *Device) Close(t testing.TB, reason protocol.Code) {
	t.Helper()
	d.g.Forget(d.ConnID)
	d.g.deliver(t, &fleet.UpEvent{ConnId: int64(d.ConnID), Kind: fleet.UpKind_CLOSED, Reason: int32(reason)})
}

// Frames returns every frame pushed to the device so far, consumed or not, in order.
func (d *Device) Frames() []Frame {
	var out []Frame
	for _, f := range d.g.Frames() {
		if f.ConnID == d.ConnID {
			out = append(out, f)
		}
	}
	return out
}

// Next waits for the first frame to the device that match accepts and no Next returned yet,
// and consumes it; what names it in the failure message.
func (d *Device) Next(t testing.TB, what string, match func(Frame) bool) Frame {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.taken == nil {
		d.taken = map[int]bool{}
	}
	idx := -1
	f := d.g.waitFrame(t, fmt.Sprintf("%s to %s (conn %d)", what, d.DID, d.ConnID), func(frames []Frame) (Frame, bool) {
		for i, f := range frames {
			if f.ConnID == d.ConnID && !d.taken[i] && match(f) {
				idx = i
				return f, true
			}
		}
		return Frame{}, false
	})
	d.taken[idx] = true
	return f
}

// NextDownlink waits for the next Downlink to the device (direct, retransmitted or broadcast)
// and returns it with its decoded body.
func (d *Device) NextDownlink(t testing.TB) (Frame, protocol.Downlink) {
	t.Helper()
	f := d.Next(t, "a Downlink", func(f Frame) bool { return f.Signal == protocol.SigDownlink })
	var dl protocol.Downlink
	d.decode(t, f, dl.Decode)
	return f, dl
}

// NextClose waits for the Close frame the state server sends when it closes the connection
// (kicked, replaced, heartbeat timeout...) and returns its body.
func (d *Device) NextClose(t testing.TB) protocol.Close {
	t.Helper()
	f := d.Next(t, "a Close", func(f Frame) bool { return f.Signal == protocol.SigClose })
	if !f.Closes {
		t.Errorf("statetest: the Close frame to %s does not close the connection", d.DID)
	}
	var c protocol.Close
	d.decode(t, f, c.Decode)
	return c
}

func (d *Device) nextAnswer(t testing.TB, sig protocol.Signal, seq uint64) Frame {
	t.Helper()
	return d.Next(t, fmt.Sprintf("%s %d", sig, seq), func(f Frame) bool { return f.Signal == sig && f.Seq == seq })
}

func (d *Device) decode(t testing.TB, f Frame, decode func([]byte) error) {
	t.Helper()
	if err := decode(f.Body); err != nil {
		t.Fatalf("statetest: decoding the %s to %s: %v", f.Signal, d.DID, err)
	}
}
