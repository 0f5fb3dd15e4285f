package credential

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/platoim/plato/internal/config"
)

// BenchmarkVerify is what ipconf spends per request on a device's credential, by algorithm.
func BenchmarkVerify(b *testing.B) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	v, err := NewJWT(app, config.JWTAuth{
		Secrets:    map[string]string{"hs": secret},
		PublicKeys: map[string]string{"rs": pemOf(b, &rsaKey.PublicKey), "es": pemOf(b, &ecKey.PublicKey), "ed": pemOf(b, edPub)},
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		m    jwt.SigningMethod
		k    any
		kid  string
	}{
		{"HS256", jwt.SigningMethodHS256, []byte(secret), "hs"},
		{"RS256", jwt.SigningMethodRS256, rsaKey, "rs"},
		{"ES256", jwt.SigningMethodES256, ecKey, "es"},
		{"EdDSA", jwt.SigningMethodEdDSA, edPriv, "ed"},
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
