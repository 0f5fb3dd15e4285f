package gateway_test

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/core/gateway/gatewaytest"
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
	before := runtime.NumGoroutine()
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
	poll.Until(t, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= before+10 })
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
