package gateway_test

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/core/gateway/gatewaytest"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

// loginAck sends a Login on d and returns the gateway's answer.
func loginAck(t *testing.T, d *gatewaytest.Device, m protocol.Login) protocol.LoginAck {
	t.Helper()
	d.Send(protocol.SigLogin, 0, 1, m.Append(nil))
	f := d.Read()
	var ack protocol.LoginAck
	if f.Signal != protocol.SigLoginAck || ack.Decode(f.Body) != nil {
		t.Fatalf("answer to a Login: %v", f)
	}
	return ack
}

// TestLoginIdentityComesFromTheToken: a Login is attributed to the uid its token binds; one that
// names another did or uid, or an app not served, is refused and closed.
func TestLoginIdentityComesFromTheToken(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	tok, _ := h.Tokens.Issue("demo", "alice", "u-alice", time.Now(), time.Time{})
	for _, tc := range []struct {
		name string
		m    protocol.Login
		want protocol.Code
	}{
		{"another did", protocol.Login{AppID: "demo", DID: "bob", Token: tok}, protocol.CodeTokenMismatch},
		{"another uid", protocol.Login{AppID: "demo", DID: "alice", UID: "u-bob", Token: tok}, protocol.CodeTokenMismatch},
		{"another app", protocol.Login{AppID: "a", DID: "alice", Token: tok}, protocol.CodeTokenMismatch},
		{"an app not served", protocol.Login{AppID: "ghost", DID: "alice", Token: tok}, protocol.CodeUnknownApp},
		{"a version 1 token", protocol.Login{AppID: "demo", DID: "alice", Token: "v1.eyJhIjoiZGVtbyJ9.AAAA"}, protocol.CodeTokenInvalid},
	} {
		d := h.Dial()
		if ack := loginAck(t, d, tc.m); ack.Code != tc.want {
			t.Errorf("%s: LoginAck %d (%s), want %d", tc.name, ack.Code, ack.Message, tc.want)
		}
		d.ExpectClosed()
	}
	// Without a uid in the Login, and with the token's: both are the token's uid at the state server.
	for _, uid := range []string{"", "u-alice"} {
		d := h.Dial()
		d.Send(protocol.SigLogin, 0, 1, (&protocol.Login{AppID: "demo", DID: "alice", UID: uid, Token: tok}).Append(nil))
		poll.Until(t, "the login to reach the state server", func() bool {
			for _, ev := range h.State.Find(nil) {
				if protocol.Signal(ev.Signal) == protocol.SigLogin && ev.Did == "alice" && ev.Uid == "u-alice" && ev.RemoteAddr == d.LocalAddr() {
					return true
				}
			}
			return false
		})
		d.Close()
	}
}

// TestForgedTokensLeaveNothingBehind sends 10,000 Logins with forged tokens: each is refused with
// 1101 and closed, and no connection, goroutine or memory stays behind.
func TestForgedTokensLeaveNothingBehind(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	forger, _ := token.NewSigner([]byte("not-the-fleet-secret-0123456789"), time.Hour)
	before := runtime.NumGoroutine() - gateway.NetpollIdleWorkers() - gateway.IdleWriters(h.Gateway)
	const n, parallel = 10000, 8
	var wg sync.WaitGroup
	errs := make(chan error, parallel)
	for w := range parallel {
		wg.Go(func() {
			for i := w; i < n; i += parallel {
				if err := forge(h.Addr(), forger, fmt.Sprintf("d-%d", i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	poll.Until(t, "every forged connection to be gone", func() bool { return h.Gateway.Stats().Conns == 0 })
	if refused := h.Gateway.Stats().LoginsRefused; refused < n {
		t.Errorf("logins refused: %d, want %d", refused, n)
	}
	poll.Until(t, "goroutines to settle", func() bool {
		return runtime.NumGoroutine()-gateway.NetpollIdleWorkers()-gateway.IdleWriters(h.Gateway) <= before+10
	})
	if got := h.State.Find(nil); len(got) != 0 {
		t.Errorf("the state server heard of %d forged logins", len(got))
	}
	// A real device is served as ever.
	h.Login("demo", "alice")
}

// forge logs in with a token of the wrong secret and checks the answer: LoginAck 1101, then EOF.
func forge(addr string, forger *token.Signer, did string) error {
	nc, err := net.DialTimeout("tcp", addr, poll.Timeout)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(poll.Timeout))
	tok, _ := forger.Issue("demo", did, "u", time.Now(), time.Time{})
	if _, err := nc.Write(protocol.AppendFrame(nil, protocol.SigLogin, 0, 1, (&protocol.Login{AppID: "demo", DID: did, Token: tok}).Append(nil))); err != nil {
		return err
	}
	br := bufio.NewReader(nc)
	f, _, err := protocol.ReadFrame(br, protocol.HardMaxBody, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", did, err)
	}
	var ack protocol.LoginAck
	if f.Signal != protocol.SigLoginAck || ack.Decode(f.Body) != nil || ack.Code != protocol.CodeTokenInvalid {
		return fmt.Errorf("%s: answer %v (%+v), want LoginAck 1101", did, f, ack)
	}
	if _, _, err := protocol.ReadFrame(br, protocol.HardMaxBody, nil); err == nil {
		return fmt.Errorf("%s: a frame after the refusal", did)
	}
	return nil
}

// TestResumeChecksTheTokenFirst: a Resume with a forged, expired or foreign token is refused as
// such and closed, never answered as one that could resume; a malformed one is closed with 1005.
func TestResumeChecksTheTokenFirst(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	forger, _ := token.NewSigner([]byte("not-the-fleet-secret-0123456789"), time.Hour)
	good, _ := h.Tokens.Issue("demo", "alice", "u-alice", time.Now(), time.Time{})
	forged, _ := forger.Issue("demo", "alice", "u-alice", time.Now(), time.Time{})
	expired, _ := h.Tokens.Issue("demo", "alice", "u-alice", time.Now().Add(-2*time.Hour), time.Time{})
	resume := func(d *gatewaytest.Device, m protocol.Resume) protocol.ResumeAck {
		t.Helper()
		d.Send(protocol.SigResume, 0, 3, m.Append(nil))
		f := d.Read()
		var ack protocol.ResumeAck
		if f.Signal != protocol.SigResumeAck || ack.Decode(f.Body) != nil {
			t.Fatalf("answer to a Resume: %v", f)
		}
		return ack
	}
	for _, tc := range []struct {
		name string
		m    protocol.Resume
		want protocol.Code
	}{
		{"forged", protocol.Resume{AppID: "demo", DID: "alice", Token: forged, PrevConnID: 1}, protocol.CodeTokenInvalid},
		{"expired", protocol.Resume{AppID: "demo", DID: "alice", Token: expired, PrevConnID: 1}, protocol.CodeTokenExpired},
		{"another did's", protocol.Resume{AppID: "demo", DID: "bob", Token: good, PrevConnID: 1}, protocol.CodeTokenMismatch},
		{"another uid", protocol.Resume{AppID: "demo", DID: "alice", UID: "u-bob", Token: good, PrevConnID: 1}, protocol.CodeTokenMismatch},
		{"an app not served", protocol.Resume{AppID: "ghost", DID: "alice", Token: good, PrevConnID: 1}, protocol.CodeUnknownApp},
	} {
		d := h.Dial()
		if ack := resume(d, tc.m); ack.Code != tc.want {
			t.Errorf("%s: ResumeAck %d (%s), want %d", tc.name, ack.Code, ack.Message, tc.want)
		}
		d.ExpectClosed()
	}
	// A malformed body: closed with 1005, like every other.
	d := h.Dial()
	d.Send(protocol.SigResume, 0, 3, []byte{0xff})
	f := d.Read()
	var cl protocol.Close
	if f.Signal != protocol.SigClose || cl.Decode(f.Body) != nil || cl.Code != protocol.CodeMalformed {
		t.Fatalf("malformed Resume: %v", f)
	}
	d.ExpectClosed()
}

// TestResumeGoesToTheStateServer: a Resume with a good token reaches the did's state server with
// the token's uid; the state server's 1208 leaves the socket open for a Login, its 0 logs it in.
func TestResumeGoesToTheStateServer(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	tok, _ := h.Tokens.Issue("demo", "alice", "u-alice", time.Now(), time.Time{})
	isResume := func(ev *fleet.UpEvent) bool { return protocol.Signal(ev.Signal) == protocol.SigResume }
	resumeOn := func(d *gatewaytest.Device) *fleet.UpEvent {
		t.Helper()
		before := len(h.State.Find(isResume))
		d.Send(protocol.SigResume, 0, 5, (&protocol.Resume{AppID: "demo", DID: "alice", Token: tok, PrevConnID: 42, LastDownlink: 7}).Append(nil))
		var ev *fleet.UpEvent
		poll.Until(t, "the state server to get the Resume", func() bool {
			all := h.State.Find(isResume)
			if len(all) > before {
				ev = all[len(all)-1]
			}
			return ev != nil
		})
		return ev
	}

	d := h.Dial()
	ev := resumeOn(d)
	var m protocol.Resume
	if err := m.Decode(ev.Body); err != nil || m.PrevConnID != 42 || m.LastDownlink != 7 || ev.Uid != "u-alice" || ev.Did != "alice" || ev.AppId != "demo" {
		t.Fatalf("forwarded Resume %+v (%+v, %v): want the body as sent, and the token's uid", ev, m, err)
	}
	refused := (&protocol.ResumeAck{Code: protocol.CodeResumeRejected, Message: "nothing kept"}).Append(nil)
	h.Push(&fleet.DownFrame{ConnId: ev.ConnId, Action: fleet.DownAction_RESUME_REFUSED, Signal: int8(protocol.SigResumeAck), Seq: 5, Body: refused})
	f := d.Read()
	var ack protocol.ResumeAck
	if f.Signal != protocol.SigResumeAck || ack.Decode(f.Body) != nil || ack.Code != protocol.CodeResumeRejected || f.Seq != 5 {
		t.Fatalf("after RESUME_REFUSED the device got %v", f)
	}
	// The socket is open and waits for a Login, which goes to the state server as usual.
	d.Send(protocol.SigLogin, 0, 6, (&protocol.Login{AppID: "demo", DID: "alice", Token: tok}).Append(nil))
	poll.Until(t, "the Login after the refused Resume", func() bool { return len(h.State.Received(uint64(ev.ConnId), protocol.SigLogin)) == 1 })

	// A Resume the state server accepts logs the connection in: its uplinks go through.
	d2 := h.Dial()
	ev = resumeOn(d2)
	ok := (&protocol.ResumeAck{ConnID: uint64(ev.ConnId), HeartbeatMs: 30000}).Append(nil)
	h.Push(&fleet.DownFrame{ConnId: ev.ConnId, Action: fleet.DownAction_LOGIN_OK, Signal: int8(protocol.SigResumeAck), Seq: 5, Body: ok, Did: "alice"})
	if f := d2.Read(); f.Signal != protocol.SigResumeAck || ack.Decode(f.Body) != nil || ack.Code != 0 {
		t.Fatalf("after LOGIN_OK the device got %v", f)
	}
	d2.Send(protocol.SigUplink, 0, 9, []byte("hi"))
	poll.Until(t, "the uplink after the Resume", func() bool { return len(h.State.Received(uint64(ev.ConnId), protocol.SigUplink)) == 1 })
	// A socket that breaks without a Close is reported lost (1211), which the state server keeps.
	d2.Close()
	poll.Until(t, "the CLOSED event", func() bool {
		return len(h.State.Find(func(e *fleet.UpEvent) bool {
			return e.ConnId == ev.ConnId && e.Kind == fleet.UpKind_CLOSED && e.Reason == int32(protocol.CodeConnectionLost)
		})) == 1
	})
}
