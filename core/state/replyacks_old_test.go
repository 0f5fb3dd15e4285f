package state_test

import (
	"testing"
	"time"

	"github.com/platoim/plato/core/state"
	"github.com/platoim/plato/core/state/statetest"
	"github.com/platoim/plato/sdk/protocol"
)

// statetest's gateway calls Deliver over Kitex as a gateway of the previous version does, without
// acks_in_reply: its devices' UplinkAcks come by Push, however long the state server could wait.
func TestAGatewayThatDoesNotAskGetsUplinkAcksByPush(t *testing.T) {
	h := statetest.Start(t, statetest.Options{Configure: func(c *state.Config) { c.UplinkAckWait = time.Second }})
	alice := h.Gateway.Connect(statetest.App, "alice", "")
	if ack := alice.Login(t); ack.Code != protocol.CodeOK {
		t.Fatalf("login: %+v", ack)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		if ack := alice.Uplink(t, seq, []byte("hi")); ack.Code != protocol.CodeOK {
			t.Fatalf("uplink %d: %+v", seq, ack)
		}
	}
	if s := h.State.Stats(); s.AcksByPush != 3 || s.AcksInReply != 0 {
		t.Errorf("acks by push %d, in replies %d; want 3 and 0", s.AcksByPush, s.AcksInReply)
	}
}
