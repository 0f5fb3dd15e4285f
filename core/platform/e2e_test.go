package platform_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

// startAll runs every role but the demo in-process, with a recording business server.
func startAll(t *testing.T, mutate func(*config.Config)) (*platform.Platform, *platformtest.Business) {
	t.Helper()
	biz := platformtest.StartBusiness(t)
	cfg := platformtest.Config(t)
	platformtest.SetBusiness(&cfg, biz.Addr)
	if mutate != nil {
		mutate(&cfg)
	}
	p := platformtest.Start(t, cfg, platform.RoleNATS, platform.RoleState, platform.RoleGateway, platform.RoleIPConf)
	// ipconf hands out the gateway once its first load report arrives.
	poll.Within(t, 10*time.Second, "ipconf to list the gateway", func() bool {
		l, err := client.FetchEndpoints(context.Background(), nil, "http://"+p.IPConf.Addr(), "demo", "probe", platformtest.Credential(t, "demo", "probe", "probe"))
		return err == nil && len(l.Endpoints) > 0
	})
	return p, biz
}

func dial(t *testing.T, p *platform.Platform, did string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{IPConfURL: "http://" + p.IPConf.Addr(), AppID: "demo", DID: did, UID: "u-" + did,
		Credential: platformtest.Credential(t, "demo", did, "u-"+did), DialTimeout: 10 * time.Second, LoginTimeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("dial %s: %v", did, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestEndToEnd(t *testing.T) {
	p, biz := startAll(t, nil)
	alice := dial(t, p, "alice")
	bob := dial(t, p, "bob")
	if alice.ConnID() == 0 || alice.ConnID() == bob.ConnID() {
		t.Fatalf("connection IDs: alice %d, bob %d", alice.ConnID(), bob.ConnID())
	}
	if alice.Endpoint() != p.Gateway.Addr() {
		t.Fatalf("alice connected to %s, the gateway is %s", alice.Endpoint(), p.Gateway.Addr())
	}
	connected := biz.WaitEvents(t, api.EventKind_CONNECTED, "alice", 1)
	if ev := connected[0]; ev.AppId != "demo" || ev.Uid != "u-alice" || ev.ConnId != int64(alice.ConnID()) {
		t.Fatalf("CONNECTED event: %+v", ev)
	}

	t.Run("uplink is delivered and ACKed after the business accepts", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := range 20 {
			if err := alice.Send(ctx, fmt.Appendf(nil, "hello %d", i)); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		ups := biz.Events(api.EventKind_UPLINK, "alice")
		if len(ups) != 20 {
			t.Fatalf("business got %d uplinks before the 20 ACKs, want 20", len(ups))
		}
		for i, ev := range ups {
			if want := fmt.Sprintf("hello %d", i); string(ev.Payload) != want {
				t.Fatalf("uplink %d: %q, want %q (order kept)", i, ev.Payload, want)
			}
			if i > 0 && ev.Seq <= ups[i-1].Seq {
				t.Fatalf("uplink seqs not increasing: %d then %d", ups[i-1].Seq, ev.Seq)
			}
		}
	})

	t.Run("a business refusal reaches the device as the uplink ACK code", func(t *testing.T) {
		biz.SetAnswer(func(ev *api.Event) *api.Result_ {
			if bytes.Equal(ev.Payload, []byte("refuse me")) {
				return &api.Result_{Code: 2042, Message: "not today"}
			}
			return nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := alice.Send(ctx, []byte("refuse me"))
		if code, _ := protocol.CodeOf(err); code != 2042 {
			t.Fatalf("send: %v, want code 2042", err)
		}
	})

	t.Run("downlink is pushed and ACKed", func(t *testing.T) {
		sc := platformtest.StateClient(t, p.State.Addr())
		resp, err := sc.Push(context.Background(), &api.PushRequest{Caller: platformtest.Caller("demo"), Dids: []string{"bob", "nobody"}, Payload: []byte("hi bob"), WaitAck: true, TimeoutMs: 5000})
		if err != nil {
			t.Fatalf("push: %v", err)
		}
		if got := resp.Targets[0]; got.Status != api.PushStatus_ACKED || got.ConnId != int64(bob.ConnID()) || got.Seq != 1 {
			t.Fatalf("bob's target: %+v, want ACKED on conn %d seq 1", got, bob.ConnID())
		}
		if got := resp.Targets[1]; got.Status != api.PushStatus_OFFLINE {
			t.Fatalf("nobody's target: %+v, want OFFLINE", got)
		}
		select {
		case m := <-bob.Messages():
			if string(m.Payload) != "hi bob" || m.MsgID != uint64(resp.MsgId) || m.Seq != 1 {
				t.Fatalf("bob got %+v", m)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("bob got nothing")
		}
		_, err = sc.Push(context.Background(), &api.PushRequest{Caller: &api.Caller{}, Dids: []string{"bob"}})
		var se *api.PlatoError
		if !errors.As(err, &se) || se.Code != int32(protocol.CodeInvalidArgument) {
			t.Fatalf("push without app_id: %v, want PlatoError %d", err, protocol.CodeInvalidArgument)
		}
	})

	t.Run("a second login of the same did replaces the first", func(t *testing.T) {
		old := dial(t, p, "carol")
		dial(t, p, "carol")
		select {
		case <-old.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the older connection was not closed")
		}
		if code, _ := protocol.CodeOf(old.Err()); code != protocol.CodeReplaced {
			t.Fatalf("older connection ended with %v, want code %d", old.Err(), protocol.CodeReplaced)
		}
	})

	t.Run("closing reports DISCONNECTED to the business", func(t *testing.T) {
		d := dial(t, p, "dave")
		d.Close()
		evs := biz.WaitEvents(t, api.EventKind_DISCONNECTED, "dave", 1)
		if evs[0].Reason != int32(protocol.CodeClientClose) {
			t.Fatalf("DISCONNECTED reason %d, want %d", evs[0].Reason, protocol.CodeClientClose)
		}
	})
}

func TestTokensAreChecked(t *testing.T) {
	p, _ := startAll(t, nil)
	signer := mustSigner(t, platformtest.Secret)
	forged, _ := mustSigner(t, "another-secret-0123456789").Issue("demo", "eve", "u-eve", time.Now(), time.Time{})
	expired, _ := signer.Issue("demo", "eve", "u-eve", time.Now().Add(-2*time.Hour), time.Time{})
	foreign, _ := signer.Issue("demo", "mallory", "u-mallory", time.Now(), time.Time{})
	otherApp, _ := signer.Issue("other", "eve", "u-eve", time.Now(), time.Time{})
	for _, tc := range []struct {
		name, tok string
		want      protocol.Code
	}{
		{"garbage", "not-a-token", protocol.CodeTokenInvalid},
		{"forged", forged, protocol.CodeTokenInvalid},
		{"expired", expired, protocol.CodeTokenExpired},
		{"another did's", foreign, protocol.CodeTokenMismatch},
		{"another app's", otherApp, protocol.CodeTokenMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := client.Dial(ctx, client.Config{Endpoints: []string{p.Gateway.Addr()}, Token: tc.tok, AppID: "demo", DID: "eve"})
			if code, _ := protocol.CodeOf(err); code != tc.want {
				t.Fatalf("dial: %v, want code %d", err, tc.want)
			}
		})
	}
}

func mustSigner(t *testing.T, secret string) *token.Signer {
	t.Helper()
	s, err := token.NewSigner([]byte(secret), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawConn speaks the wire protocol by hand, to send what a well-behaved client never would.
type rawConn struct {
	t *testing.T
	net.Conn
}

func rawDial(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t, c}
}

func (c *rawConn) send(sig protocol.Signal, seq uint64, body []byte) {
	c.t.Helper()
	if _, err := c.Write(protocol.AppendFrame(nil, sig, 0, seq, body)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next reads one frame, skipping heartbeat ACKs.
func (c *rawConn) next() protocol.Frame {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	f, _, err := protocol.ReadFrame(c, protocol.HardMaxBody, nil)
	if err != nil {
		c.t.Fatalf("reading a frame: %v", err)
	}
	return f
}

// expectClose reads a Close with code, then EOF.
func (c *rawConn) expectClose(code protocol.Code) {
	c.t.Helper()
	f := c.next()
	if f.Signal != protocol.SigClose {
		c.t.Fatalf("got %s, want Close %d", f, code)
	}
	var m protocol.Close
	if err := m.Decode(f.Body); err != nil || m.Code != code {
		c.t.Fatalf("Close %+v (%v), want code %d", m, err, code)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		c.t.Fatalf("after Close: %v, want EOF", err)
	}
}

func (c *rawConn) login(signer *token.Signer, did string) protocol.LoginAck {
	c.t.Helper()
	tok, _ := signer.Issue("demo", did, did, time.Now(), time.Time{})
	c.send(protocol.SigLogin, 1, (&protocol.Login{AppID: "demo", DID: did, UID: did, Token: tok}).Append(nil))
	f := c.next()
	var ack protocol.LoginAck
	if f.Signal != protocol.SigLoginAck || ack.Decode(f.Body) != nil || f.Seq != 1 {
		c.t.Fatalf("login answer: %s %q", f, f.Body)
	}
	return ack
}

func TestMalformedInputIsClosedWithAReason(t *testing.T) {
	p, _ := startAll(t, func(c *config.Config) {
		c.Gateway.MaxBody = 1024
		c.Gateway.LoginTimeout = time.Second
		c.State.HeartbeatInterval = 500 * time.Millisecond
		c.State.HeartbeatTimeout = 2 * time.Second
	})
	signer := mustSigner(t, platformtest.Secret)
	addr := p.Gateway.Addr()

	t.Run("bad magic", func(t *testing.T) {
		c := rawDial(t, addr)
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		c.expectClose(protocol.CodeBadMagic)
	})
	t.Run("oversize length, body never sent", func(t *testing.T) {
		c := rawDial(t, addr)
		hdr := make([]byte, protocol.HeaderLen)
		protocol.PutHeader(hdr, protocol.Header{Signal: protocol.SigUplink, Seq: 1, Length: 1 << 30})
		c.Write(hdr)
		c.expectClose(protocol.CodeFrameTooLarge)
	})
	t.Run("unknown signal", func(t *testing.T) {
		c := rawDial(t, addr)
		hdr := make([]byte, protocol.HeaderLen)
		protocol.PutHeader(hdr, protocol.Header{Signal: 0x7f, Seq: 1})
		c.Write(hdr)
		c.expectClose(protocol.CodeUnknownSignal)
	})
	t.Run("bad version", func(t *testing.T) {
		c := rawDial(t, addr)
		hdr := make([]byte, protocol.HeaderLen)
		protocol.PutHeader(hdr, protocol.Header{Signal: protocol.SigHeartbeat, Seq: 1})
		hdr[2] = 9
		c.Write(hdr)
		c.expectClose(protocol.CodeBadVersion)
	})
	t.Run("uplink before login", func(t *testing.T) {
		c := rawDial(t, addr)
		c.send(protocol.SigUplink, 1, []byte("x"))
		c.expectClose(protocol.CodeNotLoggedIn)
	})
	t.Run("server signal from a device", func(t *testing.T) {
		c := rawDial(t, addr)
		c.send(protocol.SigDownlink, 1, make([]byte, 8))
		c.expectClose(protocol.CodeBadDirection)
	})
	t.Run("truncated login body", func(t *testing.T) {
		c := rawDial(t, addr)
		c.send(protocol.SigLogin, 1, []byte{0, 200, 'x'})
		f := c.next()
		var ack protocol.LoginAck
		if f.Signal != protocol.SigLoginAck || ack.Decode(f.Body) != nil || ack.Code != protocol.CodeMalformed {
			t.Fatalf("got %s %+v, want LoginAck %d", f, ack, protocol.CodeMalformed)
		}
	})
	t.Run("truncated frame then silence closes at the read timeout, not never", func(t *testing.T) {
		c := rawDial(t, addr)
		c.Write([]byte{0x50, 0x4c, 1})
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		// The login timeout (1s) or the read timeout ends it; either way the socket closes.
		buf := make([]byte, 256)
		for {
			if _, err := c.Read(buf); err != nil {
				if errors.Is(err, io.EOF) {
					return
				}
				t.Fatalf("read: %v, want the server to close", err)
			}
		}
	})
	t.Run("no login in time", func(t *testing.T) {
		c := rawDial(t, addr)
		c.expectClose(protocol.CodeLoginTimeout)
	})
	t.Run("second login", func(t *testing.T) {
		c := rawDial(t, addr)
		if ack := c.login(signer, "frank"); ack.Code != protocol.CodeOK {
			t.Fatalf("login: %+v", ack)
		}
		c.send(protocol.SigLogin, 2, (&protocol.Login{AppID: "demo", DID: "frank"}).Append(nil))
		c.expectClose(protocol.CodeAlreadyLogged)
	})
	t.Run("duplicate uplink seq is refused, not redelivered", func(t *testing.T) {
		c := rawDial(t, addr)
		c.login(signer, "gina")
		for _, seq := range []uint64{5, 5} {
			c.send(protocol.SigUplink, seq, []byte("once"))
		}
		var codes []protocol.Code
		for len(codes) < 2 {
			f := c.next()
			if f.Signal != protocol.SigUplinkAck {
				continue
			}
			var a protocol.Ack
			a.Decode(f.Body)
			codes = append(codes, a.Code)
		}
		if codes[0] != protocol.CodeOK || codes[1] != protocol.CodeDuplicate {
			t.Fatalf("ACK codes %v, want [0 %d]", codes, protocol.CodeDuplicate)
		}
	})
	t.Run("heartbeat is answered; silence is closed", func(t *testing.T) {
		c := rawDial(t, addr)
		ack := c.login(signer, "hank")
		if ack.HeartbeatMs != 500 {
			t.Fatalf("heartbeat interval %d ms, want 500", ack.HeartbeatMs)
		}
		c.send(protocol.SigHeartbeat, 7, nil)
		if f := c.next(); f.Signal != protocol.SigHeartbeatAck || f.Seq != 7 {
			t.Fatalf("got %s, want HeartbeatAck seq 7", f)
		}
		c.expectClose(protocol.CodeHeartbeatTimeout)
	})
	t.Run("resume is refused until reconnect support lands, and Login still works", func(t *testing.T) {
		c := rawDial(t, addr)
		tok, _ := signer.Issue("demo", "ivy", "ivy", time.Now(), time.Time{})
		c.send(protocol.SigResume, 3, (&protocol.Resume{AppID: "demo", DID: "ivy", Token: tok, PrevConnID: 1}).Append(nil))
		f := c.next()
		var ra protocol.ResumeAck
		if f.Signal != protocol.SigResumeAck || ra.Decode(f.Body) != nil || ra.Code != protocol.CodeResumeRejected {
			t.Fatalf("got %s %+v", f, ra)
		}
		if ack := c.login(signer, "ivy"); ack.Code != protocol.CodeOK {
			t.Fatalf("login after resume: %+v", ack)
		}
	})
}
