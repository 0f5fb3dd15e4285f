package bizlink

import (
	"errors"
	"strconv"
	"testing"
	"time"
)

func TestSignAndVerify(t *testing.T) {
	const secret = "a-webhook-secret-of-32-bytes!!!!"
	body := []byte(`{"events":[]}`)
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := Sign(secret, now.Unix(), body)
	// The documented construction, spelled out: HMAC-SHA256(secret, ts + "." + body), hex.
	if want := "v1=" + hexMAC(secret, ts+"."+string(body)); sig != want {
		t.Fatalf("Sign = %s, want %s", sig, want)
	}
	if err := Verify(secret, ts, sig, body, now.Add(time.Minute), DefaultTolerance); err != nil {
		t.Fatalf("a fresh, well-signed request: %v", err)
	}
	for name, c := range map[string]struct {
		secret, ts, sig string
		body            []byte
		now             time.Time
		want            error
	}{
		"another body":         {secret, ts, sig, []byte(`{"events":[{}]}`), now, ErrBadSignature},
		"another secret":       {"another-secret-of-16+", ts, sig, body, now, ErrBadSignature},
		"another timestamp":    {secret, strconv.FormatInt(now.Unix()+1, 10), sig, body, now, ErrBadSignature},
		"no v1= prefix":        {secret, ts, sig[3:], body, now, ErrBadSignature},
		"not hex":              {secret, ts, "v1=zz", body, now, ErrBadSignature},
		"empty signature":      {secret, ts, "", body, now, ErrBadSignature},
		"timestamp not number": {secret, "yesterday", sig, body, now, ErrStale},
		"replayed 6 min later": {secret, ts, sig, body, now.Add(6 * time.Minute), ErrStale},
		"from 6 min ahead":     {secret, ts, sig, body, now.Add(-6 * time.Minute), ErrStale},
	} {
		if err := Verify(c.secret, c.ts, c.sig, c.body, c.now, DefaultTolerance); !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", name, err, c.want)
		}
	}
}

// TestSignVector pins the signature of a known request, computed independently (openssl dgst
// -sha256 -hmac); examples/python-business/test_business.py checks the same vector, so the Python
// receiver and Plato agree on the construction.
func TestSignVector(t *testing.T) {
	const want = "v1=66ab7ba3fea8aee749ffbcee0c2a0d6b6ba7b3c635ab153f82a32c2ea389efc5"
	if got := Sign("python-example-webhook-secret", 1700000000, []byte(`{"events":[]}`)); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}
