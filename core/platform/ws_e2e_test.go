package platform_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/wsclient"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// ipList asks ipconf for did's endpoints over transport ("" for the default, TCP).
func ipList(t *testing.T, p *platform.Platform, did, transport string) (eps []string, tok string) {
	t.Helper()
	q := url.Values{"app_id": {"demo"}, "did": {did}}
	if transport != "" {
		q.Set("transport", transport)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.IPConf.Addr()+"/ip/list?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+platformtest.Credential(t, "demo", did, did))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Endpoints []struct{ Addr string } `json:"endpoints"`
		Token     string                  `json:"token"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
		t.Fatalf("ipconf answered %s", resp.Status)
	}
	for _, e := range body.Endpoints {
		eps = append(eps, e.Addr)
	}
	return eps, body.Token
}

func wsDial(t *testing.T, url, origin string) (*rawConn, *wsclient.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wsclient.Dial(ctx, url, wsclient.Options{Origin: origin, Protocols: []string{"plato"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t, c}, c
}

// TestWebSocketEndToEnd logs a device in over WebSocket through ipconf's ws endpoint, on real
// roles: uplink and ACK, push, heartbeat, a Resume over a new WebSocket, and an Origin the app
// does not allow.
func TestWebSocketEndToEnd(t *testing.T) {
	p, biz := startAll(t, func(c *config.Config) {
		a := c.Apps["demo"]
		a.AllowedOrigins = []string{"https://app.example.com"}
		c.Apps["demo"] = a
	})
	signer := mustSigner(t, platformtest.Secret)
	want := "ws://" + p.Gateway.WSAddr() + "/plato"
	var eps []string
	var tok string
	poll.Within(t, 10*time.Second, "ipconf to list the WebSocket endpoint", func() bool {
		eps, tok = ipList(t, p, "wendy", "ws")
		return len(eps) > 0
	})
	if eps[0] != want {
		t.Fatalf("ipconf's ws endpoints %v, want %s", eps, want)
	}
	if tcp, _ := ipList(t, p, "wendy", ""); len(tcp) == 0 || tcp[0] != p.Gateway.Addr() {
		t.Fatalf("ipconf's tcp endpoints %v, want %s", tcp, p.Gateway.Addr())
	}

	dev, wc := wsDial(t, eps[0], "https://app.example.com")
	if wc.Protocol != "plato" {
		t.Fatalf("subprotocol %q, want plato", wc.Protocol)
	}
	// The token ipconf handed out with the URL.
	dev.send(protocol.SigLogin, 1, (&protocol.Login{AppID: "demo", DID: "wendy", Token: tok}).Append(nil))
	var login protocol.LoginAck
	if f := dev.next(); f.Signal != protocol.SigLoginAck || login.Decode(f.Body) != nil || login.Code != protocol.CodeOK || login.ConnID == 0 {
		t.Fatalf("login answer %s (%+v)", f, login)
	}
	dev.send(protocol.SigUplink, 1, []byte("over websocket"))
	var ack protocol.Ack
	if f := dev.next(); f.Signal != protocol.SigUplinkAck || f.Seq != 1 || ack.Decode(f.Body) != nil || ack.Code != 0 {
		t.Fatalf("uplink answer %s", f)
	}
	if ups := biz.Events(api.EventKind_UPLINK, "wendy"); len(ups) != 1 || string(ups[0].Payload) != "over websocket" {
		t.Fatalf("business got %+v", ups)
	}
	// Its latency is observed, from the frame read to the ACK written, as over TCP.
	poll.Within(t, 10*time.Second, "the WebSocket uplink in plato_gateway_uplink_latency_seconds", func() bool {
		return scrapeMetrics(t, p.Admin.Addr()).sum("plato_gateway_uplink_latency_seconds_count", `app="demo"`) >= 1
	})
	sc := platformtest.StateClient(t, p.State.Addr())
	ctx := context.Background()
	resp, err := sc.Push(ctx, &api.PushRequest{Caller: platformtest.Caller("demo"), Dids: []string{"wendy"}, Payload: []byte("to the browser"), Qos: api.QoS_AT_LEAST_ONCE})
	if err != nil {
		t.Fatal(err)
	}
	f := dev.next()
	var dl protocol.Downlink
	if f.Signal != protocol.SigDownlink || dl.Decode(f.Body) != nil || string(dl.Payload) != "to the browser" || dl.MsgID != uint64(resp.MsgId) {
		t.Fatalf("got %s, want the pushed downlink", f)
	}
	dev.send(protocol.SigDownlinkAck, f.Seq, nil)
	dev.send(protocol.SigHeartbeat, 7, nil)
	if f := dev.next(); f.Signal != protocol.SigHeartbeatAck || f.Seq != 7 {
		t.Fatalf("got %s, want HeartbeatAck 7", f)
	}
	poll.Until(t, "the downlink's ACK", func() bool { return p.State.Stats().DownlinkAcks >= 1 })

	// The network goes; a push waits; the device resumes over a new WebSocket and gets it.
	dev.Close()
	poll.Until(t, "the connection to be parked", func() bool { return p.State.Stats().Parked == 1 })
	if _, err := sc.Push(ctx, &api.PushRequest{Caller: platformtest.Caller("demo"), Dids: []string{"wendy"}, Payload: []byte("while away"), Qos: api.QoS_AT_LEAST_ONCE}); err != nil {
		t.Fatal(err)
	}
	back, _ := wsDial(t, eps[0], "https://app.example.com")
	if ra := back.resume(signer, "wendy", login.ConnID, f.Seq); ra.Code != protocol.CodeOK {
		t.Fatalf("ResumeAck %+v, want 0", ra)
	}
	if got := back.next(); got.Signal != protocol.SigDownlink || dl.Decode(got.Body) != nil || string(dl.Payload) != "while away" {
		t.Fatalf("after Resume got %s, want the downlink pushed while away", got)
	}

	t.Run("an Origin the app does not allow is refused at Login", func(t *testing.T) {
		evil, wc := wsDial(t, eps[0], "https://evil.example")
		tok, _ := signer.Issue("demo", "mallory", "mallory", time.Now(), time.Time{})
		evil.send(protocol.SigLogin, 1, (&protocol.Login{AppID: "demo", DID: "mallory", UID: "mallory", Token: tok}).Append(nil))
		var la protocol.LoginAck
		if f := evil.next(); f.Signal != protocol.SigLoginAck || la.Decode(f.Body) != nil || la.Code != protocol.CodeOriginRefused {
			t.Fatalf("got %s (%+v), want LoginAck 1106", f, la)
		}
		evil.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := evil.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("after the refusal: %v, want EOF", err)
		}
		if code, reason, ok := wc.CloseStatus(); !ok || code != ws.StatusNormalClosure || reason != "1106" {
			t.Fatalf("close frame %d %q %v, want 1000 \"1106\"", code, reason, ok)
		}
	})

	t.Run("a client that is not a browser sends no Origin and may log in", func(t *testing.T) {
		app, _ := wsDial(t, eps[0], "")
		if la := app.login(signer, "native"); la.Code != protocol.CodeOK {
			t.Fatalf("LoginAck %+v", la)
		}
	})

	t.Run("transport must be tcp or ws", func(t *testing.T) {
		resp, err := http.Get("http://" + p.IPConf.Addr() + "/ip/list?app_id=demo&did=x&transport=quic")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "transport") {
			t.Fatalf("ipconf answered %s %s", resp.Status, b)
		}
	})
}
