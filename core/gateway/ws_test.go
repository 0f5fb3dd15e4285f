package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/core/gateway/gatewaytest"
	"github.com/platoim/plato/internal/fanout"
	"github.com/platoim/plato/internal/opsapi"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/internal/wsclient"
	"github.com/platoim/plato/sdk/delivery"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

const wsKey = "dGhlIHNhbXBsZSBub25jZQ=="

// upgradeRequest is a valid handshake for path, with extra header lines.
func upgradeRequest(path string, extra ...string) string {
	lines := append([]string{"GET " + path + " HTTP/1.1", "Host: gw", "Upgrade: websocket", "Connection: Upgrade",
		"Sec-WebSocket-Key: " + wsKey, "Sec-WebSocket-Version: 13"}, extra...)
	return strings.Join(lines, "\r\n") + "\r\n\r\n"
}

// httpAnswer writes req on a new socket to the WebSocket listener and returns the HTTP answer's
// status, after checking the gateway closed the socket behind it.
func httpAnswer(t *testing.T, h *gatewaytest.Harness, req string) int {
	t.Helper()
	nc, err := net.DialTimeout("tcp", h.Gateway.WSAddr(), poll.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(poll.Timeout))
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req[:min(len(req), 40)], err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// A reset is closed too: the gateway closes with the rest of an oversized request unread,
		// and the kernel then resets rather than ends the connection.
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("after answering %d the socket is still open: %v", resp.StatusCode, err)
		}
	}
	return resp.StatusCode
}

func TestWSHandshakeRefusals(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	before := runtime.NumGoroutine() - gateway.NetpollIdleWorkers() - gateway.IdleWriters(h.Gateway)
	for _, tc := range []struct {
		name, req string
		want      int
	}{
		{"a good one", upgradeRequest("/plato"), http.StatusSwitchingProtocols},
		{"a good one with a query and the subprotocol", upgradeRequest("/plato?x=1", "Sec-WebSocket-Protocol: chat, plato"), http.StatusSwitchingProtocols},
		{"another path", upgradeRequest("/other"), http.StatusNotFound},
		{"a plain GET", "GET /plato HTTP/1.1\r\nHost: gw\r\n\r\n", http.StatusBadRequest},
		{"no key", strings.Replace(upgradeRequest("/plato"), "Sec-WebSocket-Key: "+wsKey+"\r\n", "", 1), http.StatusBadRequest},
		{"a short key", strings.Replace(upgradeRequest("/plato"), wsKey, "c2hvcnQ=", 1), http.StatusBadRequest},
		{"no version", strings.Replace(upgradeRequest("/plato"), "Sec-WebSocket-Version: 13\r\n", "", 1), http.StatusBadRequest},
		{"version 8", strings.Replace(upgradeRequest("/plato"), "Version: 13", "Version: 8", 1), http.StatusUpgradeRequired},
		{"HTTP/1.0", strings.Replace(upgradeRequest("/plato"), "HTTP/1.1", "HTTP/1.0", 1), http.StatusHTTPVersionNotSupported},
		{"a POST", strings.Replace(upgradeRequest("/plato"), "GET", "POST", 1), http.StatusBadRequest},
		{"a TCP device on the wrong port", string(protocol.AppendFrame(nil, protocol.SigHeartbeat, 0, 1, nil)), http.StatusBadRequest},
		{"an Origin too long", upgradeRequest("/plato", "Origin: https://"+strings.Repeat("a", 300)), http.StatusBadRequest},
		{"headers too large", upgradeRequest("/plato", "X-Junk: "+strings.Repeat("j", 9000)), http.StatusRequestHeaderFieldsTooLarge},
		{"a malformed header line", "GET /plato HTTP/1.1\r\nno colon here\r\n\r\n", http.StatusBadRequest},
	} {
		if got := httpAnswer(t, h, tc.req); got != tc.want {
			t.Errorf("%s: answered %d, want %d", tc.name, got, tc.want)
		}
	}
	poll.Until(t, "every connection to be gone", func() bool { return h.Gateway.Stats().Conns == 0 })
	poll.Until(t, "goroutines to settle", func() bool {
		return runtime.NumGoroutine()-gateway.NetpollIdleWorkers()-gateway.IdleWriters(h.Gateway) <= before+10
	})
}

// TestWSSlowHandshakeIsCutOff: a handshake sent a byte at a time is answered 408 once the login
// timeout passes, however steadily the bytes come.
func TestWSSlowHandshakeIsCutOff(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{Configure: func(c *gateway.Config) { c.LoginTimeout = time.Second }})
	nc, err := net.DialTimeout("tcp", h.Gateway.WSAddr(), poll.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := upgradeRequest("/plato")
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < len(req)-1; i++ { // never the last byte
			if _, err := nc.Write([]byte{req[i]}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	_ = nc.SetReadDeadline(time.Now().Add(poll.Timeout))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("answered %d, want 408", resp.StatusCode)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("cut off after %v; the login timeout is 1s", took)
	}
	nc.Close()
	<-done
	poll.Until(t, "the connection to be gone", func() bool { return h.Gateway.Stats().Conns == 0 })

	// Upgraded in time, but no Login: Close 1206 as on TCP, then the close frame saying so.
	c := dialWS(t, h, "")
	f, _, err := protocol.ReadFrame(c, protocol.HardMaxBody, nil)
	var m protocol.Close
	if err != nil || f.Signal != protocol.SigClose || m.Decode(f.Body) != nil || m.Code != protocol.CodeLoginTimeout {
		t.Fatalf("got %v %v, want Close 1206", f, err)
	}
	if reason := expectWSClose(t, c, ws.StatusNormalClosure); reason != "1206" {
		t.Fatalf("close reason %q, want 1206", reason)
	}
}

func dialWS(t *testing.T, h *gatewaytest.Harness, origin string) *wsclient.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	c, err := wsclient.Dial(ctx, h.WSURL(), wsclient.Options{Origin: origin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(poll.Timeout))
	return c
}

// expectWSClose reads until the gateway's close frame and EOF, and checks the close status.
func expectWSClose(t *testing.T, c *wsclient.Conn, want ws.StatusCode) string {
	t.Helper()
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("reading to the close: %v", err)
	}
	code, reason, ok := c.CloseStatus()
	if !ok || code != want {
		t.Fatalf("close frame %v %d %q, want status %d", ok, code, reason, want)
	}
	// The socket itself is closed after the close frame.
	if _, err := c.Conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after the close frame: %v, want EOF", err)
	}
	return reason
}

// rawFrame is a client frame with any header bits, masked or not.
func rawFrame(b0 byte, masked bool, payload []byte) []byte {
	var buf bytes.Buffer
	h := ws.Header{Fin: b0&0x80 != 0, Rsv: (b0 & 0x70) >> 4, OpCode: ws.OpCode(b0 & 0x0f), Length: int64(len(payload)), Masked: masked}
	if masked {
		h.Mask = ws.NewMask()
	}
	_ = ws.WriteHeader(&buf, h)
	p := slices.Clone(payload)
	if masked {
		ws.Cipher(p, h.Mask, 0)
	}
	buf.Write(p)
	return buf.Bytes()
}

func TestWSFramingViolationsAreClosedWithAReason(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{Configure: func(c *gateway.Config) { c.MaxBody = 1024 }})
	before := runtime.NumGoroutine() - gateway.NetpollIdleWorkers() - gateway.IdleWriters(h.Gateway)
	hb := protocol.AppendFrame(nil, protocol.SigHeartbeat, 0, 1, nil)
	for _, tc := range []struct {
		name string
		send func(c *wsclient.Conn) error
		want ws.StatusCode
	}{
		{"a text message", func(c *wsclient.Conn) error { return c.WriteMessage(ws.OpText, true, []byte("hello")) }, ws.StatusUnsupportedData},
		{"a fragmented message", func(c *wsclient.Conn) error { return c.WriteMessage(ws.OpBinary, false, hb[:8]) }, ws.StatusUnsupportedData},
		{"a continuation frame", func(c *wsclient.Conn) error { return c.WriteMessage(ws.OpContinuation, true, hb) }, ws.StatusUnsupportedData},
		{"an unmasked frame", func(c *wsclient.Conn) error { _, err := c.Conn.Write(rawFrame(0x82, false, hb)); return err }, ws.StatusProtocolError},
		{"a reserved bit", func(c *wsclient.Conn) error { _, err := c.Conn.Write(rawFrame(0xc2, true, hb)); return err }, ws.StatusProtocolError},
		{"a reserved opcode", func(c *wsclient.Conn) error { _, err := c.Conn.Write(rawFrame(0x83, true, hb)); return err }, ws.StatusProtocolError},
		{"a fragmented ping", func(c *wsclient.Conn) error { _, err := c.Conn.Write(rawFrame(0x09, true, nil)); return err }, ws.StatusProtocolError},
		{"a ping over 125 bytes", func(c *wsclient.Conn) error {
			_, err := c.Conn.Write(rawFrame(0x89, true, make([]byte, 126)))
			return err
		}, ws.StatusProtocolError},
		{"a 64-bit length with its top bit", func(c *wsclient.Conn) error {
			_, err := c.Conn.Write([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4})
			return err
		}, ws.StatusProtocolError},
		{"a message over max_body + header (only its header sent)", func(c *wsclient.Conn) error {
			var buf bytes.Buffer
			_ = ws.WriteHeader(&buf, ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Length: 1024 + protocol.HeaderLen + 1})
			_, err := c.Conn.Write(buf.Bytes())
			return err
		}, ws.StatusMessageTooBig},
		{"a 1-byte close", func(c *wsclient.Conn) error { return c.WriteMessage(ws.OpClose, true, []byte{3}) }, ws.StatusProtocolError},
		{"a close with a code no one may send", func(c *wsclient.Conn) error {
			return c.WriteMessage(ws.OpClose, true, ws.NewCloseFrameBody(1005, ""))
		}, ws.StatusProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialWS(t, h, "")
			if err := tc.send(c); err != nil {
				t.Fatal(err)
			}
			expectWSClose(t, c, tc.want)
		})
	}

	t.Run("a message that is not one Plato frame gets a Plato Close, then close 1000", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			msg  []byte
			want protocol.Code
		}{
			{"two frames", append(slices.Clone(hb), hb...), protocol.CodeMalformed},
			{"less than a header", hb[:10], protocol.CodeMalformed},
			{"a header longer than its body", hb[: protocol.HeaderLen-1 : protocol.HeaderLen-1], protocol.CodeMalformed},
			{"bad magic", append([]byte("XX"), hb[2:]...), protocol.CodeBadMagic},
			{"a header saying more than max_body", func() []byte {
				b := make([]byte, protocol.HeaderLen)
				protocol.PutHeader(b, protocol.Header{Signal: protocol.SigUplink, Seq: 1, Length: 1025})
				return b
			}(), protocol.CodeFrameTooLarge},
		} {
			c := dialWS(t, h, "")
			if err := c.WriteMessage(ws.OpBinary, true, tc.msg); err != nil {
				t.Fatal(err)
			}
			f, _, err := protocol.ReadFrame(c, protocol.HardMaxBody, nil)
			var m protocol.Close
			if err != nil || f.Signal != protocol.SigClose || m.Decode(f.Body) != nil || m.Code != tc.want {
				t.Fatalf("%s: got %v %v (%+v), want Close %d", tc.name, f, err, m, tc.want)
			}
			if reason := expectWSClose(t, c, ws.StatusNormalClosure); reason != strconv.Itoa(int(tc.want)) {
				t.Fatalf("%s: close reason %q, want %q", tc.name, reason, strconv.Itoa(int(tc.want)))
			}
		}
	})

	t.Run("a ping is answered with its pong, a close with a close", func(t *testing.T) {
		c := dialWS(t, h, "")
		if err := c.WriteMessage(ws.OpPing, true, []byte("are you there")); err != nil {
			t.Fatal(err)
		}
		fh, p, err := c.ReadFrame()
		if err != nil || fh.OpCode != ws.OpPong || fh.Masked || string(p) != "are you there" {
			t.Fatalf("got %+v %q %v, want a pong with the ping's data", fh, p, err)
		}
		if err := c.SendClose(ws.StatusGoingAway, "bye"); err != nil {
			t.Fatal(err)
		}
		expectWSClose(t, c, ws.StatusGoingAway)
	})

	poll.Until(t, "every connection to be gone", func() bool { return h.Gateway.Stats().Conns == 0 })
	poll.Until(t, "goroutines to settle", func() bool {
		return runtime.NumGoroutine()-gateway.NetpollIdleWorkers()-gateway.IdleWriters(h.Gateway) <= before+10
	})
	if n := h.State.Find(nil); len(n) != 0 {
		t.Errorf("the state server heard of %d events from connections that never logged in", len(n))
	}
}

// TestWSDeviceIsServedLikeATCPOne logs a device in over WebSocket through the gateway alone (a fake
// state server): its frames reach the state server, and the state server's frames and a session
// broadcast reach it, each as one binary message.
func TestWSDeviceIsServedLikeATCPOne(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	c := dialWS(t, h, "https://anything.example")
	tok, _ := h.Tokens.Issue("a", "wendy", "u-wendy", time.Now(), time.Time{})
	if _, err := c.Write(protocol.AppendFrame(nil, protocol.SigLogin, 0, 1, (&protocol.Login{AppID: "a", DID: "wendy", Token: tok}).Append(nil))); err != nil {
		t.Fatal(err)
	}
	var connID int64
	poll.Until(t, "the state server to see the login", func() bool {
		for _, ev := range h.State.Find(nil) {
			if protocol.Signal(ev.Signal) == protocol.SigLogin && ev.Did == "wendy" && ev.Uid == "u-wendy" {
				connID = ev.ConnId
				return true
			}
		}
		return false
	})
	ack := (&protocol.LoginAck{ConnID: uint64(connID), HeartbeatMs: 30000}).Append(nil)
	h.Push(&fleet.DownFrame{ConnId: connID, Action: fleet.DownAction_LOGIN_OK, Signal: int8(protocol.SigLoginAck), Seq: 1, Body: ack})
	if f, _, err := protocol.ReadFrame(c, protocol.HardMaxBody, nil); err != nil || f.Signal != protocol.SigLoginAck {
		t.Fatalf("got %v %v, want the LoginAck", f, err)
	}
	if _, err := c.Write(protocol.AppendFrame(nil, protocol.SigUplink, 0, 1, []byte("up"))); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the uplink at the state server", func() bool {
		ups := h.State.Received(uint64(connID), protocol.SigUplink)
		return len(ups) == 1 && string(ups[0].Body) == "up"
	})
	h.Sessions(&fleet.SessionChange{ConnId: connID, Session: "room", Join: true})
	h.Publish(fanout.Message{AppID: "a", Session: "room", MsgID: 42, QoS: delivery.AtMostOnce, Payload: []byte("to the room")})
	f, _, err := protocol.ReadFrame(c, protocol.HardMaxBody, nil)
	var dl protocol.Downlink
	if err != nil || f.Signal != protocol.SigDownlink || f.Flags != protocol.FlagBroadcast || dl.Decode(f.Body) != nil || string(dl.Payload) != "to the room" {
		t.Fatalf("got %v %v, want the broadcast", f, err)
	}
	// The state server kicks it: Close 1202, then the close frame saying 1202.
	h.Push(&fleet.DownFrame{ConnId: connID, Action: fleet.DownAction_SEND_AND_CLOSE, Signal: int8(protocol.SigClose),
		Body: (&protocol.Close{Code: protocol.CodeKicked}).Append(nil)})
	var m protocol.Close
	if f, _, err := protocol.ReadFrame(c, protocol.HardMaxBody, nil); err != nil || f.Signal != protocol.SigClose || m.Decode(f.Body) != nil || m.Code != protocol.CodeKicked {
		t.Fatalf("got %v %v, want Close 1202", f, err)
	}
	if reason := expectWSClose(t, c, ws.StatusNormalClosure); reason != "1202" {
		t.Fatalf("close reason %q, want 1202", reason)
	}
	closed := h.State.Find(func(ev *fleet.UpEvent) bool { return ev.ConnId == connID && ev.Kind == fleet.UpKind_CLOSED })
	poll.Until(t, "the close event", func() bool {
		closed = h.State.Find(func(ev *fleet.UpEvent) bool { return ev.ConnId == connID && ev.Kind == fleet.UpKind_CLOSED })
		return len(closed) == 1
	})
	if closed[0].Reason != int32(protocol.CodeKicked) {
		t.Fatalf("close reason at the state server %d, want 1202", closed[0].Reason)
	}
}

// TestWSOriginIsCheckedAtLogin: an app with allowed origins refuses another origin with 1106, and
// lets a client without an Origin through.
func TestWSOriginIsCheckedAtLogin(t *testing.T) {
	declared := gatewaytest.DefaultApps()
	a := declared["a"]
	a.AllowedOrigins = []string{"https://App.example.com"}
	declared["a"] = a
	h := gatewaytest.New(t, gatewaytest.Options{Apps: declared})
	login := func(c *wsclient.Conn, did string) {
		t.Helper()
		tok, _ := h.Tokens.Issue("a", did, did, time.Now(), time.Time{})
		if _, err := c.Write(protocol.AppendFrame(nil, protocol.SigLogin, 0, 1, (&protocol.Login{AppID: "a", DID: did, Token: tok}).Append(nil))); err != nil {
			t.Fatal(err)
		}
	}
	for _, origin := range []string{"https://evil.example", "http://app.example.com", "https://app.example.com.evil.example"} {
		c := dialWS(t, h, origin)
		login(c, "mallory")
		f, _, err := protocol.ReadFrame(c, protocol.HardMaxBody, nil)
		var la protocol.LoginAck
		if err != nil || f.Signal != protocol.SigLoginAck || la.Decode(f.Body) != nil || la.Code != protocol.CodeOriginRefused {
			t.Fatalf("origin %s: got %v %v (%+v), want LoginAck 1106", origin, f, err, la)
		}
		expectWSClose(t, c, ws.StatusNormalClosure)
	}
	for _, origin := range []string{"https://app.example.com", ""} {
		c := dialWS(t, h, origin)
		did := "ok-" + strconv.Itoa(len(origin))
		login(c, did)
		poll.Until(t, "the state server to see the login from origin "+origin, func() bool {
			return len(h.State.Find(func(ev *fleet.UpEvent) bool { return ev.Did == did })) == 1
		})
	}
	if n := h.State.Find(func(ev *fleet.UpEvent) bool { return ev.Did == "mallory" }); len(n) != 0 {
		t.Fatalf("the state server heard of %d refused logins", len(n))
	}
}

// loginWS logs a WebSocket device in through the harness's fake state server and returns its
// connection ID once it has read its LoginAck.
func loginWS(t *testing.T, h *gatewaytest.Harness, c *wsclient.Conn, app, did string) int64 {
	t.Helper()
	tok, _ := h.Tokens.Issue(app, did, "u-"+did, time.Now(), time.Time{})
	if _, err := c.Write(protocol.AppendFrame(nil, protocol.SigLogin, 0, 1, (&protocol.Login{AppID: app, DID: did, Token: tok}).Append(nil))); err != nil {
		t.Fatal(err)
	}
	var connID int64
	poll.Until(t, "the state server to see the login of "+did, func() bool {
		for _, ev := range h.State.Find(nil) {
			if protocol.Signal(ev.Signal) == protocol.SigLogin && ev.Did == did {
				connID = ev.ConnId
				return true
			}
		}
		return false
	})
	ack := (&protocol.LoginAck{ConnID: uint64(connID), HeartbeatMs: 30000}).Append(nil)
	h.Push(&fleet.DownFrame{ConnId: connID, Action: fleet.DownAction_LOGIN_OK, Signal: int8(protocol.SigLoginAck), Seq: 1, Body: ack})
	if f, _, err := protocol.ReadFrame(c, protocol.HardMaxBody, nil); err != nil || f.Signal != protocol.SigLoginAck {
		t.Fatalf("got %v %v, want the LoginAck", f, err)
	}
	return connID
}

// TestWSSlowConsumerIsCutOff: a WebSocket device that stops reading is closed with 1205 like a TCP
// one, by the same write queue bound.
func TestWSSlowConsumerIsCutOff(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{Configure: func(c *gateway.Config) {
		c.WriteQueue, c.WriteQueueBytes = 8, 256<<10
	}})
	c := dialWS(t, h, "")
	connID := loginWS(t, h, c, "a", "sloth")
	body := (&protocol.Downlink{MsgID: 1, Payload: make([]byte, 32<<10)}).Append(nil)
	seq := int64(1)
	poll.Until(t, "the device that does not read to be closed 1205", func() bool {
		var frames []*fleet.DownFrame
		for range 16 {
			seq++
			frames = append(frames, &fleet.DownFrame{ConnId: connID, Signal: int8(protocol.SigDownlink), Seq: seq, Body: body})
		}
		h.Push(frames...)
		closed := h.State.Find(func(ev *fleet.UpEvent) bool { return ev.ConnId == connID && ev.Kind == fleet.UpKind_CLOSED })
		return len(closed) == 1 && closed[0].Reason == int32(protocol.CodeSlowConsumer)
	})
	if s := h.Gateway.Stats(); s.SlowConsumers != 1 {
		t.Fatalf("slow consumers %d, want 1", s.SlowConsumers)
	}
}

// TestWSAdvertisedURL: gateway.ws_advertise is a host:port put in a ws:// URL, or a whole URL for
// a TLS proxy in front.
func TestWSAdvertisedURL(t *testing.T) {
	for adv, want := range map[string]string{
		"gw1.example.com:8910":        "ws://gw1.example.com:8910/plato",
		"wss://gw1.example.com/plato": "wss://gw1.example.com/plato",
		"ws://10.0.0.1:80/plato":      "ws://10.0.0.1:80/plato",
	} {
		h := gatewaytest.New(t, gatewaytest.Options{NoNATS: true, Configure: func(c *gateway.Config) { c.WSAdvertise = adv }})
		if got := h.WSURL(); got != want {
			t.Errorf("ws_advertise %q: endpoint %q, want %q", adv, got, want)
		}
		_ = h.Gateway.Shutdown(context.Background())
	}
}

// FuzzWSFrames sends any bytes after a good handshake, through a real socket, and half-closes: the
// gateway must answer (or not) without a panic and let the connection go. The seeds run in every
// `go test`.
func FuzzWSFrames(f *testing.F) {
	hb := protocol.AppendFrame(nil, protocol.SigHeartbeat, 0, 1, nil)
	f.Add(rawFrame(0x82, true, hb))
	f.Add(append(rawFrame(0x82, true, hb), rawFrame(0x89, true, []byte("ping"))...))
	f.Add(rawFrame(0x81, true, []byte("text")))
	f.Add(rawFrame(0x02, true, hb[:5]))
	f.Add(rawFrame(0x88, true, []byte{0x03, 0xe8, 'o', 'k'}))
	f.Add([]byte{0x82, 0xfe, 0xff})    // a header cut short
	f.Add([]byte{0x82, 0x90, 1, 2, 3}) // a mask cut short
	f.Add(rawFrame(0x82, true, append(slices.Clone(hb), 1)))
	h := gatewaytest.New(f, gatewaytest.Options{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
		defer cancel()
		c, err := wsclient.Dial(ctx, h.WSURL(), wsclient.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(poll.Timeout))
		if _, err := c.Conn.Write(b); err != nil {
			return // closed already: fine
		}
		_ = c.Conn.(*net.TCPConn).CloseWrite()
		if _, err := io.Copy(io.Discard, c.Conn); err != nil {
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				t.Fatalf("% x: the gateway kept the connection %v after the device's end closed", b, poll.Timeout)
			}
		}
		if p := h.Gateway.Stats().Panics; p != 0 {
			t.Fatalf("% x: %d panics", b, p)
		}
	})
}

// TestRedirectListsEndpointsOfTheDevicesTransport: a device on the WebSocket transport is
// redirected to the other gateways' ws:// URLs, which a browser can dial; a TCP device to their
// host:port. Both get a fresh token for their own did.
func TestRedirectListsEndpointsOfTheDevicesTransport(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	other := registry.Node{
		ID: "gw-other", Role: registry.RoleGateway, Endpoint: "127.0.0.1:7001", WSEndpoint: "ws://127.0.0.1:7002/plato",
		RPCNetwork: "tcp", RPCAddr: "127.0.0.1:7003", StartedAt: time.Now(), UpdatedAt: time.Now(),
	}
	if err := h.Registry.Put(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	wc := dialWS(t, h, "")
	loginWS(t, h, wc, "demo", "ws-device")
	tcp := h.Login("demo", "tcp-device")
	poll.Until(t, "the gateway to see gw-other", func() bool {
		_, err := h.Gateway.Migrate(t.Context(), opsapi.MigrateRequest{To: "gw-other", DIDs: []string{"nobody"}})
		return err == nil
	})
	res, err := h.Gateway.Migrate(t.Context(), opsapi.MigrateRequest{To: "gw-other", DIDs: []string{"ws-device", "tcp-device"}})
	if err != nil || res.Redirected != 2 {
		t.Fatalf("migrate: %+v %v", res, err)
	}
	check := func(f protocol.Frame, did, want string) {
		t.Helper()
		var m protocol.Redirect
		if f.Signal != protocol.SigRedirect || m.Decode(f.Body) != nil {
			t.Fatalf("%s got %v, want a Redirect", did, f.Signal)
		}
		if m.Code != protocol.CodeMigrated || len(m.Endpoints) != 1 || m.Endpoints[0] != want {
			t.Fatalf("%s: Redirect %+v, want code 1207 to %s", did, m, want)
		}
		if _, err := h.Tokens.Verify(m.Token, "demo", did, time.Now()); err != nil {
			t.Fatalf("%s: the Redirect's token: %v", did, err)
		}
	}
	f, _, err := protocol.ReadFrame(wc, protocol.HardMaxBody, nil)
	if err != nil {
		t.Fatal(err)
	}
	check(f, "ws-device", other.WSEndpoint)
	check(tcp.Read(), "tcp-device", other.Endpoint)
}

// WebSocket devices stopped mid-handshake or mid-message hold no goroutine (carry.go), and each
// completes once the rest arrives: the half handshakes are answered 101, the half messages
// answered as whole ones.
func TestWSDevicesStoppedMidwayHoldNoGoroutine(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	held := func() int {
		return runtime.NumGoroutine() - gateway.NetpollIdleWorkers() - gateway.IdleWriters(h.Gateway)
	}
	const n = 40
	req := upgradeRequest("/plato")
	raws := make([]net.Conn, n)
	socks := make([]*wsclient.Conn, n)
	for i := range n {
		nc, err := net.DialTimeout("tcp", h.Gateway.WSAddr(), poll.Timeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		raws[i] = nc
		socks[i] = dialWS(t, h, "")
	}
	ping := rawFrame(0x89, true, []byte("hi")) // a masked ping: answered with a pong
	before := held()
	for i := range n {
		if _, err := raws[i].Write([]byte(req[:len(req)/2])); err != nil {
			t.Fatal(err)
		}
		if _, err := socks[i].Conn.Write(ping[:3]); err != nil {
			t.Fatal(err)
		}
	}
	// A device that completes everything at once is answered meanwhile: the reads are done.
	probe := dialWS(t, h, "")
	if _, err := probe.Conn.Write(ping); err != nil {
		t.Fatal(err)
	}
	if f, err := ws.ReadFrame(probe.Conn); err != nil || f.Header.OpCode != ws.OpPong {
		t.Fatalf("the probe's ping: %v %v, want a pong", f.Header.OpCode, err)
	}
	// A worker still finishing a read counts: wait for the count to settle. A read that waited
	// would hold its goroutine for the login or read timeout, longer than the poll.
	poll.Within(t, 10*time.Second, "no goroutine held by a device stopped midway", func() bool {
		return held()-before <= n/2
	})
	for i := range n {
		if _, err := raws[i].Write([]byte(req[len(req)/2:])); err != nil {
			t.Fatal(err)
		}
		if _, err := socks[i].Conn.Write(ping[3:]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		_ = raws[i].SetReadDeadline(time.Now().Add(poll.Timeout))
		resp, err := http.ReadResponse(bufio.NewReader(raws[i]), nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ := io.ReadAll(resp.Body)
			t.Fatalf("half handshake %d, completed: %v %q %v, want 101", i, resp.StatusCode, body, err)
		}
		if f, err := ws.ReadFrame(socks[i].Conn); err != nil || f.Header.OpCode != ws.OpPong || string(f.Payload) != "hi" {
			t.Fatalf("half ping %d, completed: %v %q %v, want a pong", i, f.Header.OpCode, f.Payload, err)
		}
	}
}
