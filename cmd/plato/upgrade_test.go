package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
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

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

var reUpgraded = regexp.MustCompile(`upgraded: new pid (\d+)`)

// upgradeDevice is one device of the upgrade test: what it sent and got ACKed, what it received,
// and whether its connection ever changed state.
type upgradeDevice struct {
	did string
	c   *client.Client // nil for a WebSocket device
	// send sends an uplink and waits for its answer: nil when it was ACKed 0.
	send func(ctx context.Context, payload []byte) error
	mu   sync.Mutex
	// acked are the uplinks ACKed 0: each must reach the business.
	acked []string
	got   map[uint64]bool
	// lastOK is when an uplink was last ACKed; answeredAfter counts upgrades after which one was.
	answered atomic.Int64
	// dropped counts every state change after the login: a close, a reconnect.
	dropped atomic.Int64
}

// pidAlive reports whether pid runs (a zombie does not).
func pidAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

// TestGatewayUpgradesUnderLoad upgrades a gateway process in place three times in a row (kill
// -USR2 once, `plato gateway upgrade` twice) while its devices send uplinks and a business pushes
// at-least-once downlinks to them, a few of them on the WebSocket transport. No device notices: no
// connection closes, no device logs in again, no ACKed uplink or accepted push is lost, every
// device is answered after each upgrade, and the pid changes each time.
func TestGatewayUpgradesUnderLoad(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 200
	}
	if v, err := strconv.Atoi(os.Getenv("PLATO_UPGRADE_TEST_DEVICES")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	stAddr := freePort(t)
	cfg, biz := startShared(t, fmt.Sprintf("state: {addr: %q}\n", stAddr))
	dataDir := t.TempDir()
	st := startProc(t, "state", "state", "--config", cfg, "--data-dir", dataDir)
	st.waitLine(reRunning)
	gw := startProc(t, "gateway", "gateway", "--config", cfg, "--data-dir", dataDir, "--addr", "127.0.0.1:0")
	gwAddr := gw.waitLine(reGateway)
	pid := gw.cmd.Process.Pid
	t.Cleanup(func() {
		// The last process is not the test's child: stop it by pid.
		if pid != gw.cmd.Process.Pid && pidAlive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	plato := platformtest.StateClient(t, stAddr)
	caller := platformtest.Caller("demo")
	signer, err := token.NewSigner([]byte(platformtest.Secret), time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	devs := make([]*upgradeDevice, n)
	dids := make([]string, n)
	var dialWG sync.WaitGroup
	var dialErr atomic.Value
	sem := make(chan struct{}, 32)
	for i := range devs {
		d := &upgradeDevice{did: fmt.Sprintf("up-%04d", i), got: map[uint64]bool{}}
		devs[i], dids[i] = d, d.did
		dialWG.Add(1)
		sem <- struct{}{}
		go func() {
			defer dialWG.Done()
			defer func() { <-sem }()
			tok, _ := signer.Issue("demo", d.did, d.did, time.Now(), time.Time{})
			dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			c, err := client.Dial(dctx, client.Config{
				Endpoints: []string{gwAddr}, Token: tok, AppID: "demo", DID: d.did, LoginTimeout: 30 * time.Second,
				AckTimeout: 30 * time.Second,
				OnDownlink: func(m client.Message) {
					d.mu.Lock()
					d.got[m.MsgID] = true
					d.mu.Unlock()
				},
				OnState: func(s client.State) {
					// Anything but the first attempt and its login is the connection lost.
					if s.Kind == client.Disconnected || s.Kind == client.Resumed || (s.Kind == client.Connecting && s.Attempt > 1) {
						d.dropped.Add(1)
					}
				},
			})
			if err != nil {
				dialErr.Store(fmt.Errorf("dial %s: %w", d.did, err))
				return
			}
			d.c, d.send = c, c.Send
		}()
	}
	dialWG.Wait()
	if err, _ := dialErr.Load().(error); err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		t.Cleanup(func() { d.c.Close() })
	}
	// Some devices on the WebSocket transport, whose listener and connections are passed too.
	wsURL := gw.waitLine(reWebSocket)
	for i := range max(n/100, 5) {
		d, err := dialWSLoadDevice(t, wsURL, signer, fmt.Sprintf("up-ws-%03d", i))
		if err != nil {
			t.Fatal(err)
		}
		devs, dids = append(devs, d), append(dids, d.did)
	}
	t.Logf("%d devices logged in, %d of them over WebSocket", len(devs), len(devs)-n)

	// Light load: every device sends an uplink about every 2 s; a pusher sends at-least-once
	// pushes to random devices.
	var upgrades atomic.Int64
	stop := make(chan struct{})
	var load sync.WaitGroup
	for i, d := range devs {
		load.Add(1)
		go func() {
			defer load.Done()
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(i%2000) * time.Millisecond):
			}
			for k := 0; ; k++ {
				gen := upgrades.Load()
				payload := fmt.Sprintf("%s#%d", d.did, k)
				sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := d.send(sctx, []byte(payload))
				cancel()
				if err == nil {
					d.mu.Lock()
					d.acked = append(d.acked, payload)
					d.mu.Unlock()
					if d.answered.Load() < gen {
						d.answered.Store(gen)
					}
				}
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Second):
				}
			}
		}()
	}
	type sent struct {
		did   string
		msgID uint64
	}
	var pushMu sync.Mutex
	var pushed []sent
	load.Add(1)
	go func() {
		defer load.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			did := dids[rand.IntN(len(dids))]
			resp, err := plato.Push(ctx, &api.PushRequest{Caller: caller, Dids: []string{did}, Payload: []byte("p"), Qos: api.QoS_AT_LEAST_ONCE})
			if err != nil {
				continue
			}
			for _, tg := range resp.Targets {
				if tg.Status == api.PushStatus_SENT || tg.Status == api.PushStatus_QUEUED {
					pushMu.Lock()
					pushed = append(pushed, sent{tg.Did, uint64(resp.MsgId)})
					pushMu.Unlock()
				}
			}
		}
	}()

	time.Sleep(2 * time.Second)
	for round := 1; round <= 3; round++ {
		old := pid
		roundStart := time.Now()
		if round == 1 {
			if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
				t.Fatal(err)
			}
			m := gw.waitLine(reUpgraded)
			pid, _ = strconv.Atoi(m)
		} else {
			out, err := exec.Command(platoBinary(t), "gateway", "upgrade", "--pid", strconv.Itoa(old), "--config", cfg, "--data-dir", dataDir).CombinedOutput()
			if err != nil {
				t.Fatalf("upgrade %d: %v\n%s", round, err, out)
			}
			t.Logf("upgrade %d: %s", round, strings.TrimSpace(string(out)))
			m := regexp.MustCompile(`-> (\d+)`).FindStringSubmatch(string(out))
			if m == nil {
				t.Fatalf("upgrade %d printed no new pid: %s", round, out)
			}
			pid, _ = strconv.Atoi(m[1])
		}
		t.Logf("upgrade %d: command done after %v", round, time.Since(roundStart))
		if pid == old || pid == 0 {
			t.Fatalf("upgrade %d: pid %d -> %d", round, old, pid)
		}
		poll.Within(t, 60*time.Second, "the old gateway process to exit", func() bool { return !pidAlive(old) })
		t.Logf("upgrade %d: old process gone after %v", round, time.Since(roundStart))
		upgrades.Store(int64(round))
		poll.Within(t, 60*time.Second, fmt.Sprintf("every device answered after upgrade %d", round), func() bool {
			for _, d := range devs {
				if d.answered.Load() < int64(round) {
					return false
				}
			}
			return true
		})
		t.Logf("upgrade %d: pid %d -> %d, every device answered since", round, old, pid)
	}
	close(stop)
	load.Wait()

	// 0 connections closed.
	dropped := 0
	for _, d := range devs {
		dropped += int(d.dropped.Load())
	}
	if dropped > 0 {
		t.Errorf("%d connection state changes (closes, reconnects) during the upgrades, want 0", dropped)
	}
	// 0 re-logins: one CONNECTED per device, no DISCONNECTED.
	if c := len(biz.Events(api.EventKind_CONNECTED, "")); c != len(devs) {
		t.Errorf("%d CONNECTED events, want %d: devices logged in again", c, len(devs))
	}
	if dc := len(biz.Events(api.EventKind_DISCONNECTED, "")); dc != 0 {
		t.Errorf("%d DISCONNECTED events, want 0", dc)
	}
	// 0 ACKed uplinks lost.
	poll.Within(t, 30*time.Second, "every ACKed uplink at the business", func() bool {
		delivered := map[string]bool{}
		for _, ev := range biz.Events(api.EventKind_UPLINK, "") {
			delivered[string(ev.Payload)] = true
		}
		for _, d := range devs {
			d.mu.Lock()
			for _, p := range d.acked {
				if !delivered[p] {
					d.mu.Unlock()
					return false
				}
			}
			d.mu.Unlock()
		}
		return true
	})
	// 0 accepted at-least-once pushes lost.
	pushMu.Lock()
	defer pushMu.Unlock()
	if len(pushed) == 0 {
		t.Fatal("no push was accepted")
	}
	byDID := map[string]*upgradeDevice{}
	for _, d := range devs {
		byDID[d.did] = d
	}
	missing := 0
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		missing = 0
		for _, p := range pushed {
			d := byDID[p.did]
			d.mu.Lock()
			ok := d.got[p.msgID]
			d.mu.Unlock()
			if !ok {
				missing++
				if time.Now().Add(time.Second).After(deadline) {
					t.Logf("push %d to %s missing", p.msgID, p.did)
				}
			}
		}
		if missing == 0 {
			break
		}
		time.Sleep(time.Second)
	}
	if missing > 0 {
		t.Errorf("%d of %d accepted pushes never arrived; gateway log:\n%s\nstate log:\n%s", missing, len(pushed), gw.stderr(), st.stderr())
	}
	if und := len(biz.Events(api.EventKind_UNDELIVERED, "")); und != 0 {
		t.Errorf("%d pushes reported undelivered, want 0", und)
	}
	t.Logf("%d pushes, all delivered", len(pushed))
	_ = syscall.Kill(pid, syscall.SIGINT)
	poll.Within(t, 30*time.Second, "the last gateway process to stop", func() bool { return !pidAlive(pid) })
	// The first process exited long ago; its output ends with the last one's.
	select {
	case err := <-gw.exit:
		if err != nil {
			t.Errorf("the first gateway process exited with %v after its upgrade", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the gateway processes' output did not end")
	}
	st.interrupt()
}

// TestGatewayUpgradeRefused breaks the gateway's config file, so that the new process of an
// upgrade cannot start: `plato gateway upgrade` fails with the reason, the old process keeps
// serving its device and takes new ones; once the file is fixed, the upgrade goes through.
func TestGatewayUpgradeRefused(t *testing.T) {
	ctx := context.Background()
	stAddr := freePort(t)
	cfg, biz := startShared(t, fmt.Sprintf("state: {addr: %q}\n", stAddr))
	good, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	st := startProc(t, "state", "state", "--config", cfg, "--data-dir", dataDir)
	st.waitLine(reRunning)
	gw := startProc(t, "gateway", "gateway", "--config", cfg, "--data-dir", dataDir)
	gwAddr := gw.waitLine(reGateway)
	pid := gw.cmd.Process.Pid
	signer, err := token.NewSigner([]byte(platformtest.Secret), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(did string) *client.Client {
		t.Helper()
		tok, _ := signer.Issue("demo", did, did, time.Now(), time.Time{})
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		c, err := client.Dial(dctx, client.Config{Endpoints: []string{gwAddr}, Token: tok, AppID: "demo", DID: did, LoginTimeout: 20 * time.Second})
		if err != nil {
			t.Fatalf("dial %s: %v", did, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	send := func(c *client.Client, what string) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := c.Send(sctx, []byte(what)); err != nil {
			t.Fatalf("send %s: %v", what, err)
		}
	}
	before := dial("before")
	send(before, "one")

	if err := os.WriteFile(cfg, []byte("gateway: [not, a, map\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	control := filepath.Join(dataDir, "gateway-"+strconv.Itoa(pid)+".ctl")
	out, err := exec.Command(platoBinary(t), "gateway", "upgrade", "--control", control).CombinedOutput()
	if err == nil {
		t.Fatalf("plato gateway upgrade succeeded with a broken config:\n%s", out)
	}
	if !strings.Contains(string(out), "upgrade refused") || !strings.Contains(string(out), "config") {
		t.Errorf("plato gateway upgrade failed without saying the config is the reason:\n%s", out)
	}
	t.Logf("refused: %s", strings.TrimSpace(string(out)))
	if !pidAlive(pid) {
		t.Fatal("the old gateway process exited after a refused upgrade")
	}
	// It serves as before: its device and a new one.
	send(before, "two")
	after := dial("after")
	send(after, "three")

	if err := os.WriteFile(cfg, good, 0o644); err != nil {
		t.Fatal(err)
	}
	next := upgradeGateway(t, dataDir, pid) // the config fixed, the same upgrade goes through
	poll.Within(t, 30*time.Second, "the old gateway process to exit", func() bool { return !pidAlive(pid) })
	send(before, "four")
	send(after, "five")
	if c := len(biz.Events(api.EventKind_CONNECTED, "")); c != 2 {
		t.Errorf("%d CONNECTED events, want 2", c)
	}
	_ = syscall.Kill(next, syscall.SIGINT)
	poll.Within(t, 30*time.Second, "the new gateway process to stop", func() bool { return !pidAlive(next) })
	select {
	case <-gw.exit:
	case <-time.After(30 * time.Second):
		t.Error("the gateway processes' output did not end")
	}
	st.interrupt()
}

// TestGatewayUpgradeMidFrame upgrades a gateway while a raw device has sent only part of a frame
// (the header and half the body of an uplink): the old process reads those bytes, the new one
// gets them with the socket, and the rest, sent after the upgrade, completes the frame. The
// uplink is answered 0 and reaches the business whole; the connection lives on.
func TestGatewayUpgradeMidFrame(t *testing.T) {
	stAddr := freePort(t)
	cfg, biz := startShared(t, fmt.Sprintf("state: {addr: %q}\n", stAddr))
	dataDir := t.TempDir()
	st := startProc(t, "state", "state", "--config", cfg, "--data-dir", dataDir)
	st.waitLine(reRunning)
	gw := startProc(t, "gateway", "gateway", "--config", cfg, "--data-dir", dataDir)
	gwAddr := gw.waitLine(reGateway)
	pid := gw.cmd.Process.Pid
	signer, err := token.NewSigner([]byte(platformtest.Secret), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.DialTimeout("tcp", gwAddr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var rbuf []byte
	next := func(want protocol.Signal) protocol.Frame {
		t.Helper()
		_ = nc.SetReadDeadline(time.Now().Add(20 * time.Second))
		for {
			var f protocol.Frame
			f, rbuf, err = protocol.ReadFrame(nc, 1<<20, rbuf)
			if err != nil {
				t.Fatalf("reading %s: %v", want, err)
			}
			if f.Signal == want {
				return f
			}
			if f.Signal == protocol.SigClose {
				t.Fatalf("closed while waiting for %s", want)
			}
		}
	}
	tok, _ := signer.Issue("demo", "raw", "raw", time.Now(), time.Time{})
	login := (&protocol.Login{AppID: "demo", DID: "raw", Token: tok}).Append(nil)
	if _, err := nc.Write(protocol.AppendFrame(nil, protocol.SigLogin, 0, 1, login)); err != nil {
		t.Fatal(err)
	}
	var la protocol.LoginAck
	if f := next(protocol.SigLoginAck); la.Decode(f.Body) != nil || la.Code != protocol.CodeOK {
		t.Fatalf("LoginAck %d %s", la.Code, la.Message)
	}
	payload := []byte(strings.Repeat("split across two processes ", 40))
	frame := protocol.AppendFrame(nil, protocol.SigUplink, 0, 2, payload)
	cut := protocol.HeaderLen + len(payload)/2
	if _, err := nc.Write(frame[:cut]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the old process has read them and waits for the rest
	newPID := upgradeGateway(t, dataDir, pid)
	poll.Within(t, 30*time.Second, "the old gateway process to exit", func() bool { return !pidAlive(pid) })
	if _, err := nc.Write(frame[cut:]); err != nil {
		t.Fatal(err)
	}
	var ack protocol.Ack
	if f := next(protocol.SigUplinkAck); ack.Decode(f.Body) != nil || ack.Code != protocol.CodeOK || f.Seq != 2 {
		t.Fatalf("UplinkAck seq %d code %d %s, want seq 2 code 0", f.Seq, ack.Code, ack.Message)
	}
	// A frame sent whole after the upgrade too, and heartbeats, on the same connection.
	if _, err := nc.Write(protocol.AppendFrame(nil, protocol.SigUplink, 0, 3, []byte("after"))); err != nil {
		t.Fatal(err)
	}
	if f := next(protocol.SigUplinkAck); f.Seq != 3 {
		t.Fatalf("UplinkAck seq %d, want 3", f.Seq)
	}
	poll.Within(t, 20*time.Second, "both uplinks at the business", func() bool {
		got := map[string]bool{}
		for _, ev := range biz.Events(api.EventKind_UPLINK, "") {
			got[string(ev.Payload)] = true
		}
		return got[string(payload)] && got["after"]
	})
	if c := len(biz.Events(api.EventKind_CONNECTED, "")); c != 1 {
		t.Errorf("%d CONNECTED events, want 1", c)
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
