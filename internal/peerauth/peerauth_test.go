package peerauth

import (
	"errors"
	"testing"
)

func TestVerify(t *testing.T) {
	v := NewVerifier([]byte("a-secret-of-16-bytes-or-more"), Gateway)
	good := Proof([]byte("a-secret-of-16-bytes-or-more"), Gateway, "gw-1")
	for range 2 { // first computed, then remembered
		if err := v.Verify("gw-1", good); err != nil {
			t.Fatalf("a gateway's own proof: %v", err)
		}
	}
	for _, c := range []struct{ id, proof string }{
		{"gw-2", good},               // another gateway's proof
		{"gw-1", ""},                 // none
		{"gw-1", good[:len(good)-1]}, // truncated
		{"gw-1", Proof([]byte("another-secret-of-16-bytes"), Gateway, "gw-1")},
		{"gw-1", Proof([]byte("a-secret-of-16-bytes-or-more"), State, "gw-1")}, // another role's
	} {
		if err := v.Verify(c.id, c.proof); !errors.Is(err, ErrBadProof) {
			t.Errorf("Verify(%q, %q) = %v, want ErrBadProof", c.id, c.proof, err)
		}
	}
}
