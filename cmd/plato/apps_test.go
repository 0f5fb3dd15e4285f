package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/appstore"
	"github.com/platoim/plato/internal/credential"
	"github.com/platoim/plato/internal/natsd/natsdtest"
	"github.com/platoim/plato/internal/testkit"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

// liveAppSecret signs the live app's device credentials.
const liveAppSecret = "a-live-app-jwt-secret-of-32-bytes!"

// TestLiveAppsAcrossProcesses runs a state server, a gateway and ipconf as processes on a NATS of
// the test's (restartable on the same port, JetStream on disk), and drives `plato apps` as an
// operator would: an app set live is served by every role (ipconf hands out endpoints, the gateway
// logs its device in, the state server takes its business key), its key is changed (the old one
// refused), NATS restarts (the apps stay, and changes after the restart arrive), and it is deleted
// (logins refused).
func TestLiveAppsAcrossProcesses(t *testing.T) {
	node := natsdtest.Standalone(t, testkit.Logger(t))
	biz := platformtest.StartBusiness(t)
	stAddr := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf("{url: %q}", node.URL()),
		fmt.Sprintf("registry: {ttl: 3s}\nstate: {addr: %q}\n", stAddr)+appsYAML(biz.Addr, biz.Addr))
	st := startProc(t, "state", "state", "--config", cfg)
	st.waitLine(reRunning)
	gw := startProc(t, "gateway", "gateway", "--config", cfg)
	gwAddr := gw.waitLine(reGateway)
	ip := startProc(t, "ipconf", "ipconf", "--config", cfg)
	ipURL := ip.waitLine(reIPConf)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// generous: a change reaches every process within a NATS round trip; a busy machine may take
	// far longer than the second promised.
	const within = 30 * time.Second
	apps := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(platoBinary(t), append(append([]string{"apps"}, args...), "--config", cfg)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	appYAML := func(key string) string {
		return fmt.Sprintf("business: %q\nkeys: {dev: %s}\nauth:\n  jwt:\n    secrets: {v1: %q}\n", biz.Addr, key, liveAppSecret)
	}
	cred := func(did string) string {
		c, err := credential.MintHS256("live", "v1", liveAppSecret, did, did, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	fetch := func(did string) error {
		_, err := client.FetchEndpoints(ctx, nil, ipURL, "live", did, cred(did))
		return err
	}
	plato := platformtest.StateClient(t, stAddr)
	online := func(key string) error {
		_, err := plato.Online(ctx, &api.OnlineRequest{Caller: &api.Caller{AppId: "live", Key: key}, Dids: []string{"d1"}})
		return err
	}
	refused := func(err error) bool {
		var pe *api.PlatoError
		return errors.As(err, &pe) && pe.Code == int32(protocol.CodeAppMismatch)
	}

	// Not served yet: ipconf answers 403.
	if err := fetch("d0"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("ipconf before the app is set: %v, want 403", err)
	}
	// plato apps set refuses what the roles would, naming the key, and stores nothing.
	if out, err := apps("keys: {dev: short}\n", "set", "live"); err == nil || !strings.Contains(out, "apps.live.keys.dev") {
		t.Fatalf("a bad app: %v\n%s", err, out)
	}
	file := filepath.Join(t.TempDir(), "live.yaml")
	if err := os.WriteFile(file, []byte(appYAML("live-key-one-of-16b")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := apps("", "set", "live", "-f", file); err != nil {
		t.Fatalf("plato apps set: %v\n%s", err, out)
	}

	// Served by ipconf, the gateway and the state server, without a restart.
	poll.Within(t, within, "ipconf to serve the live app", func() bool { return fetch("d1") == nil })
	// plato token mint signs with the live app's secret, found in NATS KV.
	minted, err := exec.Command(platoBinary(t), "token", "mint", "--app", "live", "--did", "d9", "--config", cfg).Output()
	if err != nil {
		t.Fatalf("plato token mint for the live app: %v", err)
	}
	if _, err := client.FetchEndpoints(ctx, nil, ipURL, "live", "d9", strings.TrimSpace(string(minted))); err != nil {
		t.Errorf("ipconf with plato token mint's credential: %v", err)
	}
	dctx, dcancel := context.WithTimeout(ctx, within)
	dev, err := client.Dial(dctx, client.Config{IPConfURL: ipURL, AppID: "live", DID: "d1", Credential: cred("d1"), LoginTimeout: 20 * time.Second})
	dcancel()
	if err != nil {
		t.Fatalf("a device of the live app logging in: %v", err)
	}
	defer dev.Close()
	sctx, scancel := context.WithTimeout(ctx, within)
	if err := dev.Send(sctx, []byte("hello")); err != nil {
		t.Fatalf("an uplink of the live app: %v", err)
	}
	scancel()
	if ev := biz.WaitEvents(t, api.EventKind_UPLINK, "d1", 1); string(ev[0].Payload) != "hello" {
		t.Errorf("the business got %q", ev[0].Payload)
	}
	poll.Within(t, within, "the state server to take the live app's key", func() bool { return online("live-key-one-of-16b") == nil })
	if out, err := apps("", "list"); err != nil || !strings.Contains(out, "live") || !strings.Contains(out, "kv") || !strings.Contains(out, "demo") {
		t.Errorf("plato apps list: %v\n%s", err, out)
	}
	if out, err := apps("", "show", "live"); err != nil || strings.Contains(out, "live-key-one") || strings.Contains(out, liveAppSecret) || !strings.Contains(out, "hidden") {
		t.Errorf("plato apps show does not mask the secrets: %v\n%s", err, out)
	}
	if out, err := apps("", "show", "live", "--reveal"); err != nil || !strings.Contains(out, "live-key-one-of-16b") {
		t.Errorf("plato apps show --reveal: %v\n%s", err, out)
	}

	// A new key, from standard input: the old one is refused, the new one works.
	if out, err := apps(appYAML("live-key-two-of-16b"), "set", "live"); err != nil {
		t.Fatalf("plato apps set from stdin: %v\n%s", err, out)
	}
	poll.Within(t, within, "the old key refused", func() bool { return refused(online("live-key-one-of-16b")) })
	if err := online("live-key-two-of-16b"); err != nil {
		t.Fatalf("the new key: %v", err)
	}

	// NATS restarts. While it is away the apps stay as they were and plato apps says why it
	// cannot work; once it is back a change arrives again.
	node.Stop()
	if out, err := apps("", "list"); err == nil || !strings.Contains(out, "connecting to NATS at") {
		t.Errorf("plato apps list without NATS: %v\n%s", err, out)
	}
	if err := online("live-key-two-of-16b"); err != nil {
		t.Errorf("the live app while NATS is away: %v", err)
	}
	node.Start()
	if out, err := apps(appYAML("live-key-three-of-16"), "set", "live"); err != nil {
		t.Fatalf("plato apps set after the restart: %v\n%s", err, out)
	}
	poll.Within(t, within, "a change after the restart of NATS", func() bool { return online("live-key-three-of-16") == nil })

	// Deleted: new logins refused by ipconf and the gateway, business calls refused; the device
	// logged in stays (docs/operations.md, "Apps").
	if out, err := apps("", "delete", "live"); err != nil {
		t.Fatalf("plato apps delete: %v\n%s", err, out)
	}
	poll.Within(t, within, "ipconf to refuse the deleted app", func() bool {
		err := fetch("d2")
		return err != nil && strings.Contains(err.Error(), "403")
	})
	poll.Within(t, within, "the state server to refuse the deleted app", func() bool { return refused(online("live-key-three-of-16")) })
	signer, err := token.NewSigner([]byte(platformtest.Secret), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := signer.Issue("live", "d3", "d3", time.Now(), time.Time{})
	poll.Within(t, within, "the gateway to refuse the deleted app", func() bool {
		lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
		defer lcancel()
		c, err := client.Dial(lctx, client.Config{Endpoints: []string{gwAddr}, Token: tok, AppID: "live", DID: "d3"})
		if err == nil {
			c.Close()
			return false
		}
		code, _ := protocol.CodeOf(err)
		return code == protocol.CodeUnknownApp
	})
	select {
	case <-dev.Done():
		t.Errorf("the logged-in device was closed by the delete: %v", dev.Err())
	default:
		// It stays, but its uplinks have no business server to go to any more.
		sctx, scancel := context.WithTimeout(ctx, within)
		err := dev.Send(sctx, []byte("after the delete"))
		scancel()
		if code, _ := protocol.CodeOf(err); code != protocol.CodeNoBusiness {
			t.Errorf("an uplink of a deleted app's device: %v, want code %d", err, protocol.CodeNoBusiness)
		}
	}
	if out, err := apps("", "delete", "live"); err == nil || !strings.Contains(out, "no such app") {
		t.Errorf("deleting twice: %v\n%s", err, out)
	}
	for _, p := range []*proc{ip, gw, st} {
		p.interrupt()
	}
	var logs bytes.Buffer
	for _, p := range []*proc{ip, gw, st} {
		logs.WriteString(p.stderr())
	}
	if strings.Contains(logs.String(), "panic") {
		t.Errorf("a process panicked:\n%s", logs.String())
	}
}

func TestShowMasksSecrets(t *testing.T) {
	a := platformtest.Config(t).Apps["demo"]
	a.Auth.JWT.Leeway = time.Minute
	a.AllowedOrigins = []string{"https://app.example.com"}
	m, err := appMap(a)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printAppMap(&out, m, false); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, secret := range []string{platformtest.KeyOf("demo"), platformtest.JWTSecret} {
		if strings.Contains(s, secret) {
			t.Errorf("a secret shows:\n%s", s)
		}
	}
	for _, want := range []string{"leeway: 1m0s", "https://app.example.com", "hidden"} {
		if !strings.Contains(s, want) {
			t.Errorf("no %q in:\n%s", want, s)
		}
	}
	// Whatever an app gains, a setting named like a secret is masked too.
	out.Reset()
	if err := printAppMap(&out, map[string]any{"webhook": map[string]any{"url": "http://x", "secret": "s3cr3t", "signing_key": "k3y"}}, false); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); strings.Contains(s, "s3cr3t") || strings.Contains(s, "k3y") || !strings.Contains(s, "http://x") {
		t.Errorf("a new secret field shows:\n%s", s)
	}
}

func TestListShowsSourcesAndRefusedValues(t *testing.T) {
	file := platformtest.Config(t).Apps
	live := []appstore.Entry{
		{ID: "demo", Text: []byte("keys: {dev: a-live-key-of-16-bytes}\nauth: {callback: true}\nbusiness: 127.0.0.1:7\n"), Revision: 3},
		{ID: "news", Text: []byte("keys: {dev: a-live-key-of-16-bytes}\nauth: {jwt: {secrets: {k: " + liveAppSecret + "}}}\n"), Revision: 4},
		{ID: "oops", Text: []byte("keys: {dev: short}\n"), Revision: 5},
	}
	var out bytes.Buffer
	printApps(&out, file, live)
	lines := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			lines[f[0]] = l
		}
	}
	for id, want := range map[string][]string{
		"demo":  {"callback", "127.0.0.1:7", "3", "kv (over file)"},
		"app-a": {"jwt", "-", "file"},
		"news":  {"jwt", "4", "kv"},
		"oops":  {"5", "REFUSED", "apps.oops.keys.dev"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[id], w) {
				t.Errorf("%s: no %q in %q", id, w, lines[id])
			}
		}
	}
}
