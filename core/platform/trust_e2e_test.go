package platform_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/credential"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// connectAs connects did of app with cred as its credential, through ipconf.
func connectAs(t *testing.T, p *platform.Platform, app, did, uid, cred string) (*client.Client, error) {
	t.Helper()
	// Generous: the tests run on loaded 2-core machines, and a slow answer is not what they test.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{IPConfURL: "http://" + p.IPConf.Addr(), AppID: app, DID: did, UID: uid, Credential: cred,
		DialTimeout: 10 * time.Second, LoginTimeout: 20 * time.Second})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func codeOf(err error) protocol.Code {
	c, _ := protocol.CodeOf(err)
	return c
}

// TestNobodyCanBeAlice is the hole this platform must not have: a stranger with a credential of
// his own tries every way to be alice, and the real alice is never displaced.
func TestNobodyCanBeAlice(t *testing.T) {
	p, biz := startAll(t, nil)
	alice := dial(t, p, "alice") // uid u-alice, with her own credential
	ipconf := "http://" + p.IPConf.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	mallory := platformtest.Credential(t, "demo", "mallory", "u-mallory")
	// At ipconf: his credential for alice's did, none, and a forged one.
	for _, cred := range []string{mallory, "", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1LWFsaWNlIiwiZGlkIjoiYWxpY2UiLCJhdWQiOiJkZW1vIn0."} {
		if _, err := client.FetchEndpoints(ctx, nil, ipconf, "demo", "alice", cred); err == nil {
			t.Fatalf("ipconf gave a token for alice to a credential that is not hers (%.20q)", cred)
		}
	}
	// At the gateway, with the token ipconf gave him: as alice's did, and as alice's uid.
	list, err := client.FetchEndpoints(ctx, nil, ipconf, "demo", "mallory", mallory)
	if err != nil || list.UID != "u-mallory" {
		t.Fatalf("mallory's own token: %v %+v", err, list)
	}
	for name, cfg := range map[string]client.Config{
		"alice's did": {Endpoints: []string{p.Gateway.Addr()}, Token: list.Token, AppID: "demo", DID: "alice"},
		"alice's uid": {Endpoints: []string{p.Gateway.Addr()}, Token: list.Token, AppID: "demo", DID: "mallory", UID: "u-alice"},
	} {
		if _, err := client.Dial(ctx, cfg); codeOf(err) != protocol.CodeTokenMismatch {
			t.Errorf("mallory logging in with %s: %v, want %d", name, err, protocol.CodeTokenMismatch)
		}
	}

	// alice is still connected, still alice: a push to her uid reaches her, and only her.
	sc := platformtest.StateClient(t, p.State.Addr())
	resp, err := sc.Push(ctx, &api.PushRequest{Caller: platformtest.Caller("demo"), Uids: []string{"u-alice"}, Payload: []byte("for alice"), WaitAck: true, TimeoutMs: 5000})
	if err != nil || len(resp.Targets) != 1 || resp.Targets[0].Did != "alice" || resp.Targets[0].Status != api.PushStatus_ACKED {
		t.Fatalf("push to u-alice: %v %+v", err, resp)
	}
	select {
	case m := <-alice.Messages():
		if string(m.Payload) != "for alice" {
			t.Fatalf("alice got %q", m.Payload)
		}
	case <-alice.Done():
		t.Fatalf("alice was disconnected: %v", alice.Err())
	}
	if evs := biz.Events(api.EventKind_DISCONNECTED, "alice"); len(evs) != 0 {
		t.Fatalf("alice was displaced: %+v", evs)
	}
	// And what the business sees of alice's uplinks is alice.
	if err := alice.Send(ctx, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	ups := biz.WaitEvents(t, api.EventKind_UPLINK, "alice", 1)
	if ups[0].Uid != "u-alice" {
		t.Fatalf("alice's uplink arrived as uid %q", ups[0].Uid)
	}
}

// TestPushToUIDReachesOnlyItsTokensDevices: the uid a connection has is the one its token binds,
// so a push to a uid reaches exactly that user's devices.
func TestPushToUIDReachesOnlyItsTokensDevices(t *testing.T) {
	p, _ := startAll(t, nil)
	phone, err := connectAs(t, p, "demo", "alice-phone", "", platformtest.Credential(t, "demo", "alice-phone", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	laptop, err := connectAs(t, p, "demo", "alice-laptop", "alice", platformtest.Credential(t, "demo", "alice-laptop", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	// Bob's device claiming alice in its Login: refused, so it never counts as hers.
	if _, err := connectAs(t, p, "demo", "bob-phone", "alice", platformtest.Credential(t, "demo", "bob-phone", "bob")); codeOf(err) != protocol.CodeTokenMismatch {
		t.Fatalf("bob's device claiming uid alice: %v", err)
	}
	bob, err := connectAs(t, p, "demo", "bob-phone", "", platformtest.Credential(t, "demo", "bob-phone", "bob"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := platformtest.StateClient(t, p.State.Addr()).Push(ctx, &api.PushRequest{Caller: platformtest.Caller("demo"), Uids: []string{"alice"}, Payload: []byte("x"), WaitAck: true, TimeoutMs: 5000})
	if err != nil {
		t.Fatal(err)
	}
	var dids []string
	for _, tg := range resp.Targets {
		dids = append(dids, tg.Did)
	}
	slices.Sort(dids)
	if !slices.Equal(dids, []string{"alice-laptop", "alice-phone"}) {
		t.Fatalf("a push to uid alice reached %v", dids)
	}
	for _, c := range []*client.Client{phone, laptop} {
		<-c.Messages()
	}
	select {
	case m := <-bob.Messages():
		t.Fatalf("bob got alice's message %q", m.Payload)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestConnectCallback: an app whose devices carry a credential only its business understands;
// ipconf asks the business server who the device is.
func TestConnectCallback(t *testing.T) {
	biz := platformtest.StartBusiness(t)
	biz.SetAuthenticate(func(req *api.AuthenticateRequest) *api.AuthenticateResponse {
		if req.Credential == "session-of-"+req.Did {
			return &api.AuthenticateResponse{Uid: "user-of-" + req.Did}
		}
		return &api.AuthenticateResponse{Code: 2042, Message: "no such session"}
	})
	p, _ := startAll(t, func(c *config.Config) {
		c.Apps["cb"] = config.App{Keys: map[string]string{"k": "cb-key-of-16-bytes"}, Business: biz.Addr, Auth: config.AppAuth{Callback: true}}
	})
	c, err := connectAs(t, p, "cb", "dev-1", "", "session-of-dev-1")
	if err != nil {
		t.Fatalf("a device with a session the business knows: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Send(ctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if ups := biz.WaitEvents(t, api.EventKind_UPLINK, "dev-1", 1); ups[0].Uid != "user-of-dev-1" || ups[0].AppId != "cb" {
		t.Fatalf("uplink %+v, want uid user-of-dev-1 of app cb", ups[0])
	}
	// The business's refusal reaches the device with its code, as a 401.
	_, err = client.FetchEndpoints(ctx, nil, "http://"+p.IPConf.Addr(), "cb", "dev-2", "session-of-dev-1")
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != 2042 {
		t.Fatalf("a session the business refuses: %v, want code 2042", err)
	}
}

// TestUndeclaredAppGetsNothing: neither at ipconf nor at a gateway.
func TestUndeclaredAppGetsNothing(t *testing.T) {
	p, _ := startAll(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.FetchEndpoints(ctx, nil, "http://"+p.IPConf.Addr(), "ghost", "d", platformtest.Credential(t, "ghost", "d", "u"))
	if codeOf(err) != protocol.CodeUnknownApp {
		t.Fatalf("ipconf for an app not configured: %v", err)
	}
	// A token for it, minted with the fleet's secret (as if ipconf had been older), is refused.
	tok, _ := mustSigner(t, platformtest.Secret).Issue("ghost", "d", "u", time.Now(), time.Time{})
	if _, err := client.Dial(ctx, client.Config{Endpoints: []string{p.Gateway.Addr()}, Token: tok, AppID: "ghost", DID: "d"}); codeOf(err) != protocol.CodeUnknownApp {
		t.Fatalf("login of an app not configured: %v", err)
	}
}

// TestDeviceRateLimitIsAnsweredNotClosed: a device over its app's limit gets UplinkAck 1308 and
// stays connected; one that keeps hammering far past it is closed.
func TestDeviceRateLimitIsAnsweredNotClosed(t *testing.T) {
	p, biz := startAll(t, func(c *config.Config) {
		a := c.Apps["app-a"]
		// Slow enough that 20 sends exceed it however loaded the machine is.
		a.Limits = config.AppLimits{DeviceUplinksPerSec: 0.5, DeviceUplinkBurst: 5}
		c.Apps["app-a"] = a
	})
	c, err := connectAs(t, p, "app-a", "busy", "", platformtest.Credential(t, "app-a", "busy", "u"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	results := make(chan error, 20)
	for range 20 {
		go func() { results <- c.Send(ctx, []byte("m")) }()
	}
	var ok, limited int
	for range 20 {
		switch err := <-results; codeOf(err) {
		case protocol.CodeOK:
			if err != nil {
				t.Fatalf("send: %v", err)
			}
			ok++
		case protocol.CodeRateLimited:
			limited++
		default:
			t.Fatalf("send: %v", err)
		}
	}
	if ok < 5 || limited == 0 {
		t.Fatalf("%d accepted, %d rate limited: want the burst of 5 through and the rest refused 1308", ok, limited)
	}
	select {
	case <-c.Done():
		t.Fatalf("a device over its limit was closed: %v", c.Err())
	default:
	}
	if n := len(biz.Events(api.EventKind_UPLINK, "busy")); n != ok {
		t.Errorf("the business got %d uplinks, the device was told %d were accepted", n, ok)
	}
	// The bucket refills at 0.5 per second of wall-clock time, whatever the load: two seconds
	// after the burst, a send goes through. (Polling would spend refusals and end in the close
	// tested next.)
	time.Sleep(2100 * time.Millisecond)
	if err := c.Send(ctx, []byte("later")); err != nil {
		t.Fatalf("a send once the bucket refilled: %v", err)
	}

	// A device that keeps going far past its limit (over ten times its burst refused in a row).
	raw := rawDial(t, p.Gateway.Addr())
	tok, _ := mustSigner(t, platformtest.Secret).Issue("app-a", "flood", "u", time.Now(), time.Time{})
	raw.send(protocol.SigLogin, 1, (&protocol.Login{AppID: "app-a", DID: "flood", Token: tok}).Append(nil))
	if f := raw.next(); f.Signal != protocol.SigLoginAck {
		t.Fatalf("login: %s", f)
	}
	// One write: the gateway closes in the middle of the flood, and frames written one by one can
	// still be on their way then. On a loaded machine the test wrote slower than the gateway refused,
	// so its next write met the closed socket ("connection reset by peer"), and any of the flood the
	// gateway had not read would have turned its close into a reset that can discard the Close in
	// flight to the device. Written at once (4 KB, one loopback segment), all of it is read first.
	var flood []byte
	for seq := uint64(2); seq < 200; seq++ {
		flood = protocol.AppendFrame(flood, protocol.SigUplink, 0, seq, []byte("x"))
	}
	if _, err := raw.Write(flood); err != nil {
		t.Fatalf("writing the flood: %v", err)
	}
	raw.expectCloseAfter(protocol.CodeRateLimited)
}

// TestBusinessKeyRotatesWithoutARestart: the apps reload from the configuration file; a second key
// works at once, and the first stops working once removed.
func TestBusinessKeyRotatesWithoutARestart(t *testing.T) {
	biz := platformtest.StartBusiness(t)
	path := t.TempDir() + "/plato.yaml"
	write := func(keys string) {
		t.Helper()
		body := "apps:\n  demo:\n    business: " + biz.Addr + "\n    keys: {" + keys + "}\n    auth: {jwt: {secrets: {dev: " + platformtest.JWTSecret + "}}}\n"
		writeFile(t, path, body)
	}
	write("old: the-old-business-key-0123")
	cfg := platformtest.Config(t)
	platformtest.SetBusiness(&cfg, biz.Addr)
	p := platformtest.StartWith(t, cfg, platform.Options{ConfigFile: path, Reload: func() (config.Config, error) {
		c, _, err := config.Load(path, []string{"PLATO_AUTH__TOKEN_SECRET=" + platformtest.Secret}, nil)
		return c, err
	}}, platform.RoleNATS, platform.RoleState)
	online := func(key string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := platformtest.StateClient(t, p.State.Addr()).Online(ctx, &api.OnlineRequest{Caller: &api.Caller{AppId: "demo", Key: key}, Dids: []string{"x"}})
		return err
	}
	// Until the file is first read, the apps are the ones the platform started with.
	write("old: the-old-business-key-0123, new: the-new-business-key-4567")
	poll.Until(t, "the new key to work", func() bool { return online("the-new-business-key-4567") == nil })
	if err := online("the-old-business-key-0123"); err != nil {
		t.Fatalf("the old key stopped working while both are configured: %v", err)
	}
	write("new: the-new-business-key-4567")
	poll.Until(t, "the old key to be refused", func() bool { return online("the-old-business-key-0123") != nil })
	if err := online("the-new-business-key-4567"); err != nil {
		t.Fatalf("the new key: %v", err)
	}
	// A broken edit keeps the apps as they were.
	_, failed := p.Apps.Reloads()
	writeFile(t, path, "apps: {demo: {keys: {}}}\n")
	poll.Until(t, "the broken edit to be refused", func() bool { _, f := p.Apps.Reloads(); return f > failed })
	if err := online("the-new-business-key-4567"); err != nil {
		t.Fatalf("after a broken edit: %v", err)
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// expectCloseAfter reads frames until a Close, which must carry code.
func (c *rawConn) expectCloseAfter(code protocol.Code) {
	c.t.Helper()
	for {
		f := c.next()
		if f.Signal != protocol.SigClose {
			continue
		}
		var m protocol.Close
		if err := m.Decode(f.Body); err != nil || m.Code != code {
			c.t.Fatalf("Close %+v (%v), want code %d", m, err, code)
		}
		return
	}
}

// TestCredentialKeyRotatesUnderTraffic rotates an app's signing key the way an operator would,
// while devices keep connecting: add the new key to the JWKS file beside the old, have the
// backend sign with it, remove the old. No device is refused at any point, with no restart, and
// the old key is refused at the end.
func TestCredentialKeyRotatesUnderTraffic(t *testing.T) {
	const oldKey, newKey = "the-old-jwks-secret-of-32-bytes!!", "the-new-jwks-secret-of-32-bytes!!"
	jwks := t.TempDir() + "/jwks.json"
	writeJWKS := func(keys ...[2]string) {
		t.Helper()
		body := `{"keys":[`
		for i, k := range keys {
			if i > 0 {
				body += ","
			}
			body += `{"kty":"oct","kid":"` + k[0] + `","k":"` + base64.RawURLEncoding.EncodeToString([]byte(k[1])) + `"}`
		}
		writeFile(t, jwks, body+"]}")
	}
	writeJWKS([2]string{"k1", oldKey})
	p, _ := startAll(t, func(c *config.Config) {
		c.Apps["rot"] = config.App{Keys: map[string]string{"k": "rot-key-of-16-bytes"}, Auth: config.AppAuth{JWT: config.JWTAuth{JWKSFile: jwks}}}
	})
	var signer atomic.Pointer[[2]string] // the backend's current key: kid, secret
	signer.Store(&[2]string{"k1", oldKey})
	mint := func(k [2]string, did string) string {
		c, err := credential.MintHS256("rot", k[0], k[1], did, "u-"+did, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	stop := make(chan struct{})
	// failures are refusals of the credential (codes 11xx); slow counts attempts that failed
	// otherwise, giving up on ipconf or the gateway on a loaded machine, which says nothing about
	// the keys. signedOld counts the
	// attempts under way with a credential signed by the old key: the operator removes that key
	// only once the backend's credentials signed with it are out of use, and so does this test.
	var failures, connected, slow, signedOld atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				did := fmt.Sprintf("dev-%d-%d", w, i)
				k := *signer.Load()
				old := k[0] == "k1"
				if old {
					signedOld.Add(1)
				}
				c, err := connectAs(t, p, "rot", did, "", mint(k, did))
				if old {
					signedOld.Add(-1)
				}
				if code, _ := protocol.CodeOf(err); err != nil && code/100 != 11 {
					slow.Add(1)
					continue
				}
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				connected.Add(1)
				c.Close()
			}
		})
	}
	waitConnected := func(n int64) {
		t.Helper()
		target := connected.Load() + n
		// Refusals are what this test is about: on a timeout, say how many there were and why, so
		// that slow logins on a loaded machine and refused ones are told apart.
		if !poll.Wait(60*time.Second, func() bool { return connected.Load() >= target }) {
			t.Fatalf("devices stopped connecting: %d connected (want %d), %d refused; the first refusal: %v",
				connected.Load(), target, failures.Load(), firstErr.Load())
		}
	}
	ipconf := "http://" + p.IPConf.Addr()
	accepted := func(k [2]string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := client.FetchEndpoints(ctx, nil, ipconf, "rot", "probe", mint(k, "probe"))
		return err == nil
	}
	waitConnected(20)
	writeJWKS([2]string{"k1", oldKey}, [2]string{"k2", newKey})
	poll.Until(t, "the new key to be accepted", func() bool { return accepted([2]string{"k2", newKey}) })
	signer.Store(&[2]string{"k2", newKey})
	waitConnected(20)
	poll.Until(t, "the attempts signed with the old key to end", func() bool { return signedOld.Load() == 0 })
	writeJWKS([2]string{"k2", newKey})
	poll.Until(t, "the old key to be refused", func() bool { return !accepted([2]string{"k1", oldKey}) })
	waitConnected(20)
	close(stop)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d devices were refused during the rotation; the first: %v", n, n+connected.Load(), firstErr.Load())
	}
	t.Logf("%d devices connected; %d attempts gave up waiting (a loaded machine), none refused", connected.Load(), slow.Load())
}
