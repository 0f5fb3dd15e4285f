package gatewaytest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// Device is a raw protocol client on a real socket, so a test sees exactly the frames the gateway
// writes and may send what no well-behaved client would. Its methods fail the test when the
// socket does not do what they need within poll.Timeout; call them from the test's goroutine.
type Device struct {
	// ID is the connection ID the gateway gave the device, learned from its Login; 0 for a device
	// from Dial, which has sent nothing.
	ID uint64
	// App and DID are what the device logged in as; empty for a device from Dial.
	App, DID string

	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

// name says which device a failure is about.
func (d *Device) name() string {
	if d.DID == "" {
		return "device " + d.nc.LocalAddr().String()
	}
	return d.DID
}

// Send writes one frame.
func (d *Device) Send(sig protocol.Signal, flags uint16, seq uint64, body []byte) {
	d.t.Helper()
	d.WriteRaw(protocol.AppendFrame(nil, sig, flags, seq, body))
}

// WriteRaw writes b as it is: part of a frame, several frames, or bytes that are none.
func (d *Device) WriteRaw(b []byte) {
	d.t.Helper()
	_ = d.nc.SetWriteDeadline(time.Now().Add(poll.Timeout))
	if _, err := d.nc.Write(b); err != nil {
		d.t.Fatalf("%s: writing %d bytes: %v", d.name(), len(b), err)
	}
}

// Read reads the next frame.
func (d *Device) Read() protocol.Frame {
	d.t.Helper()
	_ = d.nc.SetReadDeadline(time.Now().Add(poll.Timeout))
	f, _, err := protocol.ReadFrame(d.br, protocol.HardMaxBody, nil)
	if err != nil {
		d.t.Fatalf("%s: reading a frame: %v", d.name(), err)
	}
	return f
}

// ReadFull reads exactly len(p) bytes (whole frames, when the test knows their size) into p,
// allocating nothing: for a test that counts allocations.
func (d *Device) ReadFull(p []byte) {
	d.t.Helper()
	_ = d.nc.SetReadDeadline(time.Now().Add(poll.Timeout))
	if _, err := io.ReadFull(d.br, p); err != nil {
		d.t.Fatalf("%s: reading %d bytes: %v", d.name(), len(p), err)
	}
}

// ReadBroadcast reads the next frame, which must be a broadcast Downlink whose seq is its msg ID,
// and returns it with its decoded body.
func (d *Device) ReadBroadcast() (protocol.Frame, protocol.Downlink) {
	d.t.Helper()
	f := d.Read()
	var dl protocol.Downlink
	if f.Signal != protocol.SigDownlink || f.Flags != protocol.FlagBroadcast {
		d.t.Fatalf("%s: got %v, want a broadcast Downlink", d.name(), f)
	}
	if err := dl.Decode(f.Body); err != nil {
		d.t.Fatalf("%s: decoding the Downlink: %v", d.name(), err)
	}
	if f.Seq != dl.MsgID {
		d.t.Fatalf("%s: broadcast seq %d, msg_id %d: want equal", d.name(), f.Seq, dl.MsgID)
	}
	return f, dl
}

// ExpectClosed reads, discarding frames, until the gateway closes the socket.
func (d *Device) ExpectClosed() {
	d.t.Helper()
	_ = d.nc.SetReadDeadline(time.Now().Add(poll.Timeout))
	for {
		_, _, err := protocol.ReadFrame(d.br, protocol.HardMaxBody, nil)
		if err == nil {
			continue
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			d.t.Fatalf("%s: still open after %v", d.name(), poll.Timeout)
		}
		return
	}
}

// Close hangs up without a Close frame, as a device that lost its network does.
func (d *Device) Close() { _ = d.nc.Close() }

// LocalAddr is the device's end of the socket: the remote address the gateway reports for it.
func (d *Device) LocalAddr() string { return d.nc.LocalAddr().String() }
