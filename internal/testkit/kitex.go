package testkit

import (
	"net"
	"testing"

	"github.com/cloudwego/kitex/server"

	"github.com/platoim/plato/internal/rpc"
)

// Listener is a free loopback port for a test's Kitex server: build the server with Options, then
// run it with Serve.
//
//	l := testkit.Listen(t)
//	s := &fake{Addr: l.Addr}
//	t.Cleanup(testkit.Serve(service.NewServer(s, l.Options()...)))
type Listener struct {
	// Addr is where the server answers, host:port on 127.0.0.1.
	Addr string
	ln   net.Listener
}

// Listen opens a free loopback port, failing the test if it cannot. It quiets Kitex first
// (QuietKitex), since a Kitex server follows.
func Listen(t testing.TB) *Listener {
	t.Helper()
	QuietKitex()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening on a loopback port: %v", err)
	}
	return &Listener{Addr: ln.Addr().String(), ln: ln}
}

// Options are Plato's Kitex server options on the listener (internal/rpc.Server).
func (l *Listener) Options() []server.Option { return rpc.Server(l.ln) }

// Serve runs srv in the background and returns what stops it: pass it to t.Cleanup, or call it
// beside the test's other stops (a Kitex server takes up to a second to stop).
func Serve(srv server.Server) (stop func()) {
	go func() { _ = srv.Run() }()
	return func() { _ = srv.Stop() }
}
