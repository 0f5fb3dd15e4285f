package credential

import (
	"context"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/platoim/plato/internal/config"
)

// FuzzVerify feeds arbitrary credentials to the JWT verifier: it must never panic, and whatever it
// accepts must carry the identity rules (a uid, the requested did, bounded printable IDs).
func FuzzVerify(f *testing.F) {
	good, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsFor()).SignedString([]byte(secret))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claimsFor()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, s := range []string{
		good, none, "", ".", "..", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", good + "x", strings.Replace(good, ".", "..", 1),
		"eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1In0.",
		"eyJhbGciOiJIUzI1NiIsImtpZCI6WzFdfQ.e30.e30", // a kid that is not a string
		"eyJhbGciOiJFUzI1NiIsImtpZCI6ImsifQ.e30.AAAA",
	} {
		f.Add(s, "d-1")
	}
	v, err := NewJWT(app, config.JWTAuth{Secrets: map[string]string{"k": secret}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cred, did string) {
		id, err := v.Verify(context.Background(), Request{AppID: app, DID: did, Credential: cred})
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("an error that is not *Error: %T %v", err, err)
			}
			return
		}
		if id.UID == "" || (did != "" && id.DID != did) || len(id.UID) > MaxIDLen || len(id.DID) > MaxIDLen {
			t.Fatalf("accepted %q as %+v", cred, id)
		}
	})
}
