package gateway

import (
	"errors"
	"testing"

	"github.com/platoim/plato/internal/peerauth"
)

// TestOnlyStateServersMayPush: with a secret, the gateway's Push and Sessions take only calls that
// prove they come from a state server holding it.
func TestOnlyStateServersMayPush(t *testing.T) {
	secret := []byte("a-secret-of-16-bytes-or-more")
	gw := &Gateway{stateAuth: peerauth.NewVerifier(secret, peerauth.State)}
	if err := gw.checkState("state-1", peerauth.Proof(secret, peerauth.State, "state-1")); err != nil {
		t.Fatalf("a state server's proof: %v", err)
	}
	for _, proof := range []string{
		"",
		peerauth.Proof(secret, peerauth.Gateway, "state-1"), // a gateway's proof
		peerauth.Proof([]byte("another-secret-of-16-bytes"), peerauth.State, "state-1"),
	} {
		if err := gw.checkState("state-1", proof); !errors.Is(err, peerauth.ErrBadProof) {
			t.Errorf("proof %q: %v, want ErrBadProof", proof, err)
		}
	}
	if gw.metrics.rpcRefused.Load() != 3 {
		t.Errorf("refused %d, want 3", gw.metrics.rpcRefused.Load())
	}
	if err := (&Gateway{}).checkState("", ""); err != nil {
		t.Errorf("without a secret nothing is checked: %v", err)
	}
}
