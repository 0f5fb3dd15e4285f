package platform_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudwego/kitex/client/callopt"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	stateservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/state"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	apiservice "github.com/platoim/plato/sdk/business/rpc/plato/api/plato"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

// sessionPipeline is the reference pipeline for sessions, with real plugin processes: sessionbind
// asks the business server at login, qosroute broadcasts sessions of at least 100 members, and
// retransmit makes at-least-once pushes resend, with retransmitCfg (the stage's config).
func sessionPipeline(bins map[string]string, retransmitCfg string) string {
	return fmt.Sprintf(`version: 1
stages:
  - name: sessionbind
    plugin: %s
    signals: [login]
    timeout: 5s
    on_failure: fail_closed
    config: {timeout: 4s, on_failure: refuse}
  - name: qosroute
    plugin: %s
    signals: [route]
    timeout: 5s
    on_failure: fail_open
    config: {broadcast_min_members: 100}
  - name: retransmit
    plugin: %s
    signals: [retransmit]
    timeout: 5s
    on_failure: fail_open
    config: %s
`, bins["sessionbind"], bins["qosroute"], bins["retransmit"], retransmitCfg)
}

// twoGateways is a platform (NATS, state, gateway 1) plus a second gateway process-alike on the
// same NATS, with the session pipeline.
type twoGateways struct {
	p   *platform.Platform
	gw2 *platform.Platform
	biz *platformtest.Business
	api apiservice.Client
	eps []string
}

// retransmitDefault resends after 2s, 4s: a device that does not ACK is reported undelivered
// after about 6s.
const retransmitDefault = "{initial_backoff: 2s, max_backoff: 4s, max_attempts: 3}"

// retransmitEager resends so soon that its timers run out while a push to 1,000 devices is still
// in the pipeline, as a 2s timer does on a loaded machine: that once let a resend overtake its
// original, and the device delivered the message twice.
const retransmitEager = "{initial_backoff: 20ms, max_backoff: 40ms, max_attempts: 3}"

func startTwoGateways(t *testing.T) *twoGateways {
	t.Helper()
	return startTwoGatewaysWith(t, retransmitDefault)
}

func startTwoGatewaysWith(t *testing.T, retransmitCfg string) *twoGateways {
	t.Helper()
	bins := map[string]string{}
	for _, n := range []string{"sessionbind", "qosroute", "retransmit"} {
		bins[n] = platformtest.BuildPlugin(t, "plugins/"+n)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "default.yaml"), []byte(sessionPipeline(bins, retransmitCfg)), 0o644); err != nil {
		t.Fatal(err)
	}
	biz := platformtest.StartBusiness(t)
	cfg := platformtest.Config(t)
	platformtest.SetBusiness(&cfg, biz.Addr)
	cfg.Pipeline.Dir = dir
	cfg.Pipeline.PluginDir = filepath.Dir(bins["qosroute"])
	cfg.Gateway.ID = "gw-1"
	cfg.State.PushTimeout = 60 * time.Second // wait_ack of 1,000 devices on a loaded test machine
	p := platformtest.Start(t, cfg, platform.RoleNATS, platform.RoleState, platform.RoleGateway)

	cfg2 := platformtest.Config(t)
	cfg2.NATS.URL = p.NATS.ClientURL()
	cfg2.Gateway.ID = "gw-2"
	cfg2.Admin.Addr = ""
	gw2 := platformtest.Start(t, cfg2, platform.RoleGateway)
	poll.Within(t, 10*time.Second, "the state server to know both gateways", func() bool {
		return len(p.State.Gateways()) == 2
	})
	return &twoGateways{
		p: p, gw2: gw2, biz: biz, api: platformtest.StateClient(t, p.State.Addr()),
		eps: []string{p.Gateway.Addr(), gw2.Gateway.Addr()},
	}
}

// device is one logged-in test device and everything it received.
type device struct {
	did string
	c   *client.Client
	mu  sync.Mutex
	got map[uint64]int // msg ID -> copies delivered
}

func (d *device) copies(msgID uint64) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.got[msgID]
}

func (tg *twoGateways) dial(t *testing.T, app, did string, gw int) *device {
	t.Helper()
	signer, err := token.NewSigner([]byte(platformtest.Secret), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := signer.Issue(app, did, "u-"+did, time.Now(), time.Time{})
	d := &device{did: did, got: map[uint64]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d.c, err = client.Dial(ctx, client.Config{
		Endpoints: []string{tg.eps[gw]}, Token: tok, AppID: app, DID: did, UID: "u-" + did,
		LoginTimeout: 20 * time.Second,
		OnDownlink: func(m client.Message) {
			d.mu.Lock()
			d.got[m.MsgID]++
			d.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatalf("dial %s/%s: %v", app, did, err)
	}
	t.Cleanup(func() { d.c.Close() })
	return d
}

// dialMany logs n devices of app in, alternating between the gateways, a few at a time.
func (tg *twoGateways) dialMany(t *testing.T, app string, n int) []*device {
	t.Helper()
	devs := make([]*device, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range devs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			devs[i] = tg.dial(t, app, fmt.Sprintf("dev-%d", i), i%2)
		}()
	}
	wg.Wait()
	return devs
}

// roomsOf is the business's answer to the Sessions callback: every device is in "big"; the
// first 99 in "r99", the first 100 in "r100".
func roomsOf(req *api.SessionsRequest) []string {
	var i int
	if _, err := fmt.Sscanf(req.Did, "dev-%d", &i); err != nil {
		return nil
	}
	rooms := []string{"big"}
	if i < 99 {
		rooms = append(rooms, "r99")
	}
	if i < 100 {
		rooms = append(rooms, "r100")
	}
	return rooms
}

func (tg *twoGateways) push(t *testing.T, req *api.PushRequest) *api.PushResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := tg.api.Push(ctx, req, callopt.WithRPCTimeout(60*time.Second))
	if err != nil {
		t.Fatalf("push %+v: %v", req, err)
	}
	return resp
}

// members is what both gateways' local indexes hold for a session, as did -> count.
func (tg *twoGateways) localMembers(app, session string, byConn map[string]string) map[string]int {
	out := map[string]int{}
	for i, gw := range []*platform.Platform{tg.p, tg.gw2} {
		for _, id := range gw.Gateway.SessionMembers(app, session) {
			out[byConn[fmt.Sprintf("%d/%d", i, id)]]++
		}
	}
	return out
}

// online is the state server's view of a session, as a sorted did list.
func (tg *twoGateways) online(t *testing.T, app, session string) []string {
	t.Helper()
	resp, err := tg.api.Online(context.Background(), &api.OnlineRequest{Caller: platformtest.Caller(app), Session: session})
	if err != nil {
		t.Fatalf("online %s: %v", session, err)
	}
	var dids []string
	for _, d := range resp.Devices {
		dids = append(dids, d.Did)
	}
	slices.Sort(dids)
	return dids
}

// checkIndex fails when the state server's index of a session holds more than Online shows (a
// closed connection left behind). Call it when no device of the session is logging in.
func (tg *twoGateways) checkIndex(t *testing.T, app, session string) {
	t.Helper()
	online := tg.online(t, app, session)
	index := tg.p.State.SessionMembers(app, session)
	slices.Sort(index)
	if !slices.Equal(index, online) {
		t.Fatalf("session %s: the state server's index holds %v, Online shows %v", session, index, online)
	}
}

// waitDelivered waits until every device in devs has msgID, then a little longer, and fails on
// any device with a count other than want.
func waitDelivered(t *testing.T, devs []*device, msgID uint64, want int) {
	t.Helper()
	poll.Within(t, 60*time.Second, fmt.Sprintf("all %d devices to get message %d", len(devs), msgID), func() bool {
		for _, d := range devs {
			if d.copies(msgID) < want {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond) // a duplicate would arrive right behind
	for _, d := range devs {
		if n := d.copies(msgID); n != want {
			t.Fatalf("%s got message %d %d times, want %d", d.did, msgID, n, want)
		}
	}
}

func TestSessionOf1000DevicesOverTwoGateways(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 devices")
	}
	tg := startTwoGatewaysWith(t, retransmitEager)
	tg.biz.SetSessions(roomsOf)
	const n = 1000
	devs := tg.dialMany(t, "app-a", n)
	byConn := map[string]string{}
	for i, d := range devs {
		byConn[fmt.Sprintf("%d/%d", i%2, d.c.ConnID())] = d.did
	}
	if got := len(tg.online(t, "app-a", "big")); got != n {
		t.Fatalf("state server: %d online in big, want %d", got, n)
	}
	tg.checkIndex(t, "app-a", "big")
	local := tg.localMembers("app-a", "big", byConn)
	if len(local) != n {
		t.Fatalf("gateways' local indexes hold %d devices of big, want %d", len(local), n)
	}
	for did, c := range local {
		if c != 1 || did == "" {
			t.Fatalf("local index: %q held %d times", did, c)
		}
	}

	t.Run("at most once goes by broadcast and arrives exactly once", func(t *testing.T) {
		resp := tg.push(t, &api.PushRequest{Caller: platformtest.Caller("app-a"), Session: "big", Payload: []byte("amo"), Qos: api.QoS_AT_MOST_ONCE})
		if resp.Route != api.Route_BROADCAST || resp.SessionMembers != n {
			t.Fatalf("route %v with %d members, want BROADCAST with %d", resp.Route, resp.SessionMembers, n)
		}
		waitDelivered(t, devs, uint64(resp.MsgId), 1)
	})

	t.Run("at least once is ACKed by every device", func(t *testing.T) {
		resp := tg.push(t, &api.PushRequest{
			Caller: platformtest.Caller("app-a"), Session: "big", Payload: []byte("alo"), Qos: api.QoS_AT_LEAST_ONCE,
			WaitAck: true, TimeoutMs: 50000,
		})
		if len(resp.Targets) != n {
			t.Fatalf("%d targets, want %d", len(resp.Targets), n)
		}
		for _, tgt := range resp.Targets {
			if tgt.Status != api.PushStatus_ACKED {
				t.Fatalf("target %+v not ACKED", tgt)
			}
		}
		waitDelivered(t, devs, uint64(resp.MsgId), 1)
	})

	t.Run("the path switches at broadcast_min_members", func(t *testing.T) {
		for _, c := range []struct {
			session string
			members int
			route   api.Route
		}{{"r99", 99, api.Route_DIRECT}, {"r100", 100, api.Route_BROADCAST}} {
			resp := tg.push(t, &api.PushRequest{Caller: platformtest.Caller("app-a"), Session: c.session, Payload: []byte(c.session), Qos: api.QoS_AT_MOST_ONCE})
			if resp.Route != c.route || int(resp.SessionMembers) != c.members {
				t.Fatalf("%s: route %v with %d members, want %v with %d", c.session, resp.Route, resp.SessionMembers, c.route, c.members)
			}
			waitDelivered(t, devs[:c.members], uint64(resp.MsgId), 1)
			for _, d := range devs[c.members:] {
				if d.copies(uint64(resp.MsgId)) != 0 {
					t.Fatalf("%s is not in %s but got its message", d.did, c.session)
				}
			}
		}
	})

	t.Run("another app cannot reach these devices", func(t *testing.T) {
		// app-b has a device of the same did, in a session of the same name.
		other := tg.dial(t, "app-b", "dev-0", 0)
		poll.Within(t, 10*time.Second, "app-b's dev-0 to be in big", func() bool {
			return len(tg.online(t, "app-b", "big")) == 1
		})
		resp := tg.push(t, &api.PushRequest{Caller: platformtest.Caller("app-b"), Dids: []string{"dev-1"}, Session: "big", Payload: []byte("b"), Qos: api.QoS_AT_MOST_ONCE})
		if resp.SessionMembers != 1 || resp.Targets[0].Status != api.PushStatus_OFFLINE {
			t.Fatalf("app-b's push: %+v, want 1 member and dev-1 OFFLINE", resp)
		}
		poll.Within(t, 10*time.Second, "app-b's device to get its app's message", func() bool {
			return other.copies(uint64(resp.MsgId)) == 1
		})
		for _, d := range devs {
			if d.copies(uint64(resp.MsgId)) != 0 {
				t.Fatalf("app-a's %s got app-b's message", d.did)
			}
		}
		// A broadcast to app-a's big does not reach app-b's dev-0.
		resp = tg.push(t, &api.PushRequest{Caller: platformtest.Caller("app-a"), Session: "big", Payload: []byte("a"), Qos: api.QoS_AT_MOST_ONCE})
		waitDelivered(t, devs, uint64(resp.MsgId), 1)
		if other.copies(uint64(resp.MsgId)) != 0 {
			t.Fatal("app-b's dev-0 got app-a's broadcast")
		}
		// app-b's key does not open app-a, and no key opens an app without one.
		for _, c := range []*api.Caller{
			{AppId: "app-a", Key: platformtest.KeyOf("app-b")},
			{AppId: "app-z", Key: platformtest.KeyOf("app-b")},
		} {
			_, err := tg.api.Push(context.Background(), &api.PushRequest{Caller: c, Dids: []string{"dev-1"}, Payload: []byte("x")})
			var pe *api.PlatoError
			if !errors.As(err, &pe) || pe.Code != int32(protocol.CodeAppMismatch) {
				t.Fatalf("push as %s with another app's key: %v, want PlatoError 1402", c.AppId, err)
			}
			_, err = tg.api.Kick(context.Background(), &api.KickRequest{Caller: c, Dids: []string{"dev-1"}})
			if !errors.As(err, &pe) || pe.Code != int32(protocol.CodeAppMismatch) {
				t.Fatalf("kick as %s with another app's key: %v, want PlatoError 1402", c.AppId, err)
			}
		}
		// The state server's internal methods share its address: they check too.
		internal, err := stateservice.NewClient("plato-state", rpc.Client(tg.p.State.Addr(), 10*time.Second)...)
		if err != nil {
			t.Fatal(err)
		}
		forged := &fleet.LocalPushRequest{AppId: "app-a", Key: platformtest.KeyOf("app-b"), Dids: []string{"dev-1"}, Payload: []byte("forged"), MsgId: 42}
		if _, err := internal.LocalPush(context.Background(), forged); err == nil || !strings.Contains(err.Error(), "1402") && !strings.Contains(err.Error(), "wrong key") {
			t.Fatalf("LocalPush with another app's key: %v, want refused", err)
		}
		if _, err := internal.LocalSession(context.Background(), &fleet.LocalSessionRequest{AppId: "app-a", Op: fleet.SessionOp_KICK, Dids: []string{"dev-1"}}); err == nil {
			t.Fatal("LocalSession without a key was accepted")
		}
		if _, err := internal.Deliver(context.Background(), &fleet.DeliverRequest{GatewayId: "gw-1", Events: []*fleet.UpEvent{
			{ConnId: int64(devs[1].c.ConnID()), Kind: fleet.UpKind_CLOSED, Reason: 1209},
		}}); err == nil {
			t.Fatal("a Deliver without the gateway's proof was accepted")
		}
		time.Sleep(200 * time.Millisecond)
		if devs[1].copies(42) != 0 || slices.Contains(tg.online(t, "app-a", "big"), "dev-1") == false {
			t.Fatal("a forged internal call reached dev-1")
		}
		other.c.Close()
	})

	t.Run("bind, unbind and disconnect keep the local indexes exact", func(t *testing.T) {
		ctx := context.Background()
		a := platformtest.Caller("app-a")
		expect := func(what string, want []string) {
			t.Helper()
			slices.Sort(want)
			poll.Within(t, 10*time.Second, what, func() bool {
				if !slices.Equal(tg.online(t, "app-a", "team"), want) {
					return false
				}
				local := tg.localMembers("app-a", "team", byConn)
				if len(local) != len(want) {
					return false
				}
				for _, did := range want {
					if local[did] != 1 {
						return false
					}
				}
				return true
			})
			tg.checkIndex(t, "app-a", "team")
			tg.checkIndex(t, "app-a", "big")
		}
		team := []string{"dev-1", "dev-2", "dev-3", "dev-4", "dev-5"}
		resp, err := tg.api.Bind(ctx, &api.BindRequest{Caller: a, Session: "team", Dids: append(slices.Clone(team), "nobody")})
		if err != nil || resp.Members != 5 || !slices.Equal(resp.Offline, []string{"nobody"}) {
			t.Fatalf("bind: %+v, %v", resp, err)
		}
		expect("5 members after bind", slices.Clone(team))
		// A broadcast right after Bind returned reaches the new members: the gateways were synced.
		if _, err := tg.api.Unbind(ctx, &api.UnbindRequest{Caller: a, Session: "team", Dids: []string{"dev-1"}}); err != nil {
			t.Fatalf("unbind: %v", err)
		}
		expect("dev-1 gone after unbind", []string{"dev-2", "dev-3", "dev-4", "dev-5"})
		if _, err := tg.api.Bind(ctx, &api.BindRequest{Caller: a, Session: "team", Dids: []string{"dev-4", "dev-5", "dev-6"}, Replace: true}); err != nil {
			t.Fatalf("bind replace: %v", err)
		}
		expect("exactly dev-4..6 after replace", []string{"dev-4", "dev-5", "dev-6"})
		// dev-5 disconnects: it leaves; it logs in again: the sessionbind stage binds it to
		// what the business says (big, not team), so team stays without it.
		devs[5].c.Close()
		expect("dev-5 gone after disconnecting", []string{"dev-4", "dev-6"})
		if got := tg.online(t, "app-a", "big"); slices.Contains(got, "dev-5") {
			t.Fatal("dev-5 still online in big after disconnecting")
		}
		devs[5] = tg.dial(t, "app-a", "dev-5", 1)
		byConn[fmt.Sprintf("1/%d", devs[5].c.ConnID())] = "dev-5"
		poll.Within(t, 10*time.Second, "dev-5 back in big", func() bool {
			return slices.Contains(tg.online(t, "app-a", "big"), "dev-5") && tg.localMembers("app-a", "big", byConn)["dev-5"] == 1
		})
		// Kicked: gone everywhere.
		kr, err := tg.api.Kick(ctx, &api.KickRequest{Caller: a, Dids: []string{"dev-6", "nobody"}, Message: "bye"})
		if err != nil || !slices.Equal(kr.Kicked, []string{"dev-6"}) {
			t.Fatalf("kick: %+v, %v", kr, err)
		}
		expect("dev-6 gone after the kick", []string{"dev-4"})
		select {
		case <-devs[6].c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("dev-6 still connected after the kick")
		}
		if code, _ := protocol.CodeOf(devs[6].c.Err()); code != protocol.CodeKicked {
			t.Fatalf("dev-6 ended with %v, want Close 1202", devs[6].c.Err())
		}
		if _, err := tg.api.Unbind(ctx, &api.UnbindRequest{Caller: a, Session: "team", All: true}); err != nil {
			t.Fatalf("dissolve: %v", err)
		}
		expect("team dissolved", nil)
	})
}

// TestBusinessCallsAcrossTwoStateServers runs two state servers, each with a gateway, on one NATS:
// gateways hash each did to one of them, so a session's members, the dids of a push and the devices
// to kick are spread over both. A business server calling either one must reach all of them.
func TestBusinessCallsAcrossTwoStateServers(t *testing.T) {
	tg := startTwoGateways(t)
	tg.biz.SetSessions(roomsOf)
	cfg2 := platformtest.Config(t)
	cfg2.NATS.URL = tg.p.NATS.ClientURL()
	cfg2.State.ID = "state-2"
	platformtest.SetBusiness(&cfg2, tg.biz.Addr)
	cfg2.State.PushTimeout = 60 * time.Second
	cfg2.Pipeline = tg.p.Config.Pipeline
	cfg2.Admin.Addr = ""
	st2 := platformtest.Start(t, cfg2, platform.RoleState)
	poll.Within(t, 10*time.Second, "the state servers to know each other", func() bool {
		return len(tg.p.State.Peers()) == 1 && len(st2.State.Peers()) == 1
	})
	api2 := platformtest.StateClient(t, st2.State.Addr())
	const n = 200
	var devs []*device
	// The gateways learn of state-2 from the registry: wait until logins are spread over both.
	poll.Within(t, 20*time.Second, "devices held by both state servers", func() bool {
		devs = append(devs, tg.dial(t, "app-a", fmt.Sprintf("dev-%d", len(devs)), len(devs)%2))
		return tg.p.State.Stats().Conns > 0 && st2.State.Stats().Conns > 0
	})
	for len(devs) < n {
		devs = append(devs, tg.dial(t, "app-a", fmt.Sprintf("dev-%d", len(devs)), len(devs)%2))
	}
	held1, held2 := tg.p.State.Stats().Conns, st2.State.Stats().Conns
	if held1+held2 != n || held1 == 0 || held2 == 0 {
		t.Fatalf("state servers hold %d and %d connections, want %d spread over both", held1, held2, n)
	}
	a := platformtest.Caller("app-a")
	ctx := context.Background()

	for i, c := range []apiservice.Client{tg.api, api2} {
		resp, err := c.Online(ctx, &api.OnlineRequest{Caller: a, Session: "big"})
		if err != nil || len(resp.Devices) != n {
			t.Fatalf("Online(big) through state server %d: %d devices, %v; want %d", i+1, len(resp.GetDevices()), err, n)
		}
	}
	// At most once: one broadcast, the member count summed over both state servers.
	resp := tg.push(t, &api.PushRequest{Caller: a, Session: "big", Payload: []byte("amo"), Qos: api.QoS_AT_MOST_ONCE})
	if resp.Route != api.Route_BROADCAST || resp.SessionMembers != n {
		t.Fatalf("route %v with %d members, want BROADCAST with %d", resp.Route, resp.SessionMembers, n)
	}
	waitDelivered(t, devs, uint64(resp.MsgId), 1)
	// At least once, through the other state server: every device ACKs.
	ctx60, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	resp, err := api2.Push(ctx60, &api.PushRequest{Caller: a, Session: "big", Payload: []byte("alo"), Qos: api.QoS_AT_LEAST_ONCE, WaitAck: true, TimeoutMs: 50000},
		callopt.WithRPCTimeout(60*time.Second))
	if err != nil || len(resp.Targets) != n {
		t.Fatalf("push: %d targets, %v; want %d", len(resp.GetTargets()), err, n)
	}
	for _, tgt := range resp.Targets {
		if tgt.Status != api.PushStatus_ACKED {
			t.Fatalf("target %+v not ACKED", tgt)
		}
	}
	waitDelivered(t, devs, uint64(resp.MsgId), 1)
	// Named dids, each held by one of the two; one nobody holds.
	dids := []string{"nobody"}
	for _, d := range devs[:20] {
		dids = append(dids, d.did)
	}
	resp = tg.push(t, &api.PushRequest{Caller: a, Dids: dids, Payload: []byte("named")})
	if len(resp.Targets) != len(dids) || resp.Targets[0].Did != "nobody" || resp.Targets[0].Status != api.PushStatus_OFFLINE {
		t.Fatalf("named push targets %v: want %d in request order, nobody OFFLINE first", resp.Targets, len(dids))
	}
	for i, tgt := range resp.Targets[1:] {
		if tgt.Did != dids[i+1] || tgt.Status != api.PushStatus_SENT {
			t.Fatalf("target %d: %+v, want %s SENT", i+1, tgt, dids[i+1])
		}
	}
	waitDelivered(t, devs[:20], uint64(resp.MsgId), 1)
	// Bind through one, kick through the other.
	team := []string{devs[0].did, devs[1].did, devs[2].did, devs[3].did}
	br, err := api2.Bind(ctx, &api.BindRequest{Caller: a, Session: "team", Dids: team})
	if err != nil || br.Members != 4 || len(br.Offline) != 0 {
		t.Fatalf("bind: %+v, %v", br, err)
	}
	if got := tg.online(t, "app-a", "team"); !slices.Equal(got, slices.Sorted(slices.Values(team))) {
		t.Fatalf("Online(team) through state server 1: %v, want %v", got, team)
	}
	kr, err := tg.api.Kick(ctx, &api.KickRequest{Caller: a, Dids: team})
	if err != nil || len(kr.Kicked) != 4 {
		t.Fatalf("kick: %+v, %v", kr, err)
	}
	poll.Within(t, 10*time.Second, "the team to be gone", func() bool {
		return len(tg.online(t, "app-a", "team")) == 0
	})
}
