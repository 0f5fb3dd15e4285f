package ipconf

import (
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

// TestListNeedsTheAppsCredential is the trust contract of GET /ip/list: a token only for a
// credential the device's app signed, for that app and that device; refusals as JSON errors.
func TestListNeedsTheAppsCredential(t *testing.T) {
	reg := startRegistry(t)
	s := startServer(t, Config{}, reg)
	rep := startReporter(t, reg)
	rep.set(gateway("gw-1", "127.0.0.1:8901", 1e9, 1))
	poll.Until(t, "a gateway", func() bool { return get(t, s, "/ip/list?app_id=demo&did=d1").status == http.StatusOK })

	const q = "/ip/list?app_id=demo&did=alice"
	good := jwtFor(t, "demo", "alice", "alice-uid", nil)
	hour := time.Hour
	for _, tc := range []struct {
		name, path, auth string
		status           int
		code             protocol.Code
	}{
		{"no credential", q, "", http.StatusUnauthorized, protocol.CodeTokenInvalid},
		{"not a bearer", q, "Basic " + good, http.StatusUnauthorized, protocol.CodeTokenInvalid},
		{"empty bearer", q, "Bearer ", http.StatusUnauthorized, protocol.CodeTokenInvalid},
		{"garbage", q, "Bearer not-a-jwt", http.StatusUnauthorized, protocol.CodeTokenInvalid},
		{"tampered", q, "Bearer " + good[:len(good)-3] + "xyz", http.StatusUnauthorized, protocol.CodeTokenInvalid},
		{"expired", q, "Bearer " + jwtFor(t, "demo", "alice", "u", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-hour).Unix() }), http.StatusUnauthorized, protocol.CodeTokenExpired},
		{"not yet valid", q, "Bearer " + jwtFor(t, "demo", "alice", "u", func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(hour).Unix() }), http.StatusUnauthorized, protocol.CodeTokenExpired},
		{"another app's audience", q, "Bearer " + jwtFor(t, "other", "alice", "u", nil), http.StatusUnauthorized, protocol.CodeTokenMismatch},
		{"another device", q, "Bearer " + jwtFor(t, "demo", "mallory", "u", nil), http.StatusUnauthorized, protocol.CodeTokenMismatch},
		{"alg none", q, "Bearer " + noneJWT(t), http.StatusUnauthorized, protocol.CodeTokenInvalid},
		{"an app not configured", "/ip/list?app_id=nope&did=alice", "Bearer " + good, http.StatusForbidden, protocol.CodeUnknownApp},
		{"bad parameters first", "/ip/list?app_id=demo", "Bearer " + good, http.StatusBadRequest, protocol.CodeInvalidArgument},
	} {
		r := getWith(t, s, tc.path, tc.auth)
		if r.status != tc.status || r.err.Error.Code != tc.code {
			t.Errorf("%s: %d %s, want %d with code %d", tc.name, r.status, r.raw, tc.status, tc.code)
		}
		if tc.auth != "" && strings.Contains(r.raw, strings.TrimPrefix(tc.auth, "Bearer ")) && len(tc.auth) > 20 {
			t.Errorf("%s: the answer echoes the credential", tc.name)
		}
	}

	// The token parameter, for clients that cannot set headers.
	r := getWith(t, s, q+"&token="+url.QueryEscape(good), "")
	if r.status != http.StatusOK || r.list.UID != "alice-uid" {
		t.Fatalf("token parameter: %d %s", r.status, r.raw)
	}
	// The gateway token binds the credential's uid, and expires no later than the credential.
	v, _ := token.NewSigner(testSecret, time.Hour)
	soon := time.Now().Add(2 * time.Minute)
	r = getWith(t, s, q, "Bearer "+jwtFor(t, "demo", "alice", "alice-uid", func(c jwt.MapClaims) { c["exp"] = soon.Unix() }))
	c, err := v.Verify(r.list.Token, "demo", "alice", time.Now())
	if err != nil || c.UID != "alice-uid" || r.list.TokenExpiresAt > soon.Unix() {
		t.Fatalf("token %+v (%v), expires %d, want uid alice-uid and no later than %d", c, err, r.list.TokenExpiresAt, soon.Unix())
	}
}

func noneJWT(t *testing.T) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
		"sub": "u", "did": "alice", "aud": "demo", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestListSurvivesForgedCredentials sends 10,000 forged credentials and an oversized header: all
// are refused, nothing accumulates, and a real device is still served.
func TestListSurvivesForgedCredentials(t *testing.T) {
	reg := startRegistry(t)
	s := startServer(t, Config{}, reg)
	rep := startReporter(t, reg)
	rep.set(gateway("gw-1", "127.0.0.1:8901", 1e9, 1))
	poll.Until(t, "a gateway", func() bool { return get(t, s, "/ip/list?app_id=demo&did=d1").status == http.StatusOK })

	keepAlive := &http.Client{Timeout: 10 * time.Second}
	before := runtime.NumGoroutine()
	const forged = 10000
	for i := range forged {
		cred := jwtFor(t, "demo", "alice", "u", nil)
		cred = cred[:len(cred)-4] + string(rune('A'+i%26)) + "xyz" // a signature that never matches
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.Addr()+"/ip/list?app_id=demo&did=alice", nil)
		req.Header.Set("Authorization", "Bearer "+cred)
		resp, err := keepAlive.Do(req)
		if err != nil {
			t.Fatalf("forged credential %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("forged credential %d answered %d", i, resp.StatusCode)
		}
	}
	if got := s.refused.Load(int(protocol.CodeTokenInvalid)); got < forged {
		t.Errorf("refusals counted: %d, want at least %d", got, forged)
	}

	req, _ := http.NewRequest(http.MethodGet, "http://"+s.Addr()+"/ip/list?app_id=demo&did=alice", nil)
	req.Header.Set("Authorization", "Bearer "+strings.Repeat("a", 64<<10))
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("a 64 KiB header answered %d, want 431", resp.StatusCode)
		}
	} // a connection closed on it is a refusal too

	keepAlive.CloseIdleConnections()
	poll.Until(t, "goroutines to settle after the forgeries", func() bool { return runtime.NumGoroutine() <= before+20 })
	if r := get(t, s, "/ip/list?app_id=demo&did=alice"); r.status != http.StatusOK {
		t.Fatalf("a real device after the forgeries: %d %s", r.status, r.raw)
	}
}
