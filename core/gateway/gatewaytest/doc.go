// Package gatewaytest starts a real gateway for tests, on free loopback ports, and hands back what a
// test needs to drive it from both sides: raw-socket devices on one side, and on the other a fake
// state server that records what the gateway delivers and calls its Push and Sessions RPCs, plus a
// NATS publisher for session broadcasts.
//
//	func TestUplinkReachesTheStateServer(t *testing.T) {
//		h := gatewaytest.New(t, gatewaytest.Options{})
//		d := h.Login("demo", "device-1") // Login, accepted as a state server would
//		d.Send(protocol.SigUplink, 0, 2, []byte("hello"))
//		poll.Until(t, "the uplink", func() bool { return len(h.State.Received(d.ID, protocol.SigUplink)) == 1 })
//	}
//
// Everything is real except the state server: the gateway (core/gateway, started with New and
// Start as a process would), an embedded NATS server (internal/natsd) holding the registry
// (internal/registry) and carrying broadcasts, and Kitex on both RPC paths. The fake state server is
// in the registry before the gateway starts, and New returns once the gateway sees it, so a device
// may log in at once.
//
// Each test gets its own servers; all of them stop when the test ends. The helpers of Harness and
// Device fail the test (t.Fatal) when something does not happen within poll.Timeout, so call them
// from the test's goroutine. They wait by polling, never by sleeping a fixed time, and assert
// nothing about timing: tests built on them pass on a loaded machine under -race.
//
// Set PLATO_TEST_LOG=1 to see the gateway's log in the test output.
package gatewaytest
