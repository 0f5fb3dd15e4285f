// Package token issues and verifies Plato's gateway tokens: short strings that ipconf hands to a
// device together with its endpoint list, once the device's business credential proved who it
// is, and that the gateway checks at login. A token binds one app ID, one did and one uid, and
// expires soon (auth.token_ttl).
//
// The format is
//
//	"v2." + base64url(payload) + "." + base64url(HMAC-SHA256(secret, "v2." + base64url(payload)))
//
// where base64url has no padding and payload is the compact JSON
// {"a":appID,"d":did,"u":uid,"e":expiresUnix,"i":issuedUnix}. Any service holding the same
// secret can verify a token without a lookup, which is why ipconf and the gateways share nothing
// else. Version 1 tokens, which bound no uid, are refused.
//
// A Signer is safe for concurrent use. Verify never panics on any input.
package token

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

const (
	// MinSecretLen is the shortest secret NewSigner accepts: shorter HMAC keys are guessable.
	MinSecretLen = 16
	// MaxLen is the longest token Verify looks at; longer input is rejected before decoding, so a
	// hostile token costs no more than this to reject.
	MaxLen = 2048

	prefix = "v2."
)

// b64 is unpadded base64url, strict so that every token has exactly one encoding (no trailing-bit
// variants of the same signature).
var b64 = base64.RawURLEncoding.Strict()

// payload is the signed claim. Short JSON names keep the token short: it travels in every Login.
type payload struct {
	AppID    string `json:"a"`
	DID      string `json:"d"`
	UID      string `json:"u"`
	Expires  int64  `json:"e"`
	IssuedAt int64  `json:"i"`
}

// Claims are what a token binds.
type Claims struct {
	AppID, DID, UID string
	Expires         time.Time
	IssuedAt        time.Time
}

// Signer issues and verifies tokens with one secret and lifetime.
type Signer struct {
	secret []byte
	ttl    time.Duration
}

// NewSigner returns a Signer using secret (at least MinSecretLen bytes; it is copied) whose tokens
// live for ttl (> 0).
func NewSigner(secret []byte, ttl time.Duration) (*Signer, error) {
	if len(secret) < MinSecretLen {
		return nil, errors.New("creating token signer: secret must be at least 16 bytes")
	}
	if ttl <= 0 {
		return nil, errors.New("creating token signer: ttl must be positive")
	}
	return &Signer{secret: bytes.Clone(secret), ttl: ttl}, nil
}

// TTL returns how long issued tokens live.
func (s *Signer) TTL() time.Duration { return s.ttl }

// Issue returns a token binding appID, did and uid, valid from now for the Signer's TTL or until
// notAfter when that is sooner (the business credential's own expiry; zero for none), and its
// expiry (whole seconds, as carried in the token). The strings should be valid UTF-8: JSON
// replaces invalid bytes, so such a token would not match the original strings.
func (s *Signer) Issue(appID, did, uid string, now, notAfter time.Time) (tok string, expires time.Time) {
	exp := now.Add(s.ttl)
	if !notAfter.IsZero() && notAfter.Before(exp) {
		exp = notAfter
	}
	p, err := json.Marshal(payload{AppID: appID, DID: did, UID: uid, Expires: exp.Unix(), IssuedAt: now.Unix()})
	if err != nil {
		// Marshalling three strings and two integers cannot fail.
		panic("token: marshalling payload: " + err.Error())
	}
	buf := make([]byte, 0, len(prefix)+b64.EncodedLen(len(p))+1+b64.EncodedLen(sha256.Size))
	buf = append(buf, prefix...)
	buf = b64.AppendEncode(buf, p)
	sig := s.mac(buf)
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, sig)
	return string(buf), time.Unix(exp.Unix(), 0)
}

// Verify checks that tok was issued by this Signer's secret for appID and did and has not expired
// at now, and returns what it binds (the uid above all). The error is a *protocol.Error:
// CodeTokenInvalid for a bad format or signature, CodeTokenMismatch for a token of another app ID
// or did, CodeTokenExpired once it has expired. The binding is checked before the expiry, so a
// device never refreshes a token that was not its own.
func (s *Signer) Verify(tok, appID, did string, now time.Time) (Claims, error) {
	if len(tok) > MaxLen {
		return Claims{}, invalid("too long")
	}
	if !strings.HasPrefix(tok, prefix) {
		return Claims{}, invalid("unknown version")
	}
	dot := strings.LastIndexByte(tok, '.')
	if dot < len(prefix) {
		return Claims{}, invalid("malformed")
	}
	signed, sigText := tok[:dot], tok[dot+1:]
	payloadText := signed[len(prefix):]
	if payloadText == "" || strings.IndexByte(payloadText, '.') >= 0 {
		return Claims{}, invalid("malformed")
	}
	if b64.DecodedLen(len(sigText)) != sha256.Size {
		return Claims{}, invalid("malformed signature")
	}
	var sig [sha256.Size]byte
	if n, err := b64.Decode(sig[:], []byte(sigText)); err != nil || n != sha256.Size {
		return Claims{}, invalid("malformed signature")
	}
	// Constant-time compare so the time taken does not reveal how much of a forgery was right.
	if !hmac.Equal(sig[:], s.mac([]byte(signed))) {
		return Claims{}, invalid("bad signature")
	}
	raw, err := b64.DecodeString(payloadText)
	if err != nil {
		return Claims{}, invalid("malformed payload")
	}
	var p payload
	if err := json.Unmarshal(raw, &p); err != nil {
		return Claims{}, invalid("malformed payload")
	}
	if p.AppID != appID || p.DID != did {
		return Claims{}, &protocol.Error{Code: protocol.CodeTokenMismatch}
	}
	if !now.Before(time.Unix(p.Expires, 0)) {
		return Claims{}, &protocol.Error{Code: protocol.CodeTokenExpired}
	}
	if p.UID == "" {
		return Claims{}, invalid("binds no uid")
	}
	return Claims{AppID: p.AppID, DID: p.DID, UID: p.UID, Expires: time.Unix(p.Expires, 0), IssuedAt: time.Unix(p.IssuedAt, 0)}, nil
}

func (s *Signer) mac(b []byte) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write(b)
	return m.Sum(nil)
}

func invalid(why string) error {
	return &protocol.Error{Code: protocol.CodeTokenInvalid, Msg: why}
}
