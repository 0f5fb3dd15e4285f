package gatewaytest_test

import (
	"testing"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/core/gateway/gatewaytest"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// The example of the package doc, as it is written there.
func TestUplinkReachesTheStateServer(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	d := h.Login("demo", "device-1")
	d.Send(protocol.SigUplink, 0, 2, []byte("hello"))
	poll.Until(t, "the uplink", func() bool { return len(h.State.Received(d.ID, protocol.SigUplink)) == 1 })
}

// With a secret, the gateway checks the harness's Push and Sessions calls: they carry the fake
// state server's proof, so Accept (a Push) and Sessions work as without one.
func TestHarnessProvesItIsTheStateServer(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{Configure: func(c *gateway.Config) {
		c.Secret = []byte("gatewaytest-peer-secret-0123456789")
	}})
	d := h.Login("demo", "device-1")
	if gone := h.Sessions(gatewaytest.Join(d, "room")); len(gone) != 0 {
		t.Fatalf("gone %v, want none", gone)
	}
	if got := h.Gateway.SessionMembers("demo", "room"); len(got) != 1 || got[0] != d.ID {
		t.Fatalf("members %v, want [%d]", got, d.ID)
	}
}

// A did that logs in again gets the ID of its new connection, not of the one before.
func TestConnectTellsTheNewConnectionOfADid(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{NoNATS: true})
	first := h.Login("demo", "device-1")
	second := h.Connect("demo", "device-1")
	if second.ID == first.ID || second.ID == 0 {
		t.Fatalf("second connection's ID %d, first's %d: want another", second.ID, first.ID)
	}
	h.Accept(second)
}
