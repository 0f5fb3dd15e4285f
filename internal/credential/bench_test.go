package credential

import (
	"context"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerify is what ipconf spends per request on a device's credential, by algorithm.
func BenchmarkVerify(b *testing.B) {
	keys := newFourKeys(b)
	v := keys.v
	for _, c := range []struct {
		name string
		m    jwt.SigningMethod
		k    any
		kid  string
	}{
		{"HS256", jwt.SigningMethodHS256, []byte(secret), "hs"},
		{"RS256", jwt.SigningMethodRS256, keys.rsaKey, "rs"},
		{"ES256", jwt.SigningMethodES256, keys.ecKey, "es"},
		{"EdDSA", jwt.SigningMethodEdDSA, keys.edKey, "ed"},
	} {
		tok := jwt.NewWithClaims(c.m, claimsFor())
		tok.Header["kid"] = c.kid
		cred, err := tok.SignedString(c.k)
		if err != nil {
			b.Fatal(err)
		}
		req := Request{AppID: app, DID: "d-1", Credential: cred}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
