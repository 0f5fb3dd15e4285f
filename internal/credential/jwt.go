package credential

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/protocol"
)

// algorithms are the only ones accepted, each with a key of its own kind only (key.alg): never
// "none", and never an HMAC keyed with a public key.
var algorithms = []string{"HS256", "RS256", "ES256", "EdDSA"}

// key is one verification key and the algorithm it is for.
type key struct {
	alg string
	k   any // []byte, *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// claims is what a device credential carries: sub = uid, did, aud = app ID, exp (required), and
// optionally nbf, iat and iss.
type claims struct {
	jwt.RegisteredClaims
	DID string `json:"did"`
}

// JWT verifies one app's JWT credentials.
type JWT struct {
	app    string
	static map[string]key // from secrets and public_keys
	jwks   *jwksFile      // nil without a jwks_file
	parser *jwt.Parser
}

var _ Verifier = (*JWT)(nil)

// NewJWT prepares the verifier of app's credentials from its keys. It fails on a key it cannot
// use, naming it, so a bad key is refused when the configuration loads, not at the first login.
func NewJWT(app string, c config.JWTAuth) (*JWT, error) {
	j := &JWT{app: app, static: map[string]key{}}
	for kid, s := range c.Secrets {
		j.static[kid] = key{alg: "HS256", k: []byte(s)}
	}
	for kid, v := range c.PublicKeys {
		k, err := publicKey(v)
		if err != nil {
			return nil, fmt.Errorf("apps.%s.auth.jwt.public_keys.%s: %w", app, kid, err)
		}
		j.static[kid] = k
	}
	if c.JWKSFile != "" {
		f, err := openJWKS(c.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("apps.%s.auth.jwt.jwks_file: %w", app, err)
		}
		for kid := range f.current().keys {
			if _, dup := j.static[kid]; dup {
				return nil, fmt.Errorf("apps.%s.auth.jwt: kid %q is both in the config and in %s", app, kid, c.JWKSFile)
			}
		}
		j.jwks = f
	}
	leeway := c.Leeway
	if leeway == 0 {
		leeway = config.DefaultJWTLeeway
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algorithms), jwt.WithAudience(app), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithLeeway(leeway),
	}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	j.parser = jwt.NewParser(opts...)
	return j, nil
}

// Verify checks req.Credential: signed by one of the app's keys with that key's algorithm, for
// the app (aud), current (exp, nbf, iat), naming a uid (sub) and req.DID (did).
func (j *JWT) Verify(_ context.Context, req Request) (Identity, error) {
	if len(req.Credential) > MaxLen {
		return Identity{}, refuse(protocol.CodeTokenInvalid, "the credential is longer than %d bytes", MaxLen)
	}
	var c claims
	if _, err := j.parser.ParseWithClaims(req.Credential, &c, j.keyFor); err != nil {
		return Identity{}, jwtError(err)
	}
	if e := checkID("uid (sub)", c.Subject); e != nil {
		return Identity{}, e
	}
	if e := checkID("did", c.DID); e != nil {
		return Identity{}, e
	}
	if req.DID != "" && c.DID != req.DID {
		return Identity{}, refuse(protocol.CodeTokenMismatch, "the credential is for another device")
	}
	id := Identity{UID: c.Subject, DID: c.DID}
	if c.ExpiresAt != nil {
		id.Expires = c.ExpiresAt.Time
	}
	return id, nil
}

// keyFor is the parser's Keyfunc: the key the header's kid names, of the token's algorithm; or,
// without a kid, every key of that algorithm.
func (j *JWT) keyFor(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	keys := j.keys()
	if kidv, ok := t.Header["kid"]; ok {
		kid, _ := kidv.(string)
		k, ok := keys(kid)
		if !ok {
			return nil, errUnknownKey
		}
		if k.alg != alg {
			return nil, errWrongAlg
		}
		return k.k, nil
	}
	var set jwt.VerificationKeySet
	j.each(func(k key) {
		if k.alg == alg {
			set.Keys = append(set.Keys, k.k)
		}
	})
	if len(set.Keys) == 0 {
		return nil, errUnknownKey
	}
	return set, nil
}

// keys looks a kid up in the config's keys, then the JWKS file's.
func (j *JWT) keys() func(kid string) (key, bool) {
	var file map[string]key
	if j.jwks != nil {
		file = j.jwks.current().keys
	}
	return func(kid string) (key, bool) {
		if k, ok := j.static[kid]; ok {
			return k, true
		}
		k, ok := file[kid]
		return k, ok
	}
}

func (j *JWT) each(f func(key)) {
	for _, k := range j.static {
		f(k)
	}
	if j.jwks != nil {
		for _, k := range j.jwks.current().keys {
			f(k)
		}
	}
}

var (
	errUnknownKey = errors.New("signed with a key the app does not have")
	errWrongAlg   = errors.New("the key named by kid is not for the token's algorithm")
)

// jwtError turns golang-jwt's error into what the device is told.
func jwtError(err error) *Error {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return refuse(protocol.CodeTokenExpired, "the credential has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return refuse(protocol.CodeTokenExpired, "the credential is not valid yet")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return refuse(protocol.CodeTokenMismatch, "the credential is for another app")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return refuse(protocol.CodeTokenInvalid, "the credential lacks a required claim (exp and aud are required)")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return refuse(protocol.CodeTokenInvalid, "the credential's issuer is not the app's")
	case errors.Is(err, errUnknownKey):
		return refuse(protocol.CodeTokenInvalid, "the credential is %v", errUnknownKey)
	case errors.Is(err, errWrongAlg):
		return refuse(protocol.CodeTokenInvalid, "the credential's %v", errWrongAlg)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return refuse(protocol.CodeTokenInvalid, "the credential's signature is wrong")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return refuse(protocol.CodeTokenInvalid, "the credential's algorithm is not accepted (HS256, RS256, ES256, EdDSA)")
	}
	return refuse(protocol.CodeTokenInvalid, "the credential is not a well-formed JWT")
}

// publicKey reads a PEM public key given inline or as a file path.
func publicKey(v string) (key, error) {
	data := []byte(v)
	if !strings.Contains(v, "-----BEGIN") {
		b, err := os.ReadFile(v)
		if err != nil {
			return key{}, fmt.Errorf("reading the PEM file: %w", err)
		}
		data = b
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return key{}, errors.New("no PEM block found")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return key{}, fmt.Errorf("parsing the public key (want PKIX, \"PUBLIC KEY\"): %w", err)
	}
	return keyOf(pub)
}

// keyOf names the algorithm a public key is for.
func keyOf(pub any) (key, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < 2048 {
			return key{}, fmt.Errorf("RSA key of %d bits: at least 2048 are needed", p.N.BitLen())
		}
		return key{alg: "RS256", k: p}, nil
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return key{}, fmt.Errorf("ECDSA key on %s: ES256 needs P-256", p.Curve.Params().Name)
		}
		return key{alg: "ES256", k: p}, nil
	case ed25519.PublicKey:
		return key{alg: "EdDSA", k: p}, nil
	}
	return key{}, fmt.Errorf("unsupported key type %T (RSA, ECDSA P-256 or Ed25519)", pub)
}
