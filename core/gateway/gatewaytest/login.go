package gatewaytest

import (
	"bufio"
	"net"
	"slices"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// Dial opens a socket to the gateway and sends nothing. The socket is closed when the test ends.
func (h *Harness) Dial() *Device {
	h.t.Helper()
	nc, err := net.DialTimeout("tcp", h.Addr(), poll.Timeout)
	if err != nil {
		h.t.Fatalf("dialing the gateway: %v", err)
	}
	h.t.Cleanup(func() { nc.Close() })
	return &Device{t: h.t, nc: nc, br: bufio.NewReader(nc)}
}

// Connect dials the gateway and logs in as app/did (uid "u-"+did) with a valid token, and returns
// once the state server has the Login, which tells the device's ID. The login stays pending, as
// a state server's pipeline would hold it, until Accept.
func (h *Harness) Connect(app, did string) *Device {
	h.t.Helper()
	isLogin := func(ev *fleet.UpEvent) bool {
		return protocol.Signal(ev.Signal) == protocol.SigLogin && ev.AppId == app && ev.Did == did
	}
	// A did that logged in before has older Logins on record: the new one is the one not among them.
	var before []int64
	for _, ev := range h.State.Find(isLogin) {
		before = append(before, ev.ConnId)
	}
	d := h.Dial()
	d.App, d.DID = app, did
	tok, _ := h.Tokens.Issue(app, did, "u-"+did, time.Now(), time.Time{})
	d.Send(protocol.SigLogin, 0, 1, (&protocol.Login{AppID: app, DID: did, UID: "u-" + did, Token: tok}).Append(nil))
	poll.Until(h.t, "the state server to see the login of "+did, func() bool {
		for _, ev := range h.State.Find(isLogin) {
			if !slices.Contains(before, ev.ConnId) {
				d.ID = uint64(ev.ConnId)
				return true
			}
		}
		return false
	})
	return d
}

// Accept answers d's pending login as the state server does when its pipeline lets it through
// (LOGIN_OK with a LoginAck), and reads the LoginAck, which must be the device's first frame.
func (h *Harness) Accept(d *Device) {
	h.t.Helper()
	ack := (&protocol.LoginAck{ConnID: d.ID, HeartbeatMs: 30000}).Append(nil)
	if gone := h.Push(&fleet.DownFrame{
		ConnId: int64(d.ID), Action: fleet.DownAction_LOGIN_OK, Signal: int8(protocol.SigLoginAck), Seq: 1, Body: ack,
	}); len(gone) != 0 {
		h.t.Fatalf("LOGIN_OK for %s: gone %v", d.DID, gone)
	}
	if f := d.Read(); f.Signal != protocol.SigLoginAck {
		h.t.Fatalf("%s: first frame %v, want LoginAck", d.DID, f)
	}
}

// Login connects a device and accepts its login: Connect, then Accept.
func (h *Harness) Login(app, did string) *Device {
	h.t.Helper()
	d := h.Connect(app, did)
	h.Accept(d)
	return d
}
