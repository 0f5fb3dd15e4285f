package authstage

import (
	"fmt"
	"strings"

	"github.com/platoim/plato/sdk/stage"
	"github.com/platoim/plato/sdk/token"
)

// DefaultTokenSecretEnv is the environment variable the secret is read from when token_secret is
// empty: the same one Plato's own configuration uses for auth.token_secret, so a plugin process
// started by the state server verifies with the secret ipconf signs with.
const DefaultTokenSecretEnv = "PLATO_AUTH__TOKEN_SECRET"

// The values an acl entry may take.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Config is the stage's config block in the pipeline YAML. Unknown fields are an error, so a typo
// fails the pipeline load instead of silently loosening a rule.
type Config struct {
	// TokenSecret is the HMAC secret tokens are signed with (at least 16 bytes). Empty: read it
	// from the environment variable TokenSecretEnv. Prefer the environment: YAML is often committed.
	TokenSecret string `json:"token_secret"`
	// TokenSecretEnv names the environment variable holding the secret when TokenSecret is empty.
	// Default DefaultTokenSecretEnv.
	TokenSecretEnv string `json:"token_secret_env"`
	// ACL says, per signal, whether a logged-in device may send it: "allow" or "deny". A signal
	// not listed is allowed. Keys: uplink, heartbeat, downlink (a denied downlink is not sent to
	// the device). Login is governed by the token and deny_dids, not by the ACL. Default: empty
	// (everything allowed).
	ACL map[string]string `json:"acl"`
	// DenyDIDs are devices refused with 1104 at login and on every later signal (so a did added
	// by a reload is cut off even on a connection that logged in before). Default: none.
	DenyDIDs []string `json:"deny_dids"`
	// RequireUIDMatch makes the stage remember the uid each connection logged in with (in the
	// host's per-app state, so a plugin restart keeps it) and refuse, with 1104, any later signal
	// whose connection carries another uid. It also refuses a login without a uid (1104). List
	// disconnect among the stage's signals when it is on, so the record is removed when the
	// connection closes. Default false.
	RequireUIDMatch bool `json:"require_uid_match"`
}

// aclSignals are the signals an ACL may name.
var aclSignals = map[stage.Signal]bool{
	stage.SignalUplink:    true,
	stage.SignalHeartbeat: true,
	stage.SignalDownlink:  true,
}

// parseConfig decodes and validates raw and returns it with the secret; getenv reads the
// environment (os.Getenv).
func parseConfig(raw []byte, getenv func(string) string) (Config, []byte, error) {
	var c Config
	if err := stage.DecodeConfig(raw, &c); err != nil {
		return c, nil, fmt.Errorf("auth: %w", err)
	}
	if c.TokenSecretEnv == "" {
		c.TokenSecretEnv = DefaultTokenSecretEnv
	}
	secret := c.TokenSecret
	where := "config token_secret"
	if secret == "" {
		secret = getenv(c.TokenSecretEnv)
		where = "environment variable " + c.TokenSecretEnv
	}
	if secret == "" {
		return c, nil, fmt.Errorf("auth: no token secret: set token_secret in the stage config or the environment variable %s", c.TokenSecretEnv)
	}
	if len(secret) < token.MinSecretLen {
		return c, nil, fmt.Errorf("auth: token secret from %s is %d bytes; it must be at least %d", where, len(secret), token.MinSecretLen)
	}
	for sig, v := range c.ACL {
		if !aclSignals[stage.Signal(sig)] {
			return c, nil, fmt.Errorf("auth: acl.%s: not a signal an ACL can govern (uplink, heartbeat, downlink)", sig)
		}
		if v != Allow && v != Deny {
			return c, nil, fmt.Errorf("auth: acl.%s: %q is neither %q nor %q", sig, v, Allow, Deny)
		}
	}
	for i, d := range c.DenyDIDs {
		if strings.TrimSpace(d) == "" {
			return c, nil, fmt.Errorf("auth: deny_dids[%d]: empty did", i)
		}
	}
	return c, []byte(secret), nil
}
