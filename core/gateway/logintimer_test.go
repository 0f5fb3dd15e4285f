package gateway_test

import (
	"testing"
	"time"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/core/gateway/gatewaytest"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// TestLoginTimerOnlyWhileNotLoggedIn: a connection keeps its login timer only while it has no
// Login or Resume forwarded. A logged-in one outlives the login timeout (its timer is gone, not
// merely late); one whose Resume the state server refuses waits for a Login again, and is closed
// with 1206 when none comes within the timeout.
func TestLoginTimerOnlyWhileNotLoggedIn(t *testing.T) {
	const timeout = time.Second
	h := gatewaytest.New(t, gatewaytest.Options{Configure: func(c *gateway.Config) { c.LoginTimeout = timeout }})

	in := h.Login("demo", "stays")
	time.Sleep(3 * timeout) // well past the login timeout, which must not fire now
	in.Send(protocol.SigUplink, 0, 2, []byte("still here"))
	poll.Until(t, "the uplink of the device logged in for 3 login timeouts", func() bool {
		return len(h.State.Received(in.ID, protocol.SigUplink)) == 1
	})

	tok, _ := h.Tokens.Issue("demo", "again", "u-again", time.Now(), time.Time{})
	d := h.Dial()
	d.Send(protocol.SigResume, 0, 5, (&protocol.Resume{AppID: "demo", DID: "again", Token: tok, PrevConnID: 42}).Append(nil))
	var ev *fleet.UpEvent
	poll.Until(t, "the state server to get the Resume", func() bool {
		for _, e := range h.State.Find(func(e *fleet.UpEvent) bool {
			return protocol.Signal(e.Signal) == protocol.SigResume && e.Did == "again"
		}) {
			ev = e
		}
		return ev != nil
	})
	refused := (&protocol.ResumeAck{Code: protocol.CodeResumeRejected, Message: "nothing kept"}).Append(nil)
	h.Push(&fleet.DownFrame{ConnId: ev.ConnId, Action: fleet.DownAction_RESUME_REFUSED, Signal: int8(protocol.SigResumeAck), Seq: 5, Body: refused})
	if f := d.Read(); f.Signal != protocol.SigResumeAck {
		t.Fatalf("after RESUME_REFUSED the device got %v", f)
	}
	f := d.Read() // poll.Timeout is far longer than the login timeout
	var m protocol.Close
	if f.Signal != protocol.SigClose || m.Decode(f.Body) != nil || m.Code != protocol.CodeLoginTimeout {
		t.Fatalf("no Login after a refused Resume: got %v, want Close 1206", f)
	}
	d.ExpectClosed()
}
