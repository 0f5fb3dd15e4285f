// Package rpc holds the Kitex options every Plato RPC server and client uses, so each role's
// servers behave the same way under shutdown and timeouts.
package rpc

import (
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/cloudwego/kitex/client"
	"github.com/cloudwego/kitex/server"

	"github.com/platoim/plato/sdk/business/pollnet"
)

// ConnectTimeout bounds dialing a peer; a peer that cannot be dialed in a second is down.
const ConnectTimeout = time.Second

// Server returns the options for a Kitex server on ln. Kitex by default stops its servers on
// SIGINT/SIGTERM by itself; Plato's processes shut their roles down in order (gateways tell devices
// and flush to the state server before it stops), so the signal is theirs to handle, not Kitex's.
func Server(ln net.Listener) []server.Option {
	// netpoll's own listener closes its descriptor more than once on Stop, and frees its number
	// before netpoll stops polling it (sdk/business/pollnet).
	if nl, err := pollnet.Convert(ln); err == nil {
		ln = nl
	}
	return []server.Option{
		server.WithListener(ln),
		server.WithExitWaitTime(time.Second),
		server.WithExitSignal(func() <-chan error { return make(chan error) }),
	}
}

// Client returns the options for a Kitex client of the peer at addr (host:port, or a unix socket
// path), with a per-call timeout: a call whose answer does not come within callTimeout fails with
// kerrors.ErrRPCTimeout. The timeout is a read deadline on the connection, not Kitex's RPC timeout
// (see bound.go): a call made with a context that cannot be cancelled (Detached) runs on the
// caller's goroutine.
func Client(addr string, callTimeout time.Duration) []client.Option {
	return []client.Option{
		client.WithHostPorts(addr),
		client.WithConnectTimeout(ConnectTimeout),
		readDeadlineOption(callTimeout),
	}
}

// Run serves srv on a goroutine of its own, counted in wg, and logs why it stopped unless Stop
// stopped it.
func Run(wg *sync.WaitGroup, srv server.Server, log *slog.Logger, what string) {
	wg.Go(func() {
		if err := srv.Run(); err != nil {
			log.Error(what+" stopped", "err", err)
		}
	})
}
