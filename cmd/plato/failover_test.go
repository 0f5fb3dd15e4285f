package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/natsd"
	"github.com/platoim/plato/internal/testkit"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/token"
)

// startShared starts what the processes of a fleet test share: NATS, in this process, and a
// business server recording what it gets. It returns their config file (a 3 s registry TTL, the
// test apps served by that business server, then extra) and the business server.
func startShared(t *testing.T, extra string) (string, *platformtest.Business) {
	t.Helper()
	ns, err := natsd.Start(context.Background(), natsd.Config{Host: "127.0.0.1", Port: 0, StoreDir: t.TempDir()}, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	biz := platformtest.StartBusiness(t)
	return writeConfig(t, fmt.Sprintf("{url: %q}", ns.ClientURL()), "registry: {ttl: 3s}\n"+extra+appsYAML(biz.Addr, biz.Addr)), biz
}

// failoverDevice is one logged-in device under load: what it sent and got ACKed, what it received.
type failoverDevice struct {
	did string
	c   *client.Client
	mu  sync.Mutex
	// acked are the uplinks the platform ACKed (code 0): each must reach the business.
	acked []string
	// okAfterKill is set by the first uplink sent after the kill and ACKed.
	okAfterKill atomic.Bool
	got         map[uint64]bool // msg IDs received
}

// TestStateServerKilledUnderLoad runs two state servers and a gateway as processes, loads them
// with uplinks and at-least-once pushes from 60 devices bound to a session, kills one state server
// with SIGKILL, and checks that its devices carry on through the other without reconnecting: no
// ACKed uplink lost, no binding lost, every device answered, no DISCONNECTED for a connection that
// lived on and exactly one for each that ended, every at-least-once push delivered or reported.
func TestStateServerKilledUnderLoad(t *testing.T) {
	ctx := context.Background()
	cfg, biz := startShared(t, "")
	st1Addr, st2Addr := freePort(t), freePort(t)
	st1 := startProcEnv(t, "state-1", []string{"PLATO_STATE__ID=state-1", "PLATO_STATE__ADDR=" + st1Addr}, "state", "--config", cfg)
	st1.waitLine(reRunning)
	st2 := startProcEnv(t, "state-2", []string{"PLATO_STATE__ID=state-2", "PLATO_STATE__ADDR=" + st2Addr}, "state", "--config", cfg)
	st2.waitLine(reRunning)
	gw := startProc(t, "gateway", "gateway", "--config", cfg)
	gwAddr := gw.waitLine(reGateway)
	plato := platformtest.StateClient(t, st2Addr)
	caller := platformtest.Caller("demo")

	signer, err := token.NewSigner([]byte(platformtest.Secret), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	devs := make([]*failoverDevice, n)
	dids := make([]string, n)
	for i := range devs {
		d := &failoverDevice{did: fmt.Sprintf("dev-%02d", i), got: map[uint64]bool{}}
		tok, _ := signer.Issue("demo", d.did, d.did, time.Now(), time.Time{})
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		d.c, err = client.Dial(dctx, client.Config{
			Endpoints: []string{gwAddr}, Token: tok, AppID: "demo", DID: d.did, LoginTimeout: 20 * time.Second,
			Reconnect: true, // it never needs to: the gateway moves the connection
			OnDownlink: func(m client.Message) {
				d.mu.Lock()
				d.got[m.MsgID] = true
				d.mu.Unlock()
			},
		})
		cancel()
		if err != nil {
			t.Fatalf("dial %s: %v", d.did, err)
		}
		t.Cleanup(func() { d.c.Close() })
		devs[i], dids[i] = d, d.did
	}
	if _, err := plato.Bind(ctx, &api.BindRequest{Caller: caller, Session: "team", Dids: dids}); err != nil {
		t.Fatal(err)
	}
	online := func() int {
		resp, err := plato.Online(ctx, &api.OnlineRequest{Caller: caller, Session: "team"})
		if err != nil {
			return -1
		}
		return len(resp.Devices)
	}
	if m := online(); m != n {
		t.Fatalf("%d devices online in the session before the kill, want %d", m, n)
	}

	// Load: every device sends uplinks one after the other, a pusher sends at-least-once pushes.
	var killed atomic.Bool
	stop := make(chan struct{})
	var load sync.WaitGroup
	for _, d := range devs {
		load.Add(1)
		go func() {
			defer load.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				after := killed.Load()
				payload := fmt.Sprintf("%s#%d", d.did, i)
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := d.c.Send(sctx, []byte(payload))
				cancel()
				if err == nil {
					d.mu.Lock()
					d.acked = append(d.acked, payload)
					d.mu.Unlock()
					if after {
						d.okAfterKill.Store(true)
					}
				}
				time.Sleep(20 * time.Millisecond)
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
			case <-time.After(10 * time.Millisecond):
			}
			did := dids[rand.IntN(n)]
			resp, err := plato.Push(ctx, &api.PushRequest{Caller: caller, Dids: []string{did}, Payload: []byte("p"), Qos: api.QoS_AT_LEAST_ONCE})
			if err != nil {
				continue
			}
			for _, tg := range resp.Targets {
				// SENT or QUEUED means accepted: it must arrive or be reported undelivered.
				if tg.Status == api.PushStatus_SENT || tg.Status == api.PushStatus_QUEUED {
					pushMu.Lock()
					pushed = append(pushed, sent{tg.Did, uint64(resp.MsgId)})
					pushMu.Unlock()
				}
			}
		}
	}()

	time.Sleep(time.Second)
	if err := st1.cmd.Process.Kill(); err != nil { // SIGKILL: no goodbye, the registry entry stays
		t.Fatal(err)
	}
	killed.Store(true)
	killedAt := time.Now()
	poll.Within(t, 30*time.Second, "every device to get an uplink through after the kill", func() bool {
		for _, d := range devs {
			if !d.okAfterKill.Load() {
				return false
			}
		}
		return true
	})
	t.Logf("every device working again %v after the kill", time.Since(killedAt).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond) // some load after recovery
	close(stop)
	load.Wait()

	// 0 acknowledged uplinks lost.
	delivered := map[string]bool{}
	for _, ev := range biz.Events(api.EventKind_UPLINK, "") {
		delivered[string(ev.Payload)] = true
	}
	lost, total := 0, 0
	for _, d := range devs {
		d.mu.Lock()
		for _, p := range d.acked {
			total++
			if !delivered[p] {
				lost++
			}
		}
		d.mu.Unlock()
	}
	if lost > 0 || total == 0 {
		t.Errorf("%d of %d ACKed uplinks never reached the business", lost, total)
	}
	// 0 bindings lost. (Calls fail, to be retried, while the dead server's devices may still be on
	// their way: a couple of seconds.)
	poll.Within(t, 20*time.Second, "every device online in the session after the kill", func() bool { return online() == n })
	// No device logged in again; nothing ended, so no DISCONNECTED.
	if c := len(biz.Events(api.EventKind_CONNECTED, "")); c != n {
		t.Errorf("%d CONNECTED events, want %d: devices had to log in again", c, n)
	}
	if dc := len(biz.Events(api.EventKind_DISCONNECTED, "")); dc != 0 {
		t.Errorf("%d DISCONNECTED events for connections that lived on", dc)
	}
	// Every accepted at-least-once push arrived or was reported.
	pushMu.Lock()
	defer pushMu.Unlock()
	byDID := map[string]*failoverDevice{}
	for _, d := range devs {
		byDID[d.did] = d
	}
	poll.Within(t, 30*time.Second, "every accepted push delivered or reported undelivered", func() bool {
		undelivered := map[uint64]bool{}
		for _, ev := range biz.Events(api.EventKind_UNDELIVERED, "") {
			undelivered[uint64(ev.MsgId)] = true
		}
		for _, p := range pushed {
			d := byDID[p.did]
			d.mu.Lock()
			ok := d.got[p.msgID]
			d.mu.Unlock()
			if !ok && !undelivered[p.msgID] {
				return false
			}
		}
		return true
	})
	if len(pushed) == 0 {
		t.Error("no push was accepted")
	}

	// A device that leaves now ends once; the others live on.
	devs[0].c.Close()
	biz.WaitEvents(t, api.EventKind_DISCONNECTED, devs[0].did, 1)

	// The killed state server restarts: it takes new logins again, and the gateway moves nothing.
	st1 = startProcEnv(t, "state-1 again", []string{"PLATO_STATE__ID=state-1", "PLATO_STATE__ADDR=" + st1Addr}, "state", "--config", cfg)
	st1.waitLine(reRunning)
	var late []*client.Client
	poll.Within(t, 30*time.Second, "new devices to log in after the restart", func() bool {
		did := fmt.Sprintf("late-%d", len(late))
		tok, _ := signer.Issue("demo", did, did, time.Now(), time.Time{})
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, err := client.Dial(dctx, client.Config{Endpoints: []string{gwAddr}, Token: tok, AppID: "demo", DID: did, LoginTimeout: 10 * time.Second})
		if err != nil {
			return false
		}
		late = append(late, c)
		return c.Send(dctx, []byte("hello")) == nil && len(late) >= 4
	})
	for _, c := range late {
		c.Close()
	}
	if dc := len(biz.Events(api.EventKind_DISCONNECTED, devs[0].did)); dc != 1 {
		t.Errorf("%d DISCONNECTED for the device that left, want exactly 1", dc)
	}
	for _, d := range devs[1:] {
		if dc := len(biz.Events(api.EventKind_DISCONNECTED, d.did)); dc != 0 {
			t.Errorf("%s: %d DISCONNECTED, but it lives on", d.did, dc)
		}
	}
	st2.interrupt()
	st1.interrupt()
	gw.interrupt()
}

// TestSDKResumesThroughAGatewayRestart kills the gateway process with SIGKILL and starts it again
// on the same address: devices using the SDK with Reconnect come back by themselves and Resume, so
// the business sees RESUMED and no DISCONNECTED, a push sent while they were away arrives, and
// uplinks flow again.
func TestSDKResumesThroughAGatewayRestart(t *testing.T) {
	ctx := context.Background()
	stAddr, gwAddr := freePort(t), freePort(t)
	cfg, biz := startShared(t, fmt.Sprintf("state: {addr: %q}\n", stAddr))
	st := startProc(t, "state", "state", "--config", cfg)
	st.waitLine(reRunning)
	gwEnv := []string{"PLATO_GATEWAY__ADDR=" + gwAddr}
	gw := startProcEnv(t, "gateway", gwEnv, "gateway", "--config", cfg)
	gw.waitLine(reGateway)
	plato := platformtest.StateClient(t, stAddr)

	signer, err := token.NewSigner([]byte(platformtest.Secret), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	type dev struct {
		did    string
		c      *client.Client
		states chan client.State
	}
	devs := make([]*dev, n)
	for i := range devs {
		d := &dev{did: fmt.Sprintf("phone-%d", i), states: make(chan client.State, 64)}
		tok, _ := signer.Issue("demo", d.did, d.did, time.Now(), time.Time{})
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		d.c, err = client.Dial(dctx, client.Config{
			Endpoints: []string{gwAddr}, Token: tok, AppID: "demo", DID: d.did, LoginTimeout: 20 * time.Second,
			Reconnect: true, ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second,
			OnState: func(s client.State) {
				select {
				case d.states <- s:
				default:
				}
			},
		})
		cancel()
		if err != nil {
			t.Fatalf("dial %s: %v", d.did, err)
		}
		t.Cleanup(func() { d.c.Close() })
		devs[i] = d
	}
	if err := gw.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-gw.exit
	// While the gateway is down: a push for the first device is kept for it.
	resp, err := plato.Push(ctx, &api.PushRequest{Caller: platformtest.Caller("demo"), Dids: []string{devs[0].did}, Payload: []byte("while away"), Qos: api.QoS_AT_LEAST_ONCE})
	if err != nil || resp.Targets[0].Status != api.PushStatus_QUEUED {
		t.Fatalf("push while the gateway is down: %+v %v, want QUEUED", resp, err)
	}
	gw = startProcEnv(t, "gateway again", gwEnv, "gateway", "--config", cfg)
	gw.waitLine(reGateway)
	for _, d := range devs {
		poll.Within(t, 30*time.Second, d.did+" to resume", func() bool {
			for {
				select {
				case s := <-d.states:
					if s.Kind == client.Resumed {
						return true
					}
				default:
					return false
				}
			}
		})
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := d.c.Send(sctx, []byte("back")); err != nil {
			t.Errorf("%s sending after the restart: %v", d.did, err)
		}
		cancel()
	}
	select {
	case m := <-devs[0].c.Messages():
		if string(m.Payload) != "while away" || m.MsgID != uint64(resp.MsgId) {
			t.Errorf("first device got %q (msg %d), want the push sent while away (msg %d)", m.Payload, m.MsgID, resp.MsgId)
		}
	case <-time.After(20 * time.Second):
		t.Error("the push sent while the gateway was down never arrived")
	}
	biz.WaitEvents(t, api.EventKind_RESUMED, "", n)
	if c := len(biz.Events(api.EventKind_CONNECTED, "")); c != n {
		t.Errorf("%d CONNECTED events, want %d: devices had to log in again", c, n)
	}
	if dc := len(biz.Events(api.EventKind_DISCONNECTED, "")); dc != 0 {
		t.Errorf("%d DISCONNECTED events, but every device resumed", dc)
	}
	gw.interrupt()
	st.interrupt()
}
