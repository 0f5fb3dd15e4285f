package bizlink

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Webhook headers. The signature is HMAC-SHA256, keyed with the app's webhook secret, over the
// timestamp header's value, a '.', and the body exactly as sent.
const (
	HeaderTimestamp = "X-Plato-Timestamp" // unix seconds when the request was signed
	HeaderSignature = "X-Plato-Signature" // "v1=" and the signature in lower-case hex
	HeaderApp       = "X-Plato-App"       // the app ID
	// DefaultTolerance is how far a receiver should let a timestamp be from its clock: wider
	// than clock skew plus a retried delivery's flight, narrow enough that a captured request is
	// soon worthless.
	DefaultTolerance = 5 * time.Minute
	sigPrefix        = "v1="
)

// Sign returns the X-Plato-Signature value of body sent at ts.
func Sign(secret string, ts int64, body []byte) string {
	return sigPrefix + hex.EncodeToString(mac(secret, strconv.FormatInt(ts, 10), body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("webhook signature does not match")
	ErrStale        = errors.New("webhook timestamp outside the tolerance")
)

// Verify checks a webhook as a receiver must: the signature over the timestamp and body, in
// constant time, and the timestamp within tolerance of now (a replayed request is refused once
// it is older than that; a receiver that must refuse replays inside the window too remembers the
// signatures it saw for the tolerance).
func Verify(secret, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not unix seconds", ErrStale, HeaderTimestamp, timestamp)
	}
	hexSig, ok := strings.CutPrefix(signature, sigPrefix)
	got, herr := hex.DecodeString(hexSig)
	if !ok || herr != nil || !hmac.Equal(got, mac(secret, timestamp, body)) {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %v from now", ErrStale, d.Round(time.Second))
	}
	return nil
}
