package token

import (
	"errors"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/platoim/plato/sdk/protocol"
)

// FuzzVerify feeds arbitrary tokens to Verify: it must never panic and must only ever answer nil or
// one of the three token codes. Freshly issued tokens for the fuzzed app ID and did must verify.
func FuzzVerify(f *testing.F) {
	s, err := NewSigner([]byte("fuzz-secret-0123456789"), time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_790_000_000, 0)
	good, _ := s.Issue("demo", "d1", "u1", now, time.Time{})
	f.Add(good, "demo", "d1")
	f.Add(good, "demo", "d2")
	f.Add("v2..", "", "")
	f.Add("v2.e30.", "a", "d")
	f.Add("v1.e30.", "a", "d")

	f.Fuzz(func(t *testing.T, tok, appID, did string) {
		_, err := s.Verify(tok, appID, did, now)
		if err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				t.Fatalf("Verify(%q) returned %T, want *protocol.Error", tok, err)
			}
			switch pe.Code {
			case protocol.CodeTokenInvalid, protocol.CodeTokenExpired, protocol.CodeTokenMismatch:
			default:
				t.Fatalf("Verify(%q) returned code %d", tok, pe.Code)
			}
		}
		if utf8.ValidString(appID) && utf8.ValidString(did) {
			issued, _ := s.Issue(appID, did, "u1", now, time.Time{})
			if len(issued) <= MaxLen {
				if err := verifyErr(s, issued, appID, did, now); err != nil {
					t.Fatalf("fresh token for %q/%q does not verify: %v", appID, did, err)
				}
			}
		}
	})
}
