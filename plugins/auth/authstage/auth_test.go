package authstage_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/plugins/auth/authstage"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
	"github.com/platoim/plato/sdk/stage/stagetest"
	"github.com/platoim/plato/sdk/token"
)

const secret = "test-secret-0123456789"

func signer(t *testing.T, key string, ttl time.Duration) *token.Signer {
	t.Helper()
	s, err := token.NewSigner([]byte(key), ttl)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// harness starts the auth stage with the test secret and cfg's other keys.
func harness(t *testing.T, cfg map[string]any) *stagetest.Harness {
	t.Helper()
	if cfg == nil {
		cfg = map[string]any{}
	}
	cfg["token_secret"] = secret
	return stagetest.New(t, authstage.New(), stagetest.Options{App: "demo", Config: cfg})
}

func wantReject(t *testing.T, what string, r stage.Reply, code protocol.Code, msg string) {
	t.Helper()
	if r.Verdict != stage.Reject || r.Code != uint16(code) || !strings.Contains(r.Message, msg) {
		t.Errorf("%s: got %+v, want reject %d with a message containing %q", what, r, code, msg)
	}
}

func wantContinue(t *testing.T, what string, r stage.Reply) {
	t.Helper()
	if r.Verdict != stage.Continue || r.Replace || r.Code != 0 {
		t.Errorf("%s: got %+v, want continue", what, r)
	}
}

func TestLoginTokens(t *testing.T) {
	h := harness(t, nil)
	now := time.Now()
	good := signer(t, secret, time.Hour)
	c := h.Conn("d1")
	c.UID = "u1"

	tok, _ := good.Issue("demo", "d1", "u1", now, time.Time{})
	wantContinue(t, "valid token", h.Login(c, tok))
	bob := c
	bob.UID = "bob"
	wantReject(t, "token of another user", h.Login(bob, tok), protocol.CodeTokenMismatch, "another user")

	forged, _ := signer(t, "another-secret-0123456789", time.Hour).Issue("demo", "d1", "u1", now, time.Time{})
	wantReject(t, "forged token", h.Login(c, forged), protocol.CodeTokenInvalid, "bad signature")
	wantReject(t, "garbage token", h.Login(c, "not-a-token"), protocol.CodeTokenInvalid, "invalid token")
	wantReject(t, "no token", h.Login(c, ""), protocol.CodeTokenInvalid, "invalid token")

	expired, _ := good.Issue("demo", "d1", "u1", now.Add(-2*time.Hour), time.Time{})
	wantReject(t, "expired token", h.Login(c, expired), protocol.CodeTokenExpired, "token expired")

	otherApp, _ := good.Issue("other-app", "d1", "u1", now, time.Time{})
	wantReject(t, "token of another app", h.Login(c, otherApp), protocol.CodeTokenMismatch, "")
	otherDID, _ := good.Issue("demo", "d2", "u1", now, time.Time{})
	wantReject(t, "token of another did", h.Login(c, otherDID), protocol.CodeTokenMismatch, "")
}

func TestDenyDIDs(t *testing.T) {
	h := harness(t, map[string]any{"deny_dids": []string{"banned"}})
	s := signer(t, secret, time.Hour)
	c := h.Conn("banned")
	c.UID = "u1"
	tok, _ := s.Issue("demo", "banned", "u1", time.Now(), time.Time{})
	wantReject(t, "login of a denied did", h.Login(c, tok), protocol.CodeForbidden, "forbidden")
	// A connection that logged in before the did was denied is cut off too.
	wantReject(t, "uplink of a denied did", h.Uplink(c, 1, []byte("hi")), protocol.CodeForbidden, "forbidden")

	ok := h.Conn("fine")
	ok.UID = "u1"
	tok, _ = s.Issue("demo", "fine", "u1", time.Now(), time.Time{})
	wantContinue(t, "login of another did", h.Login(ok, tok))
}

func TestACL(t *testing.T) {
	h := harness(t, map[string]any{"acl": map[string]string{"uplink": "deny", "heartbeat": "allow"}})
	c := h.Conn("d1")
	wantReject(t, "denied uplink", h.Uplink(c, 1, []byte("hi")), protocol.CodeForbidden, "forbidden: uplink")
	wantContinue(t, "allowed heartbeat", h.Heartbeat(c, 1))
	wantContinue(t, "downlink (not listed: allowed)", h.Downlink(c, 1, 7, []byte("x")))

	// Identity comes from the connection only: a payload naming another did changes nothing.
	h2 := harness(t, map[string]any{"deny_dids": []string{"banned"}})
	wantContinue(t, "payload naming a denied did", h2.Uplink(h2.Conn("d1"), 1, []byte(`{"did":"banned"}`)))
}

func TestSignals(t *testing.T) {
	h := harness(t, nil)
	want := []stage.Signal{stage.SignalLogin, stage.SignalUplink, stage.SignalDownlink, stage.SignalHeartbeat, stage.SignalDisconnect}
	if strings.Join(sigs(h.Signals), ",") != strings.Join(sigs(want), ",") {
		t.Errorf("signals: got %v, want %v", h.Signals, want)
	}
	if h.Info.Name != "auth" {
		t.Errorf("name: got %q", h.Info.Name)
	}
}

func sigs(s []stage.Signal) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = string(x)
	}
	return out
}

func TestSecretFromEnvironment(t *testing.T) {
	t.Setenv(authstage.DefaultTokenSecretEnv, secret)
	h := stagetest.New(t, authstage.New(), stagetest.Options{App: "demo"})
	tok, _ := signer(t, secret, time.Hour).Issue("demo", "d1", "u1", time.Now(), time.Time{})
	c := h.Conn("d1")
	c.UID = "u1"
	wantContinue(t, "login", h.Login(c, tok))

	t.Setenv("MY_AUTH_SECRET", "another-secret-0123456789")
	h = stagetest.New(t, authstage.New(), stagetest.Options{App: "demo", Config: map[string]any{"token_secret_env": "MY_AUTH_SECRET"}})
	wantReject(t, "token of the other secret", h.Login(c, tok), protocol.CodeTokenInvalid, "")
}

func TestInitErrors(t *testing.T) {
	t.Setenv(authstage.DefaultTokenSecretEnv, "")
	for name, tc := range map[string]struct {
		cfg  map[string]any
		want string
	}{
		"no secret":    {nil, "no token secret"},
		"short secret": {map[string]any{"token_secret": "0123456789"}, "at least 16"},
		"bad acl":      {map[string]any{"token_secret": secret, "acl": map[string]string{"uplink": "nope"}}, "acl.uplink"},
		"unknown key":  {map[string]any{"token_secret": secret, "secret": "x"}, "unknown field"},
	} {
		t.Run(name, func(t *testing.T) {
			h := stagetest.New(t, authstage.New(), stagetest.Options{App: "demo", Config: tc.cfg, SkipInit: true})
			err := h.Init()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Init: got %v, want an error containing %q", err, tc.want)
			}
			// A stage that failed Init lets nothing through.
			wantReject(t, "uplink after failed init", h.Uplink(h.Conn("d1"), 1, nil), protocol.CodeForbidden, "not initialised")
		})
	}
}

func TestRequireUIDMatch(t *testing.T) {
	h := harness(t, map[string]any{"require_uid_match": true})
	s := signer(t, secret, time.Hour)
	tok, _ := s.Issue("demo", "d1", "alice", time.Now(), time.Time{})

	noUID := h.Conn("d1")
	wantReject(t, "login without the token's uid", h.Login(noUID, tok), protocol.CodeTokenMismatch, "another user")

	c := h.Conn("d1")
	c.UID = "alice"
	wantContinue(t, "login", h.Login(c, tok))
	key := fmt.Sprintf("uid/%s/%d", c.GatewayID, c.ConnID)
	if v, ok := h.Host.State("demo", key); !ok || string(v) != "alice" {
		t.Fatalf("uid record %s: got %q, %v", key, v, ok)
	}
	wantContinue(t, "uplink as alice", h.Uplink(c, 1, []byte("hi")))
	mallory := c
	mallory.UID = "mallory"
	wantReject(t, "uplink as another uid", h.Uplink(mallory, 2, []byte("hi")), protocol.CodeForbidden, "uid does not match")

	// The record is in the host: a restarted plugin over the same host still knows the login.
	h2 := stagetest.New(t, authstage.New(), stagetest.Options{App: "demo", Host: h.Host,
		Config: map[string]any{"token_secret": secret, "require_uid_match": true}})
	wantContinue(t, "uplink after restart", h2.Uplink(c, 3, []byte("hi")))
	wantReject(t, "other uid after restart", h2.Uplink(mallory, 4, []byte("hi")), protocol.CodeForbidden, "uid does not match")

	wantContinue(t, "disconnect", h2.Disconnect(c, uint16(protocol.CodeClientClose)))
	if _, ok := h.Host.State("demo", key); ok {
		t.Error("uid record still there after disconnect")
	}
	wantReject(t, "uplink of a closed connection", h2.Uplink(c, 5, []byte("hi")), protocol.CodeForbidden, "no login record")
}

// ActsOn declares login always, and the other signals only under a config that can refuse them
// (or, for disconnect, has a record to drop); and every signal it leaves out is one its handler
// would have let through anyway, so the host skipping it changes nothing.
func TestActsOnFollowsTheConfig(t *testing.T) {
	all := []stage.Signal{stage.SignalLogin, stage.SignalUplink, stage.SignalHeartbeat, stage.SignalDownlink, stage.SignalDisconnect}
	for _, tc := range []struct {
		name string
		cfg  map[string]any
		want []stage.Signal
	}{
		{"empty", nil, []stage.Signal{stage.SignalLogin}},
		{"shipped", map[string]any{"acl": map[string]any{"uplink": "allow"}}, []stage.Signal{stage.SignalLogin}},
		{"uplink denied", map[string]any{"acl": map[string]any{"uplink": "deny"}}, []stage.Signal{stage.SignalLogin, stage.SignalUplink}},
		{"heartbeat denied", map[string]any{"acl": map[string]any{"heartbeat": "deny", "downlink": "allow"}}, []stage.Signal{stage.SignalLogin, stage.SignalHeartbeat}},
		{"deny_dids", map[string]any{"deny_dids": []string{"mallory"}}, []stage.Signal{stage.SignalLogin, stage.SignalUplink, stage.SignalHeartbeat, stage.SignalDownlink}},
		{"require_uid_match", map[string]any{"require_uid_match": true}, all},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := harness(t, tc.cfg)
			got, declared := stage.Declared(h.Processor) // over the SDK's gRPC adapters
			if !declared || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("declared %v %v, want %v", declared, got, tc.want)
			}
			conn := h.Conn("mallory")
			conn.UID = "u-other" // the login record, if any, is another uid's
			for _, sig := range all {
				if slices.Contains(got, sig) {
					continue
				}
				var r stage.Reply
				switch sig {
				case stage.SignalUplink:
					r = h.Uplink(conn, 1, []byte("x"))
				case stage.SignalHeartbeat:
					r = h.Heartbeat(conn, 1)
				case stage.SignalDownlink:
					r = h.Downlink(conn, 1, 1, []byte("x"))
				case stage.SignalDisconnect:
					r = h.Disconnect(conn, 1209)
				}
				wantContinue(t, string(sig)+" left out by ActsOn", r)
			}
		})
	}
}
