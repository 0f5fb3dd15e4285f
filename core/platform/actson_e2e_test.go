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

// authDefault is the shipped default.yaml's auth stage (login and uplink listed, acl.uplink:
// allow), with deny as its deny_dids.
func authDefault(authBin, deny string) string {
	return fmt.Sprintf(`version: 1
stages:
  - name: auth
    plugin: %s
    signals: [login, uplink]
    timeout: 5s
    on_failure: fail_closed
    config: {token_secret: %q, acl: {uplink: allow}, deny_dids: [%s]}
`, authBin, platformtest.Secret, deny)
}

// The real auth plugin, with the shipped config, declares it acts on login only: devices' uplinks
// are ACKed without a call to it (its call counter does not move), though the YAML lists uplink.
// A reload that adds a did to deny_dids makes it act on uplinks: that device's uplinks are refused
// with 1104 by the stage, others pass through it. Removing the did again skips it again.
func TestAuthStageSkippedForUplinksUntilItsConfigNeedsThem(t *testing.T) {
	dir := t.TempDir()
	auth := platformtest.BuildPlugin(t, "plugins/auth")
	write := func(body string) {
		t.Helper()
		tmp := filepath.Join(dir, ".default.yaml.tmp")
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "default.yaml")); err != nil {
			t.Fatal(err)
		}
	}
	write(authDefault(auth, ""))
	p, _ := startAll(t, func(c *config.Config) {
		c.Pipeline.Dir = dir
		c.Pipeline.PluginDir = filepath.Dir(auth)
	})
	if p.Admin == nil {
		t.Fatal("no admin server")
	}
	calls := func() float64 {
		return scrapeMetrics(t, p.Admin.Addr()).sum("plato_pipeline_stage_calls_total", `app="default"`, `stage="auth"`)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	send := func(c interface {
		Send(context.Context, []byte) error
	}, what string) protocol.Code {
		t.Helper()
		err := c.Send(ctx, []byte(what))
		if err == nil {
			return protocol.CodeOK
		}
		code, ok := protocol.CodeOf(err)
		if !ok {
			t.Fatalf("sending %s: %v", what, err)
		}
		return code
	}

	alice, bob := dial(t, p, "alice"), dial(t, p, "bob") // their logins go through the stage
	base := calls()
	if base < 1 {
		t.Fatalf("the auth stage was never called (%v calls): did the logins not go through it?", base)
	}
	for i := range 10 {
		if code := send(alice, fmt.Sprintf("skip %d", i)); code != protocol.CodeOK {
			t.Fatalf("uplink %d with the shipped config: code %d", i, code)
		}
	}
	if got := calls(); got != base {
		t.Fatalf("the auth stage was called %v times for 10 uplinks; its config acts on login only", got-base)
	}

	// deny_dids: alice's uplinks now reach the stage and are refused, bob's pass through it.
	write(authDefault(auth, "alice"))
	poll.Within(t, 20*time.Second, "the reload to make auth refuse alice's uplinks", func() bool {
		return send(alice, "denied?") == protocol.CodeForbidden
	})
	before := calls()
	if code := send(bob, "through auth"); code != protocol.CodeOK {
		t.Fatalf("bob's uplink with alice denied: code %d", code)
	}
	if got := calls(); got <= before {
		t.Fatalf("bob's uplink did not reach the auth stage (calls %v -> %v) though its config acts on uplinks", before, got)
	}

	// And back: no did denied, uplinks skip the stage again.
	write(authDefault(auth, ""))
	poll.Within(t, 20*time.Second, "the reload to let alice's uplinks through", func() bool {
		return send(alice, "allowed?") == protocol.CodeOK
	})
	before = calls()
	for i := range 5 {
		if code := send(alice, fmt.Sprintf("skip again %d", i)); code != protocol.CodeOK {
			t.Fatalf("uplink %d after the reload: code %d", i, code)
		}
	}
	if got := calls(); got != before {
		t.Fatalf("the auth stage was called %v times for uplinks after its deny list emptied", got-before)
	}
}
