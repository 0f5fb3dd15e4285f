package platform_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// extendsDefault is default.yaml's auth stage, refusing the dids in deny at login (what the
// gateway's token gate cannot do, so a refusal shows the stage ran).
func extendsDefault(authBin, deny string) string {
	return fmt.Sprintf(`version: 1
stages:
  - name: auth
    plugin: %s
    signals: [login, uplink]
    timeout: 5s
    config: {token_secret: %q, deny_dids: [%s]}
`, authBin, platformtest.Secret, deny)
}

// An app file with `extends: default` and one stage of its own runs default.yaml's auth and its
// own stage, and follows default.yaml when it changes.
func TestAppPipelineExtendingTheDefaultKeepsAuth(t *testing.T) {
	dir := t.TempDir()
	auth := platformtest.BuildPlugin(t, "plugins/auth")
	write := func(name, body string) {
		t.Helper()
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	write("default.yaml", extendsDefault(auth, "mallory"))
	// demo's own stage: the auth plugin again, as an uplink gate this app alone has.
	write("demo.yaml", fmt.Sprintf(`version: 1
extends: default
stages:
  - name: nouplink
    after: auth
    plugin: %s
    signals: [uplink]
    timeout: 5s
    config: {token_secret: %q, acl: {uplink: deny}}
`, auth, platformtest.Secret))
	p, _ := startAll(t, func(c *config.Config) {
		c.Pipeline.Dir = dir
		c.Pipeline.PluginDir = filepath.Dir(auth)
	})
	good := mustSigner(t, platformtest.Secret)

	if ack := rawDial(t, p.Gateway.Addr()).login(mustSigner(t, "not-the-platform-secret-0123"), "eve"); ack.Code == protocol.CodeOK {
		t.Fatalf("a bad token logged in: %+v", ack)
	}
	if ack := rawDial(t, p.Gateway.Addr()).login(good, "mallory"); ack.Code != protocol.CodeForbidden {
		t.Fatalf("mallory, denied by default.yaml's auth stage, got %+v; want code %d", ack, protocol.CodeForbidden)
	}
	alice := dial(t, p, "alice") // logs in: auth lets her through
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if code, _ := protocol.CodeOf(alice.Send(ctx, []byte("hi"))); code != protocol.CodeForbidden {
		t.Fatalf("an uplink of demo got code %d; want %d from demo's own stage", code, protocol.CodeForbidden)
	}

	// Editing default.yaml alone re-derives demo's chain: trudy is refused from now on.
	if ack := rawDial(t, p.Gateway.Addr()).login(good, "trudy"); ack.Code != protocol.CodeOK {
		t.Fatalf("trudy before the edit: %+v", ack)
	}
	write("default.yaml", extendsDefault(auth, "mallory, trudy"))
	poll.Within(t, 30*time.Second, "demo to pick up default.yaml's new deny list", func() bool {
		return rawDial(t, p.Gateway.Addr()).login(good, "trudy").Code == protocol.CodeForbidden
	})
	if code, _ := protocol.CodeOf(alice.Send(ctx, []byte("hi"))); code != protocol.CodeForbidden {
		t.Fatalf("after the edit an uplink of demo got code %d; want %d from demo's own stage", code, protocol.CodeForbidden)
	}
}
