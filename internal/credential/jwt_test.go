package credential

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

const (
	app    = "demo"
	secret = "a-test-hs256-secret-of-32-bytes!!"
)

// claimsFor are valid claims for uid u-1 on device d-1 of app, for an hour.
func claimsFor() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": "u-1", "did": "d-1", "aud": app, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
}

func sign(t *testing.T, m jwt.SigningMethod, k any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pemOf(t testing.TB, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func verify(t *testing.T, v *JWT, cred, did string) (Identity, error) {
	t.Helper()
	return v.Verify(context.Background(), Request{AppID: app, DID: did, Credential: cred})
}

func mustVerify(t *testing.T, v *JWT, cred string) Identity {
	t.Helper()
	id, err := verify(t, v, cred, "d-1")
	if err != nil {
		t.Fatalf("refused a valid credential: %v", err)
	}
	if id.UID != "u-1" || id.DID != "d-1" || id.Expires.IsZero() {
		t.Fatalf("identity %+v", id)
	}
	return id
}

func refused(t *testing.T, v *JWT, cred, did string, want protocol.Code) {
	t.Helper()
	_, err := verify(t, v, cred, did)
	if err == nil {
		t.Fatalf("accepted %q", cred)
	}
	if got := CodeOf(err); got != want {
		t.Fatalf("code %d (%v), want %d", got, err, want)
	}
	if strings.Contains(err.Error(), cred) && cred != "" {
		t.Errorf("the error echoes the credential: %v", err)
	}
}

// fourKeys is a key of each algorithm a verifier accepts, and a verifier of app holding them: the
// secret under kid "hs", the public keys of rsaKey, ecKey and edKey under "rs", "es" and "ed".
type fourKeys struct {
	rsaKey *rsa.PrivateKey
	ecKey  *ecdsa.PrivateKey
	edKey  ed25519.PrivateKey
	v      *JWT
}

// newFourKeys generates the keys, and the verifier of app with their public halves.
func newFourKeys(t testing.TB) fourKeys {
	t.Helper()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	v, err := NewJWT(app, config.JWTAuth{
		Secrets:    map[string]string{"hs": secret},
		PublicKeys: map[string]string{"rs": pemOf(t, &rsaKey.PublicKey), "es": pemOf(t, &ecKey.PublicKey), "ed": pemOf(t, edPub)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return fourKeys{rsaKey: rsaKey, ecKey: ecKey, edKey: edPriv, v: v}
}

func TestEveryAlgorithm(t *testing.T) {
	k := newFourKeys(t)
	v := k.v
	mustVerify(t, v, sign(t, jwt.SigningMethodHS256, []byte(secret), "hs", claimsFor()))
	mustVerify(t, v, sign(t, jwt.SigningMethodRS256, k.rsaKey, "rs", claimsFor()))
	mustVerify(t, v, sign(t, jwt.SigningMethodES256, k.ecKey, "es", claimsFor()))
	mustVerify(t, v, sign(t, jwt.SigningMethodEdDSA, k.edKey, "ed", claimsFor()))
	// Without a kid, every key of the token's algorithm is tried.
	mustVerify(t, v, sign(t, jwt.SigningMethodRS256, k.rsaKey, "", claimsFor()))

	// Algorithm confusion: an HMAC keyed with the RSA public key's PEM, under the RSA key's kid
	// and without a kid.
	confused := sign(t, jwt.SigningMethodHS256, []byte(pemOf(t, &k.rsaKey.PublicKey)), "rs", claimsFor())
	refused(t, v, confused, "d-1", protocol.CodeTokenInvalid)
	confused = sign(t, jwt.SigningMethodHS256, []byte(pemOf(t, &k.rsaKey.PublicKey)), "", claimsFor())
	refused(t, v, confused, "d-1", protocol.CodeTokenInvalid)
	// A key of the app under the wrong kid.
	refused(t, v, sign(t, jwt.SigningMethodES256, k.ecKey, "rs", claimsFor()), "d-1", protocol.CodeTokenInvalid)
	// A key the app does not have.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	refused(t, v, sign(t, jwt.SigningMethodES256, other, "es", claimsFor()), "d-1", protocol.CodeTokenInvalid)
	refused(t, v, sign(t, jwt.SigningMethodES256, other, "nope", claimsFor()), "d-1", protocol.CodeTokenInvalid)
	// An algorithm outside the four, with a key the app has.
	refused(t, v, sign(t, jwt.SigningMethodHS512, []byte(secret), "hs", claimsFor()), "d-1", protocol.CodeTokenInvalid)
}

func TestRefusals(t *testing.T) {
	v, err := NewJWT(app, config.JWTAuth{Secrets: map[string]string{"k1": secret}, Leeway: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	good := sign(t, jwt.SigningMethodHS256, []byte(secret), "k1", claimsFor())
	mustVerify(t, v, good)
	with := func(k string, val any) string {
		c := claimsFor()
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return sign(t, jwt.SigningMethodHS256, []byte(secret), "k1", c)
	}
	hour := time.Hour
	refused(t, v, with("exp", time.Now().Add(-hour).Unix()), "d-1", protocol.CodeTokenExpired)
	refused(t, v, with("nbf", time.Now().Add(hour).Unix()), "d-1", protocol.CodeTokenExpired)
	refused(t, v, with("iat", time.Now().Add(hour).Unix()), "d-1", protocol.CodeTokenExpired)
	refused(t, v, with("aud", "another-app"), "d-1", protocol.CodeTokenMismatch)
	refused(t, v, with("aud", nil), "d-1", protocol.CodeTokenInvalid)
	refused(t, v, with("exp", nil), "d-1", protocol.CodeTokenInvalid)
	refused(t, v, with("sub", nil), "d-1", protocol.CodeTokenInvalid)
	refused(t, v, with("did", nil), "d-1", protocol.CodeTokenInvalid)
	refused(t, v, with("did", strings.Repeat("x", MaxIDLen+1)), "", protocol.CodeTokenInvalid)
	refused(t, v, with("sub", "bad\x00uid"), "d-1", protocol.CodeTokenInvalid)
	refused(t, v, good, "another-device", protocol.CodeTokenMismatch)

	// alg none, unsigned, tampered, garbage, oversized.
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claimsFor()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	refused(t, v, none, "d-1", protocol.CodeTokenInvalid)
	parts := strings.Split(good, ".")
	refused(t, v, parts[0]+"."+parts[1]+".", "d-1", protocol.CodeTokenInvalid)
	refused(t, v, parts[0]+"."+parts[1], "d-1", protocol.CodeTokenInvalid)
	forged := claimsFor()
	forged["sub"] = "admin"
	body, _ := json.Marshal(forged)
	refused(t, v, parts[0]+"."+base64.RawURLEncoding.EncodeToString(body)+"."+parts[2], "d-1", protocol.CodeTokenInvalid)
	refused(t, v, "", "d-1", protocol.CodeTokenInvalid)
	refused(t, v, "not a jwt", "d-1", protocol.CodeTokenInvalid)
	refused(t, v, strings.Repeat("a", MaxLen+1), "d-1", protocol.CodeTokenInvalid)
}

func TestBadKeysAreRefusedAtLoad(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for name, c := range map[string]config.JWTAuth{
		"small RSA":     {PublicKeys: map[string]string{"k": pemOf(t, &small.PublicKey)}},
		"P-384":         {PublicKeys: map[string]string{"k": pemOf(t, &p384.PublicKey)}},
		"not PEM":       {PublicKeys: map[string]string{"k": "-----BEGIN nothing"}},
		"missing file":  {PublicKeys: map[string]string{"k": "/no/such/file.pem"}},
		"missing jwks":  {JWKSFile: "/no/such/jwks.json"},
		"duplicate kid": {Secrets: map[string]string{"k": secret}, JWKSFile: writeJWKS(t, t.TempDir(), jwk("k", secret))},
	} {
		if _, err := NewJWT(app, c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// jwk is an oct JWK with kid and secret s.
func jwk(kid, s string) map[string]string {
	return map[string]string{"kty": "oct", "kid": kid, "k": base64.RawURLEncoding.EncodeToString([]byte(s))}
}

func writeJWKS(t *testing.T, dir string, keys ...map[string]string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "jwks.json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestJWKSRotation rotates a key the way an operator would, with no restart: add the new key
// beside the old, switch the backend over, remove the old one.
func TestJWKSRotation(t *testing.T) {
	const old, fresh = "the-old-hs256-secret-of-32-bytes!", "the-new-hs256-secret-of-32-bytes!"
	dir := t.TempDir()
	path := writeJWKS(t, dir, jwk("k1", old))
	v, err := NewJWT(app, config.JWTAuth{JWKSFile: path})
	if err != nil {
		t.Fatal(err)
	}
	byOld := sign(t, jwt.SigningMethodHS256, []byte(old), "k1", claimsFor())
	byNew := sign(t, jwt.SigningMethodHS256, []byte(fresh), "k2", claimsFor())
	mustVerify(t, v, byOld)
	refused(t, v, byNew, "d-1", protocol.CodeTokenInvalid)

	writeJWKS(t, dir, jwk("k1", old), jwk("k2", fresh))
	poll.Until(t, "the new key to be accepted", func() bool { _, err := verify(t, v, byNew, "d-1"); return err == nil })
	mustVerify(t, v, byOld)

	// A broken edit keeps the keys last read.
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the broken file to be noticed", func() bool { verify(t, v, byNew, "d-1"); return v.jwks.Err() != nil })
	mustVerify(t, v, byNew)

	writeJWKS(t, dir, jwk("k2", fresh))
	poll.Until(t, "the old key to be refused", func() bool { _, err := verify(t, v, byOld, "d-1"); return err != nil })
	mustVerify(t, v, byNew)
	if v.jwks.Err() != nil {
		t.Errorf("Err after a good edit: %v", v.jwks.Err())
	}
}

func TestJWKSPublicKeys(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	n := base64.RawURLEncoding.EncodeToString(rsaKey.N.Bytes())
	e := base64.RawURLEncoding.EncodeToString([]byte{1, 0, 1})
	path := writeJWKS(t, t.TempDir(), map[string]string{"kty": "RSA", "kid": "r1", "alg": "RS256", "n": n, "e": e})
	v, err := NewJWT(app, config.JWTAuth{JWKSFile: path})
	if err != nil {
		t.Fatal(err)
	}
	mustVerify(t, v, sign(t, jwt.SigningMethodRS256, rsaKey, "r1", claimsFor()))
	// The JWK says RS256; a key that says another algorithm than its kind is refused at load.
	bad := writeJWKS(t, t.TempDir(), map[string]string{"kty": "RSA", "kid": "r1", "alg": "ES256", "n": n, "e": e})
	if _, err := NewJWT(app, config.JWTAuth{JWKSFile: bad}); err == nil {
		t.Error("a JWK whose alg does not match its key type was accepted")
	}
}
