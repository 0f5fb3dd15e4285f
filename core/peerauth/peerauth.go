// Package peerauth proves to a state server that a Deliver call comes from a gateway: the state
// server's address is also where business servers call Plato's RPC, and a business must not be
// able to speak for devices. A gateway sends an HMAC of its ID keyed with auth.token_secret, which
// gateways and state servers share (ipconf signs device tokens with it too).
package peerauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
)

// Proof is what gateway id sends with every Deliver.
func Proof(secret []byte, gatewayID string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("plato-gateway\x00"))
	m.Write([]byte(gatewayID))
	return hex.EncodeToString(m.Sum(nil))
}

// ErrBadProof is returned for a Deliver that does not prove it comes from a gateway.
var ErrBadProof = errors.New("the caller did not prove it is a gateway of this fleet (auth.token_secret differs?)")

// Verifier checks proofs, remembering each gateway's so a batch costs a map lookup and a
// constant-time compare, not an HMAC.
type Verifier struct {
	secret []byte
	mu     sync.RWMutex
	known  map[string]string // gateway ID -> its proof
}

// NewVerifier checks proofs made with secret.
func NewVerifier(secret []byte) *Verifier {
	return &Verifier{secret: secret, known: map[string]string{}}
}

// maxKnown bounds the remembered proofs: anyone may send gateway IDs.
const maxKnown = 4096

// Verify reports whether proof is gatewayID's.
func (v *Verifier) Verify(gatewayID, proof string) error {
	v.mu.RLock()
	want, ok := v.known[gatewayID]
	v.mu.RUnlock()
	if !ok {
		want = Proof(v.secret, gatewayID)
	}
	if !hmac.Equal([]byte(want), []byte(proof)) {
		return ErrBadProof
	}
	if !ok {
		v.mu.Lock()
		if len(v.known) >= maxKnown {
			clear(v.known)
		}
		v.known[gatewayID] = want
		v.mu.Unlock()
	}
	return nil
}
