package rpc_test

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	gwservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/gateway"
	"github.com/platoim/plato/sdk/poll"
)

// TestStoppedServersFreeTheirListeners: a Kitex server made with rpc.Server frees its listener's
// descriptors when it stops. Its pollnet listener keeps the polled number after Kitex's first
// Close, until netpoll has detached it (docs/netpoll-proposal.md, item 7); a server stopped that
// way must still give it back.
func TestStoppedServersFreeTheirListeners(t *testing.T) {
	open := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("no /proc/self/fd: %v", err)
		}
		return len(ents)
	}
	cycle := func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		svr := gwservice.NewServer(&hangingGateway{release: make(chan struct{})}, rpc.Server(ln)...)
		var wg sync.WaitGroup
		wg.Go(func() { _ = svr.Run() })
		// Kitex records the listener as it starts, and a Stop before that leaves it serving: stop
		// only once it has answered.
		cli, err := gwservice.NewClient("plato-gateway", rpc.Client(ln.Addr().String(), 10*time.Second)...)
		if err != nil {
			t.Fatal(err)
		}
		poll.Until(t, "the server to answer", func() bool {
			_, err := cli.Sessions(context.Background(), &fleet.SessionsRequest{})
			return err == nil
		})
		if c, ok := cli.(interface{ Close() error }); ok {
			_ = c.Close()
		}
		if err := svr.Stop(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
	cycle() // the first start opens what a process keeps (pollers, eventfds)
	before := open()
	const n = 10
	for range n {
		cycle()
	}
	// The clients' connections close in the background once their servers are gone.
	poll.Until(t, "the stopped servers' descriptors to be freed", func() bool { return open()-before < n })
}
