package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/opsapi"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	apiservice "github.com/platoim/plato/sdk/business/rpc/plato/api/plato"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

const testOpsKey = "test-ops-key"

var reAdminAddr = regexp.MustCompile(`admin\s+http://(\S+)`)

// moveFleet is a state server and gateways as processes, sharing NATS and a recording business
// server, with an ops key.
type moveFleet struct {
	cfg   string
	biz   *platformtest.Business
	plato apiservice.Client
	gws   map[string]*fleetGateway
}

type fleetGateway struct {
	id, addr, admin string
	p               *proc
}

func startMoveFleet(t *testing.T, extra string, gwIDs ...string) *moveFleet {
	t.Helper()
	stAddr := freePort(t)
	cfg, biz := startShared(t, fmt.Sprintf("state: {addr: %q}\nops: {key: %q}\n%s", stAddr, testOpsKey, extra))
	st := startProc(t, "state", "state", "--config", cfg)
	st.waitLine(reRunning)
	f := &moveFleet{cfg: cfg, biz: biz, plato: platformtest.StateClient(t, stAddr), gws: map[string]*fleetGateway{}}
	for _, id := range gwIDs {
		f.startGateway(t, id)
	}
	f.waitServing(t, gwIDs...)
	return f
}

func (f *moveFleet) startGateway(t *testing.T, id string, env ...string) *fleetGateway {
	t.Helper()
	p := startProcEnv(t, id, append([]string{"PLATO_GATEWAY__ID=" + id}, env...), "gateway", "--config", f.cfg)
	g := &fleetGateway{id: id, addr: p.waitLine(reGateway), admin: p.waitLine(reAdminAddr), p: p}
	f.gws[id] = g
	return g
}

// waitServing waits until `plato ops gateways` lists every one of ids as serving (registered with
// its endpoint: it reaches the state server).
func (f *moveFleet) waitServing(t *testing.T, ids ...string) {
	t.Helper()
	poll.Within(t, 30*time.Second, fmt.Sprintf("gateways %v serving", ids), func() bool {
		out, err := f.ops(t, "gateways")
		if err != nil {
			return false
		}
		for _, id := range ids {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + `\s.*serving$`).MatchString(out) {
				return false
			}
		}
		return true
	})
}

// ops runs `plato ops args...` against the fleet and returns its output.
func (f *moveFleet) ops(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(platoBinary(t), append(append([]string{"ops"}, args...), "--config", f.cfg, "--timeout", "60s")...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// opsFound is ops for a command on a gateway the fleet keeps running, retried while the registry
// does not list it: on a machine loaded enough that the gateway misses its registry refreshes for a
// whole TTL (5 s), its entry expires until the next refresh, and plato ops cannot find it for
// that moment. Every other outcome is returned.
func (f *moveFleet) opsFound(t *testing.T, args ...string) (out string, err error) {
	t.Helper()
	poll.Within(t, 30*time.Second, "plato ops "+strings.Join(args, " ")+" to find its gateway", func() bool {
		out, err = f.ops(t, args...)
		if err != nil && strings.Contains(out, "is not live") {
			t.Logf("plato ops %s, retried: %s", strings.Join(args, " "), strings.TrimSpace(out))
			return false
		}
		return true
	})
	return out, err
}

// moveDevice is an SDK client that records what it receives.
type moveDevice struct {
	did     string
	c       *client.Client
	mu      sync.Mutex
	got     map[uint64]int // msg ID -> times the application got it
	resumed atomic.Int32
	lastErr atomic.Pointer[error] // why the last connection ended
}

func dialMoveDevices(t *testing.T, n int, prefix, addr string) []*moveDevice {
	t.Helper()
	signer, err := token.NewSigner([]byte(platformtest.Secret), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	devs := make([]*moveDevice, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				d := &moveDevice{did: fmt.Sprintf("%s-%03d", prefix, i), got: map[uint64]int{}}
				tok, _ := signer.Issue("demo", d.did, d.did, time.Now(), time.Time{})
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				var err error
				d.c, err = client.Dial(ctx, client.Config{
					Endpoints: []string{addr}, Token: tok, AppID: "demo", DID: d.did, LoginTimeout: 30 * time.Second,
					Reconnect: true, ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second,
					OnDownlink: func(m client.Message) {
						d.mu.Lock()
						d.got[m.MsgID]++
						d.mu.Unlock()
					},
					OnState: func(s client.State) {
						switch s.Kind {
						case client.Resumed:
							d.resumed.Add(1)
						case client.Disconnected:
							if s.Err != nil {
								d.lastErr.Store(&s.Err)
							}
						}
					},
				})
				cancel()
				if err != nil {
					errs <- fmt.Errorf("dial %s: %w", d.did, err)
					return
				}
				devs[i] = d
			}
		}()
	}
	wg.Wait()
	for _, d := range devs {
		if d != nil {
			t.Cleanup(func() { d.c.Close() })
		}
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	return devs
}

// pusher sends at-least-once pushes to random devices until stopped, and keeps those accepted.
type pusher struct {
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	accepted map[string][]uint64 // did -> msg IDs
	count    int
}

func startPusher(plato apiservice.Client, devs []*moveDevice) *pusher {
	p := &pusher{stop: make(chan struct{}), done: make(chan struct{}), accepted: map[string][]uint64{}}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			did := devs[rand.IntN(len(devs))].did
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := plato.Push(ctx, &api.PushRequest{Caller: platformtest.Caller("demo"), Dids: []string{did}, Payload: []byte("p"), Qos: api.QoS_AT_LEAST_ONCE})
			cancel()
			if err != nil {
				continue
			}
			for _, tg := range resp.Targets {
				// SENT or QUEUED is accepted: it must reach the device.
				if tg.Status == api.PushStatus_SENT || tg.Status == api.PushStatus_QUEUED {
					p.mu.Lock()
					p.accepted[tg.Did] = append(p.accepted[tg.Did], uint64(resp.MsgId))
					p.count++
					p.mu.Unlock()
				}
			}
		}
	}()
	return p
}

func (p *pusher) halt() {
	close(p.stop)
	<-p.done
}

// checkDelivered waits until every accepted push reached its device, and checks that none
// reached the application twice.
func (p *pusher) checkDelivered(t *testing.T, devs []*moveDevice) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.count == 0 {
		t.Fatal("no push was accepted: the test pushed nothing")
	}
	missing := func() (int, string) {
		n, ex := 0, ""
		for _, d := range devs {
			d.mu.Lock()
			for _, id := range p.accepted[d.did] {
				if d.got[id] == 0 {
					n++
					ex = fmt.Sprintf("%s msg %d", d.did, id)
				}
			}
			d.mu.Unlock()
		}
		return n, ex
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, ex := missing()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted at-least-once pushes never reached their device (e.g. %s)", n, p.count, ex)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, d := range devs {
		d.mu.Lock()
		for id, k := range d.got {
			if k > 1 {
				t.Errorf("%s got msg %d %d times", d.did, id, k)
			}
		}
		d.mu.Unlock()
	}
	t.Logf("%d at-least-once pushes accepted, every one delivered once", p.count)
}

func allOn(devs []*moveDevice, addr string) (int, string) {
	off, ex := 0, ""
	for _, d := range devs {
		if ep := d.c.Endpoint(); ep != addr {
			off++
			ex = d.did + " on " + ep
		}
	}
	return off, ex
}

// checkResumedOnly checks the business saw every device resume and none disconnect or connect
// again.
func (f *moveFleet) checkResumedOnly(t *testing.T, n int) {
	t.Helper()
	f.biz.WaitEvents(t, api.EventKind_RESUMED, "", n)
	if c := len(f.biz.Events(api.EventKind_CONNECTED, "")); c != n {
		t.Errorf("%d CONNECTED events, want %d (one per device): devices logged in again", c, n)
	}
	if dc := f.biz.Events(api.EventKind_DISCONNECTED, ""); len(dc) != 0 {
		t.Errorf("%d DISCONNECTED events (e.g. %s), want none: every device resumed", len(dc), dc[0].Did)
	}
	if u := f.biz.Events(api.EventKind_UNDELIVERED, ""); len(u) != 0 {
		t.Errorf("%d UNDELIVERED events, want none", len(u))
	}
}

// TestOpsMigrateMovesDevicesUnderPushLoad moves 500 devices between two gateway processes with
// `plato ops migrate` while a business server pushes at-least-once messages to them: every
// device ends on the target gateway, resumed (the business sees RESUMED, no DISCONNECTED), and
// every accepted push arrives once.
func TestOpsMigrateMovesDevicesUnderPushLoad(t *testing.T) {
	f := startMoveFleet(t, "", "gw-1", "gw-2")
	const n = 500
	devs := dialMoveDevices(t, n, "mig", f.gws["gw-1"].addr)

	// With a typo in the target, nothing moves and the error says why.
	if out, err := f.ops(t, "migrate", "--from", "gw-1", "--to", "gw-9", "--count", "1"); err == nil || !strings.Contains(out, "gw-9 is not live") {
		t.Fatalf("migrate to an unknown gateway: %v\n%s", err, out)
	}

	p := startPusher(f.plato, devs)
	// Some devices send uplinks all along: each Send must succeed and reach the business once.
	var (
		upMu    sync.Mutex
		upAcked []string
		upErrs  []error
	)
	upStop := make(chan struct{})
	var upWG sync.WaitGroup
	for _, d := range devs[:50] {
		upWG.Add(1)
		go func() {
			defer upWG.Done()
			for i := 0; ; i++ {
				select {
				case <-upStop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				payload := fmt.Sprintf("%s#%d", d.did, i)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err := d.c.Send(ctx, []byte(payload))
				cancel()
				upMu.Lock()
				if err != nil {
					upErrs = append(upErrs, fmt.Errorf("%s: %w", payload, err))
				} else {
					upAcked = append(upAcked, payload)
				}
				upMu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // pushes and uplinks in flight when the move starts
	out, err := f.ops(t, "migrate", "--from", "gw-1", "--to", "gw-2", "--count", fmt.Sprint(n))
	if err != nil {
		t.Fatalf("plato ops migrate: %v\n%s", err, out)
	}
	if !strings.Contains(out, fmt.Sprintf("redirected %d devices from gw-1 to %s", n, f.gws["gw-2"].addr)) {
		t.Fatalf("plato ops migrate printed %q, want %d redirected to %s", out, n, f.gws["gw-2"].addr)
	}
	poll.Within(t, 60*time.Second, "every device on gw-2", func() bool {
		off, _ := allOn(devs, f.gws["gw-2"].addr)
		return off == 0
	})
	time.Sleep(300 * time.Millisecond) // pushes after the move too
	close(upStop)
	upWG.Wait()
	p.halt()
	p.checkDelivered(t, devs)
	f.checkResumedOnly(t, n)
	if len(upErrs) > 0 {
		t.Errorf("%d uplinks failed during the move, e.g. %v", len(upErrs), upErrs[0])
	}
	uplinks := map[string]int{}
	for _, ev := range f.biz.Events(api.EventKind_UPLINK, "") {
		uplinks[string(ev.Payload)]++
	}
	for _, u := range upAcked {
		if uplinks[u] != 1 {
			t.Errorf("acknowledged uplink %s reached the business %d times, want once", u, uplinks[u])
		}
	}
	t.Logf("%d uplinks acknowledged during the move, each delivered once", len(upAcked))
	for _, d := range devs {
		if r := d.resumed.Load(); r != 1 {
			t.Errorf("%s resumed %d times, want once", d.did, r)
		}
	}
}

// TestOpsDrain drains a gateway with `plato ops drain`: ipconf stops handing it out before its
// devices move, every device ends on the other gateway with nothing lost, a device that logs in
// to the draining gateway is moved too, and undrain brings it back into ipconf's answers. The
// ops API refuses calls without the right key.
func TestOpsDrain(t *testing.T) {
	f := startMoveFleet(t, "", "gw-1", "gw-2")
	ipc := startProc(t, "ipconf", "ipconf", "--config", f.cfg)
	ipconfURL := "http://" + ipc.waitLine(regexp.MustCompile(`ipconf\s+http://(\S+)`))
	gw1, gw2 := f.gws["gw-1"], f.gws["gw-2"]

	// The ops API wants the key.
	for _, tc := range []struct {
		name, auth string
		want       int
	}{{"no key", "", http.StatusUnauthorized}, {"wrong key", "Bearer nope", http.StatusForbidden}} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+gw1.admin+opsapi.PathDrain, strings.NewReader("{}"))
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e opsapi.Error
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.want || e.Error == "" {
			t.Fatalf("%s: %d %q, want %d and a JSON error", tc.name, resp.StatusCode, e.Error, tc.want)
		}
	}
	if out, err := f.opsFound(t, "drain", "gw-1", "--key", "nope"); err == nil || !strings.Contains(out, "wrong ops key") {
		t.Fatalf("drain with a wrong key: %v\n%s", err, out)
	}

	listed := func() (bool, error) {
		l := fetchList(t, ipconfURL, "probe")
		if l.status != http.StatusOK {
			return false, fmt.Errorf("ipconf answered %d: %s", l.status, l.body)
		}
		return slices.Contains(l.endpoints, "gw-1"), nil
	}
	poll.Within(t, 30*time.Second, "ipconf to hand out gw-1", func() bool { ok, _ := listed(); return ok })

	const n = 100
	devs := dialMoveDevices(t, n, "drn", gw1.addr)
	p := startPusher(f.plato, devs)
	// At 25/s the drain takes 4 s: ipconf must have left gw-1 out long before the last device moves.
	type drained struct {
		out string
		err error
	}
	res := make(chan drained, 1)
	go func() {
		out, err := f.ops(t, "drain", "gw-1", "--rate", "25")
		res <- drained{out, err}
	}()
	moved := func() int {
		k := 0
		for _, d := range devs {
			if d.resumed.Load() > 0 {
				k++
			}
		}
		return k
	}
	movedWhenLeft := -1
	poll.Within(t, 30*time.Second, "ipconf to leave gw-1 out", func() bool {
		k := moved()
		if ok, err := listed(); err == nil && !ok {
			movedWhenLeft = k
			return true
		}
		return false
	})
	t.Logf("%d of %d devices had moved when ipconf stopped handing out gw-1", movedWhenLeft, n)
	if movedWhenLeft > n/2 {
		t.Errorf("%d of %d devices had moved before ipconf stopped handing out gw-1, want it left first", movedWhenLeft, n)
	}
	var r drained
	select {
	case r = <-res:
	case <-time.After(90 * time.Second):
		t.Fatal("plato ops drain did not finish")
	}
	if r.err != nil || !strings.Contains(r.out, fmt.Sprintf("drained gw-1: %d devices redirected", n)) {
		t.Fatalf("plato ops drain: %v\n%s", r.err, r.out)
	}
	t.Logf("plato ops drain printed:\n%s", r.out)
	if off, ex := allOn(devs, gw2.addr); off != 0 {
		t.Fatalf("%d devices not on gw-2 after the drain (e.g. %s)", off, ex)
	}
	if ok, _ := listed(); ok {
		t.Error("ipconf hands out gw-1 again while it drains")
	}
	if out, err := f.ops(t, "status", "gw-1"); err != nil || !strings.Contains(out, "draining since") || !strings.Contains(out, fmt.Sprintf("%d redirected, done true", n)) {
		t.Errorf("plato ops status: %v\n%s", err, out)
	}
	// Draining again changes the pace only; --wait=false answers at once.
	if out, err := f.ops(t, "drain", "gw-1", "--rate", "50", "--wait=false"); err != nil || !strings.Contains(out, "draining gw-1 at 50/s") {
		t.Errorf("plato ops drain --wait=false: %v\n%s", err, out)
	}
	// Migrating off the other gateway now has nowhere to go: gw-1 drains.
	if out, err := f.ops(t, "migrate", "--from", "gw-2", "--count", "1"); err == nil || !strings.Contains(out, "only live gateway") {
		t.Errorf("migrate with no other gateway taking logins: %v\n%s", err, out)
	}
	// A device that logs in to the draining gateway is moved on.
	late := dialMoveDevices(t, 1, "late", gw1.addr)[0]
	poll.Within(t, 30*time.Second, "a device that logged in to the draining gateway to move", func() bool {
		return late.c.Endpoint() == gw2.addr
	})
	p.halt()
	p.checkDelivered(t, devs)
	f.checkResumedOnly(t, n+1)

	if out, err := f.opsFound(t, "undrain", "gw-1"); err != nil {
		t.Fatalf("plato ops undrain: %v\n%s", err, out)
	}
	poll.Within(t, 30*time.Second, "ipconf to hand out gw-1 again after undrain", func() bool { ok, _ := listed(); return ok })
}

// TestSIGTERMDrainsToTheOtherGateway stops a gateway with SIGTERM while another is live: its
// devices move there by Redirect and resume. The last gateway, alone, closes its devices with
// 1204, and the ops API of a gateway without ops.key refuses every call.
func TestSIGTERMDrainsToTheOtherGateway(t *testing.T) {
	f := startMoveFleet(t, "", "gw-1", "gw-2")
	const n = 50
	devs := dialMoveDevices(t, n, "term", f.gws["gw-1"].addr)
	p := startPusher(f.plato, devs)
	// Two devices by name, to whichever other gateway takes logins.
	out, err := f.ops(t, "migrate", "--from", "gw-1", "--did", devs[0].did, "--did", devs[1].did, "--app", "demo")
	if err != nil || !strings.Contains(out, "redirected 2 devices from gw-1 to "+f.gws["gw-2"].addr) {
		t.Fatalf("plato ops migrate --did: %v\n%s", err, out)
	}
	poll.Within(t, 30*time.Second, "the two devices named on gw-2", func() bool {
		off, _ := allOn(devs[:2], f.gws["gw-2"].addr)
		return off == 0
	})
	gw1 := f.gws["gw-1"].p
	if err := gw1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-gw1.exit:
		if err != nil {
			t.Fatalf("gw-1 exited with %v after SIGTERM; stderr:\n%s", err, gw1.stderr())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("gw-1 did not stop within 60s of SIGTERM")
	}
	poll.Within(t, 30*time.Second, "every device on gw-2", func() bool {
		off, _ := allOn(devs, f.gws["gw-2"].addr)
		return off == 0
	})
	p.halt()
	p.checkDelivered(t, devs)
	f.checkResumedOnly(t, n)

	// gw-2 is alone now: nothing to migrate to, and its SIGTERM closes devices with 1204.
	poll.Within(t, 30*time.Second, "gw-1 to leave the registry", func() bool {
		out, err := f.ops(t, "gateways")
		return err == nil && !strings.Contains(out, "gw-1")
	})
	if out, err := f.ops(t, "migrate", "--from", "gw-2", "--count", "1"); err == nil || !strings.Contains(out, "only live gateway") {
		t.Errorf("migrate from a lone gateway: %v\n%s", err, out)
	}
	nokey := f.startGateway(t, "gw-nokey", "PLATO_OPS__KEY=")
	req, _ := http.NewRequest(http.MethodGet, "http://"+nokey.admin+opsapi.PathStatus, nil)
	req.Header.Set("Authorization", "Bearer "+testOpsKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e opsapi.Error
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(e.Error, "no ops.key") {
		t.Errorf("ops API without ops.key: %d %q, want 403 saying no key is configured", resp.StatusCode, e.Error)
	}
	nokey.p.interrupt()
	poll.Within(t, 30*time.Second, "gw-nokey to leave the registry", func() bool {
		out, err := f.ops(t, "gateways")
		return err == nil && !strings.Contains(out, "gw-nokey")
	})
	f.gws["gw-2"].p.cmd.Process.Signal(syscall.SIGTERM)
	<-f.gws["gw-2"].p.exit
	poll.Within(t, 30*time.Second, "devices closed with 1204 by the lone gateway", func() bool {
		for _, d := range devs {
			e := d.lastErr.Load()
			var pe *protocol.Error
			if e == nil || !errors.As(*e, &pe) || pe.Code != protocol.CodeShuttingDown {
				return false
			}
		}
		return true
	})
}

// TestChatFollowsARedirect runs `plato chat` as a process against a fleet that has one gateway,
// then starts a second and migrates the chat's device there: the chat says it is moving and that
// it resumed on the new gateway, and stays up.
func TestChatFollowsARedirect(t *testing.T) {
	f := startMoveFleet(t, "", "gw-1")
	ipc := startProc(t, "ipconf", "ipconf", "--config", f.cfg)
	ipconfURL := "http://" + ipc.waitLine(regexp.MustCompile(`ipconf\s+http://(\S+)`))
	poll.Within(t, 30*time.Second, "ipconf to hand out gw-1", func() bool {
		l := fetchList(t, ipconfURL, "carol")
		return l.status == http.StatusOK && slices.Contains(l.endpoints, "gw-1")
	})
	cmd := exec.Command(platoBinary(t), "chat", "--ipconf", ipconfURL, "--app", "demo", "--did", "carol",
		"--credential", platformtest.Credential(t, "demo", "carol", "carol"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // Ctrl-D: the chat leaves
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	poll.Within(t, 30*time.Second, "the chat to connect to gw-1", func() bool {
		return strings.Contains(out.String(), "connected to "+f.gws["gw-1"].addr)
	})
	gw2 := f.startGateway(t, "gw-2")
	f.waitServing(t, "gw-2")
	if o, err := f.ops(t, "migrate", "--from", "gw-1", "--to", "gw-2", "--did", "carol"); err != nil || !strings.Contains(o, "redirected 1 devices") {
		t.Fatalf("plato ops migrate: %v\n%s", err, o)
	}
	poll.Within(t, 30*time.Second, "the chat to resume on gw-2", func() bool {
		s := out.String()
		return strings.Contains(s, "* moving to another gateway") && strings.Contains(s, "* reconnected to "+gw2.addr+": resumed")
	})
	if cmd.ProcessState != nil {
		t.Fatalf("the chat exited:\n%s", out.String())
	}
	f.biz.WaitEvents(t, api.EventKind_RESUMED, "carol", 1)
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Wrong arguments to plato ops are refused before it reaches anything.
func TestOpsArgumentsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"ops"}, "no ops subcommand"},
		{[]string{"ops", "bogus"}, "unknown ops subcommand"},
		{[]string{"ops", "drain"}, "takes one GATEWAY_ID"},
		{[]string{"ops", "status", "a", "b"}, "takes one GATEWAY_ID"},
		{[]string{"ops", "migrate", "--count", "3"}, "--from GATEWAY_ID is required"},
		{[]string{"ops", "migrate", "--from", "a"}, "either --count N or --did D"},
		{[]string{"ops", "migrate", "--from", "a", "--count", "1", "--did", "x"}, "either --count N or --did D"},
		{[]string{"ops", "gateways", "extra"}, "unexpected arguments"},
	} {
		var stdout, stderr strings.Builder
		if code := run(tc.args, &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), tc.says) {
			t.Errorf("plato %s: exit %d, stderr %q, want it to say %q", strings.Join(tc.args, " "), code, stderr.String(), tc.says)
		}
	}
}
