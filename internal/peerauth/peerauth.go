// Package peerauth proves that an internal call comes from a process of the fleet: a gateway's
// Deliver to a state server (whose address is also where business servers call Plato's RPC: a
// business must not speak for devices), and a state server's Push and Sessions to a gateway. The
// caller sends an HMAC of its role and ID keyed with auth.token_secret, which gateways and state
// servers share (ipconf signs device tokens with it too).
package peerauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
)

// The roles a proof is made for, so one role's proof never passes for the other's.
const (
	Gateway = "plato-gateway"
	State   = "plato-state"
)

// Proof is what the process id of role sends with its calls.
func Proof(secret []byte, role, id string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(role))
	m.Write([]byte{0})
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}

// ErrBadProof is returned for a call that does not prove it comes from the fleet.
var ErrBadProof = errors.New("the caller did not prove it is a process of this fleet (auth.token_secret differs?)")

// Verifier checks the proofs of one role, remembering each caller's so a batch costs a map lookup
// and a constant-time compare, not an HMAC.
type Verifier struct {
	secret []byte
	role   string
	mu     sync.RWMutex
	known  map[string]string // caller ID -> its proof
}

// NewVerifier checks proofs of role made with secret.
func NewVerifier(secret []byte, role string) *Verifier {
	return &Verifier{secret: secret, role: role, known: map[string]string{}}
}

// maxKnown bounds the remembered proofs: anyone may send gateway IDs.
const maxKnown = 4096

// Verify reports whether proof is the one of caller id.
func (v *Verifier) Verify(id, proof string) error {
	v.mu.RLock()
	want, ok := v.known[id]
	v.mu.RUnlock()
	if !ok {
		want = Proof(v.secret, v.role, id)
	}
	if !hmac.Equal([]byte(want), []byte(proof)) {
		return ErrBadProof
	}
	if !ok {
		v.mu.Lock()
		if len(v.known) >= maxKnown {
			clear(v.known)
		}
		v.known[id] = want
		v.mu.Unlock()
	}
	return nil
}
