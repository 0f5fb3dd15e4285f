package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

var (
	testSecret = []byte("0123456789abcdef-test-secret")
	testNow    = time.Unix(1_790_000_000, 0)
)

func newTestSigner(t *testing.T) *Signer {
	t.Helper()
	s, err := NewSigner(testSecret, time.Hour)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return s
}

func wantCode(t *testing.T, err error, want protocol.Code) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error = %v (%T), want *protocol.Error with code %d", err, err, want)
	}
	if pe.Code != want {
		t.Fatalf("code = %d (%v), want %d", pe.Code, pe, want)
	}
}

func TestNewSignerValidates(t *testing.T) {
	if _, err := NewSigner(make([]byte, 15), time.Hour); err == nil {
		t.Error("15-byte secret accepted")
	}
	if _, err := NewSigner(make([]byte, 16), 0); err == nil {
		t.Error("zero ttl accepted")
	}
	if _, err := NewSigner(make([]byte, 16), -time.Second); err == nil {
		t.Error("negative ttl accepted")
	}
	if _, err := NewSigner(make([]byte, 16), time.Second); err != nil {
		t.Errorf("16-byte secret rejected: %v", err)
	}
}

func TestSignerCopiesSecret(t *testing.T) {
	secret := []byte("0123456789abcdef")
	s, err := NewSigner(secret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := s.Issue("app", "did", "u1", testNow, time.Time{})
	secret[0] = 'X'
	if err := verifyErr(s, tok, "app", "did", testNow); err != nil {
		t.Fatalf("changing the caller's slice broke verification: %v", err)
	}
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	s := newTestSigner(t)
	tok, exp := s.Issue("demo", "d1", "u1", testNow, time.Time{})
	if !strings.HasPrefix(tok, "v2.") || strings.Count(tok, ".") != 2 {
		t.Fatalf("token %q does not look like v2.<payload>.<sig>", tok)
	}
	if want := testNow.Add(time.Hour); !exp.Equal(want) {
		t.Errorf("expires = %v, want %v", exp, want)
	}
	if err := verifyErr(s, tok, "demo", "d1", testNow); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := verifyErr(s, tok, "demo", "d1", exp.Add(-time.Second)); err != nil {
		t.Fatalf("Verify one second before expiry: %v", err)
	}
}

func TestPayloadFormat(t *testing.T) {
	s := newTestSigner(t)
	tok, _ := s.Issue("demo", "d<1>", "u1", testNow, time.Time{})
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("payload not unpadded base64url: %v", err)
	}
	want := `{"a":"demo","d":"d\u003c1\u003e","u":"u1","e":1790003600,"i":1790000000}`
	if string(raw) != want {
		t.Errorf("payload = %s, want %s", raw, want)
	}
	m := hmac.New(sha256.New, testSecret)
	m.Write([]byte(parts[0] + "." + parts[1]))
	if got, want := parts[2], base64.RawURLEncoding.EncodeToString(m.Sum(nil)); got != want {
		t.Errorf("signature = %s, want %s", got, want)
	}
}

func TestVerifyExpired(t *testing.T) {
	s := newTestSigner(t)
	tok, exp := s.Issue("demo", "d1", "u1", testNow, time.Time{})
	wantCode(t, verifyErr(s, tok, "demo", "d1", exp), protocol.CodeTokenExpired)
	wantCode(t, verifyErr(s, tok, "demo", "d1", exp.Add(time.Hour)), protocol.CodeTokenExpired)
}

func TestVerifyMismatch(t *testing.T) {
	s := newTestSigner(t)
	tok, _ := s.Issue("demo", "d1", "u1", testNow, time.Time{})
	wantCode(t, verifyErr(s, tok, "other", "d1", testNow), protocol.CodeTokenMismatch)
	wantCode(t, verifyErr(s, tok, "demo", "d2", testNow), protocol.CodeTokenMismatch)
	// The binding is reported before the expiry.
	wantCode(t, verifyErr(s, tok, "demo", "d2", testNow.Add(48*time.Hour)), protocol.CodeTokenMismatch)
}

func TestVerifyOtherSecret(t *testing.T) {
	s := newTestSigner(t)
	other, err := NewSigner([]byte("another-secret-of-16+"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := other.Issue("demo", "d1", "u1", testNow, time.Time{})
	wantCode(t, verifyErr(s, tok, "demo", "d1", testNow), protocol.CodeTokenInvalid)
}

func TestVerifyInvalid(t *testing.T) {
	s := newTestSigner(t)
	good, _ := s.Issue("demo", "d1", "u1", testNow, time.Time{})
	parts := strings.Split(good, ".")
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"a":"demo","d":"d1","e":9999999999,"i":0}`))
	// Flip the last signature character to another one that still decodes.
	flipped := []byte(good)
	if flipped[len(flipped)-1] == 'A' {
		flipped[len(flipped)-1] = 'Q'
	} else {
		flipped[len(flipped)-1] = 'A'
	}
	for name, tok := range map[string]string{
		"empty":            "",
		"prefix only":      "v2.",
		"no signature":     "v2." + parts[1],
		"empty signature":  "v2." + parts[1] + ".",
		"empty payload":    "v2.." + parts[2],
		"version 1":        "v1." + parts[1] + "." + parts[2],
		"extra segment":    "v2." + parts[1] + ".x." + parts[2],
		"forged payload":   "v2." + forged + "." + parts[2],
		"flipped sig":      string(flipped),
		"padded signature": good + "=",
		"short signature":  good[:len(good)-2],
		"not base64":       "v2.!!!." + parts[2],
		"too long":         good + strings.Repeat("A", MaxLen),
		"garbage":          "v2.v2.v2",
		"no uid":           signedPayload(`{"a":"demo","d":"d1","e":9999999999,"i":0}`),
		"old version":      signedAs("v1.", `{"a":"demo","d":"d1","u":"u1","e":9999999999,"i":0}`),
	} {
		t.Run(name, func(t *testing.T) {
			wantCode(t, verifyErr(s, tok, "demo", "d1", testNow), protocol.CodeTokenInvalid)
		})
	}
}

// A token whose payload is not JSON but is correctly signed is still invalid, not a panic.
func TestVerifySignedGarbagePayload(t *testing.T) {
	s := newTestSigner(t)
	wantCode(t, verifyErr(s, signedPayload("not json"), "demo", "d1", testNow), protocol.CodeTokenInvalid)
}

// signedPayload is a correctly signed version 2 token around payload, whatever it holds.
func signedPayload(payload string) string { return signedAs(prefix, payload) }

func signedAs(version, payload string) string {
	signed := version + base64.RawURLEncoding.EncodeToString([]byte(payload))
	m := hmac.New(sha256.New, testSecret)
	m.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func verifyErr(s *Signer, tok, appID, did string, now time.Time) error {
	_, err := s.Verify(tok, appID, did, now)
	return err
}

// The token carries the uid it was issued for, and no later than the credential's expiry.
func TestClaims(t *testing.T) {
	s := newTestSigner(t)
	tok, exp := s.Issue("demo", "d1", "alice", testNow, time.Time{})
	c, err := s.Verify(tok, "demo", "d1", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if c.AppID != "demo" || c.DID != "d1" || c.UID != "alice" || !c.Expires.Equal(exp) || c.IssuedAt.Unix() != testNow.Unix() {
		t.Fatalf("claims %+v", c)
	}
	soon := testNow.Add(time.Minute)
	_, exp = s.Issue("demo", "d1", "alice", testNow, soon)
	if exp.Unix() != soon.Unix() {
		t.Fatalf("expiry %v, want the credential's %v", exp, soon)
	}
	_, exp = s.Issue("demo", "d1", "alice", testNow, testNow.Add(100*s.TTL()))
	if exp.Unix() != testNow.Add(s.TTL()).Unix() {
		t.Fatalf("expiry %v, want the signer's TTL", exp)
	}
}

func BenchmarkVerify(b *testing.B) {
	s, err := NewSigner(testSecret, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	tok, _ := s.Issue("demo", "device-0001", "u1", testNow, time.Time{})
	b.ReportAllocs()
	for b.Loop() {
		if err := verifyErr(s, tok, "demo", "device-0001", testNow); err != nil {
			b.Fatal(err)
		}
	}
}
