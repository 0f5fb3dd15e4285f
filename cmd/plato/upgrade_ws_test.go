package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/wsclient"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

var reWebSocket = regexp.MustCompile(`websocket\s+(ws://\S+)\s+\(device WebSocket`)

// wsDevice is a raw Plato device on the WebSocket transport: w sends one Plato frame as one
// binary message, r yields the Plato frames of the binary messages received.
type wsDevice struct {
	t    *testing.T
	name string
	nc   net.Conn // the TCP socket, for bytes written as they are
	w    func([]byte) error
	r    io.Reader
	rbuf []byte
}

func (d *wsDevice) send(sig protocol.Signal, seq uint64, body []byte) {
	d.t.Helper()
	if err := d.w(protocol.AppendFrame(nil, sig, 0, seq, body)); err != nil {
		d.t.Fatalf("%s sending %s: %v", d.name, sig, err)
	}
}

// next returns the next frame of signal want, answering the Downlinks it passes.
func (d *wsDevice) next(want protocol.Signal) protocol.Frame {
	d.t.Helper()
	_ = d.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		var f protocol.Frame
		var err error
		f, d.rbuf, err = protocol.ReadFrame(d.r, 1<<20, d.rbuf)
		if err != nil {
			d.t.Fatalf("%s reading %s: %v", d.name, want, err)
		}
		if f.Signal == want {
			return f
		}
		if f.Signal == protocol.SigClose {
			var cl protocol.Close
			_ = cl.Decode(f.Body)
			d.t.Fatalf("%s closed while waiting for %s: %d %s", d.name, want, cl.Code, cl.Message)
		}
	}
}

func (d *wsDevice) login(signer *token.Signer, did string) {
	d.t.Helper()
	tok, _ := signer.Issue("demo", did, did, time.Now(), time.Time{})
	d.send(protocol.SigLogin, 1, (&protocol.Login{AppID: "demo", DID: did, Token: tok}).Append(nil))
	var la protocol.LoginAck
	if f := d.next(protocol.SigLoginAck); la.Decode(f.Body) != nil || la.Code != protocol.CodeOK {
		d.t.Fatalf("%s LoginAck %d %s", d.name, la.Code, la.Message)
	}
}

// uplink sends an uplink and checks it is answered 0.
func (d *wsDevice) uplink(seq uint64, payload string) {
	d.t.Helper()
	d.send(protocol.SigUplink, seq, []byte(payload))
	var ack protocol.Ack
	if f := d.next(protocol.SigUplinkAck); ack.Decode(f.Body) != nil || ack.Code != protocol.CodeOK || f.Seq != seq {
		d.t.Fatalf("%s UplinkAck seq %d code %d %s, want seq %d code 0", d.name, f.Seq, ack.Code, ack.Message, seq)
	}
}

func dialWSDevice(t *testing.T, name, wsURL string) *wsDevice {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := wsclient.Dial(ctx, wsURL, wsclient.Options{})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return &wsDevice{t: t, name: name, nc: c.Conn, r: c, w: func(b []byte) error { _, err := c.Write(b); return err }}
}

// maskedBinary is a client's WebSocket message holding b.
func maskedBinary(b []byte) []byte { return ws.MustCompileFrame(ws.MaskFrame(ws.NewBinaryFrame(b))) }

// wsPayloads reads the payloads of the binary messages on br as one stream.
type wsPayloads struct {
	br   *bufio.Reader
	left []byte
}

func (p *wsPayloads) Read(b []byte) (int, error) {
	for len(p.left) == 0 {
		f, err := ws.ReadFrame(p.br)
		if err != nil {
			return 0, err
		}
		if f.Header.OpCode == ws.OpClose {
			return 0, io.EOF
		}
		if f.Header.OpCode == ws.OpBinary {
			p.left = f.Payload
		}
	}
	n := copy(b, p.left)
	p.left = p.left[n:]
	return n, nil
}

// upgradeGateway runs `plato gateway upgrade` against the gateway process pid and returns the new
// process's pid, which it kills at the end of the test should it still run.
func upgradeGateway(t *testing.T, dataDir string, pid int) int {
	t.Helper()
	control := filepath.Join(dataDir, "gateway-"+strconv.Itoa(pid)+".ctl")
	out, err := exec.Command(platoBinary(t), "gateway", "upgrade", "--control", control).CombinedOutput()
	if err != nil {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`-> (\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no new pid in %s", out)
	}
	newPID, _ := strconv.Atoi(m[1])
	t.Cleanup(func() {
		if pidAlive(newPID) {
			_ = syscall.Kill(newPID, syscall.SIGKILL)
		}
	})
	return newPID
}

// TestGatewayUpgradeCarriesWebSocket upgrades a gateway process while WebSocket devices are
// connected to it: one logged in and idle, one that has sent half of a WebSocket message, and one
// that has sent half of its handshake. None notices: the first's next uplink is answered and a
// push sent after the upgrade reaches it; the half message, completed after the upgrade, is an
// uplink answered 0; the handshake, completed after the upgrade, is answered 101 and the device
// logs in. A new WebSocket device connects to the same URL afterwards. A second upgrade passes the
// connections adopted from the first process on, another half message with them. No device logs
// in twice and none is disconnected.
func TestGatewayUpgradeCarriesWebSocket(t *testing.T) {
	stAddr := freePort(t)
	cfg, biz := startShared(t, fmt.Sprintf("state: {addr: %q}\n", stAddr))
	dataDir := t.TempDir()
	st := startProc(t, "state", "state", "--config", cfg, "--data-dir", dataDir)
	st.waitLine(reRunning)
	gw := startProc(t, "gateway", "gateway", "--config", cfg, "--data-dir", dataDir)
	gw.waitLine(reGateway)
	wsURL := gw.waitLine(reWebSocket)
	pid := gw.cmd.Process.Pid
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway stderr:\n%s", gw.stderr())
		}
	})
	signer, err := token.NewSigner([]byte(platformtest.Secret), time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	idle := dialWSDevice(t, "idle", wsURL)
	idle.login(signer, "ws-idle")
	idle.uplink(2, "idle before")
	half := dialWSDevice(t, "half", wsURL)
	half.login(signer, "ws-half")
	payload := strings.Repeat("one WebSocket message across two processes ", 20)
	msg := maskedBinary(protocol.AppendFrame(nil, protocol.SigUplink, 0, 2, []byte(payload)))
	cut := len(msg) / 2
	if _, err := half.nc.Write(msg[:cut]); err != nil {
		t.Fatal(err)
	}
	// A device whose handshake is half sent, on a raw socket.
	u, _ := url.Parse(wsURL)
	hc, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	req := "GET /plato HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	hcut := len(req) / 2
	if _, err := hc.Write([]byte(req[:hcut])); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the old process has read them and waits for the rest

	newPID := upgradeGateway(t, dataDir, pid)
	poll.Within(t, 30*time.Second, "the old gateway process to exit", func() bool { return !pidAlive(pid) })

	// The half message completes on the new process.
	if _, err := half.nc.Write(msg[cut:]); err != nil {
		t.Fatal(err)
	}
	var ack protocol.Ack
	if f := half.next(protocol.SigUplinkAck); ack.Decode(f.Body) != nil || ack.Code != protocol.CodeOK || f.Seq != 2 {
		t.Fatalf("half: UplinkAck seq %d code %d %s, want seq 2 code 0", f.Seq, ack.Code, ack.Message)
	}
	half.uplink(3, "half after")

	// The idle device is answered, and a push made now reaches it.
	idle.uplink(3, "idle after")
	plato := platformtest.StateClient(t, stAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := plato.Push(ctx, &api.PushRequest{Caller: platformtest.Caller("demo"), Dids: []string{"ws-idle"},
		Payload: []byte("pushed after the upgrade"), Qos: api.QoS_AT_LEAST_ONCE})
	if err != nil || len(resp.Targets) != 1 || (resp.Targets[0].Status != api.PushStatus_SENT && resp.Targets[0].Status != api.PushStatus_QUEUED) {
		t.Fatalf("push: %+v %v", resp, err)
	}
	f := idle.next(protocol.SigDownlink)
	var dl protocol.Downlink
	if dl.Decode(f.Body) != nil || string(dl.Payload) != "pushed after the upgrade" {
		t.Fatalf("idle got Downlink %q", dl.Payload)
	}
	idle.send(protocol.SigDownlinkAck, f.Seq, nil)

	// The handshake completes on the new process.
	if _, err := hc.Write([]byte(req[hcut:])); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(hc)
	_ = hc.SetReadDeadline(time.Now().Add(20 * time.Second))
	status, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 101 ") {
		t.Fatalf("handshake completed after the upgrade: %q %v", status, err)
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the 101's headers: %v", err)
		}
		if l == "\r\n" {
			break
		}
	}
	hs := &wsDevice{t: t, name: "handshake", nc: hc, r: &wsPayloads{br: br},
		w: func(b []byte) error { _, err := hc.Write(maskedBinary(b)); return err }}
	hs.login(signer, "ws-handshake")
	hs.uplink(2, "handshake after")

	// A new device connects to the same URL, served by the new process.
	fresh := dialWSDevice(t, "fresh", wsURL)
	fresh.login(signer, "ws-fresh")
	fresh.uplink(2, "fresh after")

	// Again: the connections adopted from the first process, and the listener, are passed on.
	msg2 := maskedBinary(protocol.AppendFrame(nil, protocol.SigUplink, 0, 4, []byte("half again")))
	if _, err := half.nc.Write(msg2[:5]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	second := upgradeGateway(t, dataDir, newPID)
	poll.Within(t, 30*time.Second, "the second gateway process to exit", func() bool { return !pidAlive(newPID) })
	newPID = second
	if _, err := half.nc.Write(msg2[5:]); err != nil {
		t.Fatal(err)
	}
	if f := half.next(protocol.SigUplinkAck); ack.Decode(f.Body) != nil || ack.Code != protocol.CodeOK || f.Seq != 4 {
		t.Fatalf("half: UplinkAck seq %d code %d %s, want seq 4 code 0", f.Seq, ack.Code, ack.Message)
	}
	idle.uplink(4, "idle after two")
	hs.uplink(3, "handshake after two")
	fresh.uplink(3, "fresh after two")
	again := dialWSDevice(t, "again", wsURL)
	again.login(signer, "ws-again")
	again.uplink(2, "again after two")

	poll.Within(t, 20*time.Second, "every uplink at the business", func() bool {
		got := map[string]bool{}
		for _, ev := range biz.Events(api.EventKind_UPLINK, "") {
			got[string(ev.Payload)] = true
		}
		for _, p := range []string{"idle before", payload, "half after", "idle after", "handshake after", "fresh after",
			"half again", "idle after two", "handshake after two", "fresh after two", "again after two"} {
			if !got[p] {
				return false
			}
		}
		return true
	})
	for _, did := range []string{"ws-idle", "ws-half", "ws-handshake", "ws-fresh", "ws-again"} {
		if c := len(biz.Events(api.EventKind_CONNECTED, did)); c != 1 {
			t.Errorf("%s: %d CONNECTED events, want 1", did, c)
		}
	}
	if d := biz.Events(api.EventKind_DISCONNECTED, ""); len(d) != 0 {
		t.Errorf("%d DISCONNECTED events, want none: %+v", len(d), d)
	}
	// The new process serves the same WebSocket URL.
	gw.mu.Lock()
	var urls []string
	for _, l := range gw.lines {
		if m := reWebSocket.FindStringSubmatch(l); m != nil {
			urls = append(urls, m[1])
		}
	}
	gw.mu.Unlock()
	if len(urls) != 3 || urls[0] != urls[1] || urls[1] != urls[2] {
		t.Errorf("WebSocket URLs printed by the three processes: %q, want the same three times", urls)
	}

	_ = syscall.Kill(newPID, syscall.SIGINT)
	poll.Within(t, 30*time.Second, "the new gateway process to stop", func() bool { return !pidAlive(newPID) })
	select {
	case <-gw.exit:
	case <-time.After(30 * time.Second):
		t.Error("the gateway processes' output did not end")
	}
	st.interrupt()
}

// dialWSLoadDevice is an upgradeDevice on the WebSocket transport, for TestGatewayUpgradesUnderLoad:
// logged in as did, its send sends an uplink and waits for its answer, and a reader records the
// Downlinks (ACKing them) and counts a Close or a lost socket as dropped.
func dialWSLoadDevice(t *testing.T, wsURL string, signer *token.Signer, did string) (*upgradeDevice, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := wsclient.Dial(ctx, wsURL, wsclient.Options{})
	if err != nil {
		return nil, err
	}
	d := &upgradeDevice{did: did, got: map[uint64]bool{}}
	var wmu sync.Mutex
	write := func(sig protocol.Signal, seq uint64, body []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		_, err := c.Write(protocol.AppendFrame(nil, sig, 0, seq, body))
		return err
	}
	tok, _ := signer.Issue("demo", did, did, time.Now(), time.Time{})
	if err := write(protocol.SigLogin, 1, (&protocol.Login{AppID: "demo", DID: did, Token: tok}).Append(nil)); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	var rbuf []byte
	f, rbuf, err := protocol.ReadFrame(c, 1<<20, rbuf)
	var la protocol.LoginAck
	if err != nil || f.Signal != protocol.SigLoginAck || la.Decode(f.Body) != nil || la.Code != protocol.CodeOK {
		c.Close()
		return nil, fmt.Errorf("%s login: %v (signal %s, code %d %s)", did, err, f.Signal, la.Code, la.Message)
	}
	_ = c.SetReadDeadline(time.Time{})
	type answer struct {
		seq  uint64
		code protocol.Code
	}
	answers := make(chan answer, 16)
	var closing atomic.Bool
	go func() {
		for {
			f, rb, err := protocol.ReadFrame(c, 1<<20, rbuf)
			rbuf = rb
			if err != nil || f.Signal == protocol.SigClose || f.Signal == protocol.SigRedirect {
				if !closing.Load() {
					d.dropped.Add(1)
				}
				return
			}
			switch f.Signal {
			case protocol.SigUplinkAck:
				var a protocol.Ack
				_ = a.Decode(f.Body)
				answers <- answer{f.Seq, a.Code}
			case protocol.SigDownlink:
				var dl protocol.Downlink
				if dl.Decode(f.Body) == nil {
					d.mu.Lock()
					d.got[dl.MsgID] = true
					d.mu.Unlock()
				}
				_ = write(protocol.SigDownlinkAck, f.Seq, nil)
			}
		}
	}()
	t.Cleanup(func() { closing.Store(true); c.Close() })
	var seq uint64 = 1
	d.send = func(ctx context.Context, payload []byte) error {
		seq++
		if err := write(protocol.SigUplink, seq, payload); err != nil {
			return err
		}
		for {
			select {
			case a := <-answers:
				if a.seq != seq {
					continue // the answer to an uplink given up on
				}
				if a.code != protocol.CodeOK {
					return fmt.Errorf("uplink answered %d", a.code)
				}
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return d, nil
}
