package authstage

import (
	"strings"
	"testing"
)

const testSecret = "0123456789abcdef0123"

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseConfigSecret(t *testing.T) {
	_, secret, err := parseConfig([]byte(`{"token_secret": "`+testSecret+`"}`), env(nil))
	if err != nil || string(secret) != testSecret {
		t.Fatalf("inline secret: got %q, %v", secret, err)
	}
	_, secret, err = parseConfig(nil, env(map[string]string{DefaultTokenSecretEnv: testSecret}))
	if err != nil || string(secret) != testSecret {
		t.Fatalf("default env: got %q, %v", secret, err)
	}
	_, secret, err = parseConfig([]byte(`{"token_secret_env": "MY_SECRET"}`), env(map[string]string{"MY_SECRET": testSecret, DefaultTokenSecretEnv: "other-secret-of-16-bytes"}))
	if err != nil || string(secret) != testSecret {
		t.Fatalf("named env: got %q, %v", secret, err)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for cfg, want := range map[string]string{
		`{}`:                           "no token secret: set token_secret in the stage config or the environment variable PLATO_AUTH__TOKEN_SECRET",
		`{"token_secret_env": "NOPE"}`: "environment variable NOPE",
		`{"token_secret": "short"}`:    "token secret from config token_secret is 5 bytes; it must be at least 16",
		`{"token_secret": "` + testSecret + `", "acl": {"uplink": "maybe"}}`: `acl.uplink: "maybe" is neither`,
		`{"token_secret": "` + testSecret + `", "acl": {"login": "deny"}}`:   "acl.login: not a signal an ACL can govern",
		`{"token_secret": "` + testSecret + `", "deny_dids": [""]}`:          "deny_dids[0]: empty did",
		`{"token_secret": "` + testSecret + `", "tokensecret": "x"}`:         "unknown field",
	} {
		_, _, err := parseConfig([]byte(cfg), env(nil))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got error %v, want one containing %q", cfg, err, want)
		}
	}
}
