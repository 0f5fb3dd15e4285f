package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

const kvSecret = "an-appkv-test-jwt-secret-of-32-bytes"

func TestParseAppReadsWhatTheFileWould(t *testing.T) {
	yamlText := `
keys: {dev: a-business-key-of-16}
business: 127.0.0.1:9000
auth:
  jwt:
    secrets: {v1: ` + kvSecret + `}
    leeway: 1m
    issuer: me
limits: {connections: 10, device_uplinks_per_sec: 5.5}
allowed_origins: [https://app.example.com]
`
	jsonText := `{"keys": {"dev": "a-business-key-of-16"}, "business": "127.0.0.1:9000",
	  "auth": {"jwt": {"secrets": {"v1": "` + kvSecret + `"}, "leeway": "1m", "issuer": "me"}},
	  "limits": {"connections": 10, "device_uplinks_per_sec": 5.5}, "allowed_origins": ["https://app.example.com"]}`
	for name, text := range map[string]string{"yaml": yamlText, "json": jsonText} {
		a, err := ParseApp("chat", []byte(text))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if a.Keys["dev"] != "a-business-key-of-16" || a.Business != "127.0.0.1:9000" || a.Auth.JWT.Secrets["v1"] != kvSecret ||
			a.Auth.JWT.Leeway != time.Minute || a.Auth.JWT.Issuer != "me" || a.Limits.Connections != 10 ||
			a.Limits.DeviceUplinksPerSec != 5.5 || len(a.AllowedOrigins) != 1 {
			t.Errorf("%s: decoded %+v", name, a)
		}
		// The same text under apps.chat of a configuration file decodes alike.
		body := "auth: {token_secret: a-token-secret-of-16}\napps:\n  chat:\n    " + strings.ReplaceAll(strings.TrimSpace(text), "\n", "\n    ") + "\n"
		path := writeFile(t, body)
		cfg, _, err := Load(path, nil, nil)
		if err != nil {
			t.Fatalf("%s in a file: %v", name, err)
		}
		if !reflect.DeepEqual(cfg.Apps["chat"], a) {
			t.Errorf("%s: the file decodes %+v, ParseApp %+v", name, cfg.Apps["chat"], a)
		}
	}
}

func TestParseAppRefusesWhatTheFileWould(t *testing.T) {
	for text, want := range map[string]string{
		"":                   "apps.chat.keys: is empty",
		"keys: {dev: short}": "apps.chat.keys.dev: must be at least 16 bytes",
		"keys: [1, 2":        "apps.chat: parsing",
		"just a string":      "apps.chat",
		"keys: {dev: a-business-key-of-16}\nauth: {callback: true}":             "apps.chat.auth.callback: needs apps.chat.business",
		"keys: {dev: a-business-key-of-16}\nauth: {jwt: {secrets: {k: short}}}": "apps.chat.auth.jwt.secrets.k: must be at least 32 bytes",
		"keys: {dev: a-business-key-of-16}\nauth: {jwt: {leeway: soon}}":        "apps.chat",
	} {
		_, err := ParseApp("chat", []byte(text))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseApp(%q) = %v, want an error with %q", text, err, want)
		}
	}
	if _, err := ParseApp("Chat!", []byte("keys: {dev: a-business-key-of-16}\nauth: {callback: true}\nbusiness: 127.0.0.1:1")); err == nil || !strings.Contains(err.Error(), "not a valid app ID") {
		t.Errorf("a bad ID: %v", err)
	}
	if _, err := ParseApp("chat", make([]byte, MaxAppText+1)); err == nil {
		t.Error("an oversized value was accepted")
	}
}

func FuzzParseApp(f *testing.F) {
	for _, s := range []string{
		"keys: {dev: a-business-key-of-16}\nauth: {jwt: {secrets: {k: " + kvSecret + "}}}",
		`{"keys": {"dev": "a-business-key-of-16"}, "auth": {"callback": true}, "business": "127.0.0.1:1"}`,
		"limits: {connections: -1}", "allowed_origins: [x]", "- a\n- b", "a: &x [*x]", "", "\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		a, err := ParseApp("fuzz", text)
		if err != nil {
			return
		}
		// What is accepted validates again, unchanged.
		if err := ValidateApp("fuzz", a); err != nil {
			t.Fatalf("accepted, then refused: %v", err)
		}
	})
}
