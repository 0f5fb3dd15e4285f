package rpc_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudwego/kitex/client"
	"github.com/cloudwego/kitex/server"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	gwservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/gateway"
)

// cpuNow is the process's user+system CPU time: the client's and the server's, both in this
// process, so a benchmark can report CPU per call rather than wall time on a busy machine.
func cpuNow(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serveGateway runs a real Kitex gateway server on loopback with opts and returns its address.
func serveGateway(b *testing.B, opts ...server.Option) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	svr := gwservice.NewServer(&hangingGateway{release: make(chan struct{})}, append(rpc.Server(ln), opts...)...)
	var wg sync.WaitGroup
	wg.Go(func() { _ = svr.Run() })
	b.Cleanup(func() { _ = svr.Stop(); wg.Wait() })
	time.Sleep(100 * time.Millisecond) // the server's accept loop
	return ln.Addr().String()
}

// BenchmarkCall makes Gateway.Sessions calls to a real Kitex server on loopback, the way batch
// lanes do (one caller, or four at once: a hop's four lanes): "pool" as before ADR 0013 (Kitex's
// RPC timeout and a cancellable context: each call handed to a timeout-pool goroutine),
// "detached" as Plato calls now, and "mux-*" the same over Kitex's connection multiplexing
// (client.WithMuxConnection, server.WithMuxTransport), which ADR 0013 weighed.
func BenchmarkCall(b *testing.B) {
	addr := serveGateway(b)
	muxAddr := serveGateway(b, server.WithMuxTransport())

	laneCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	poolOpts := func(addr string) []client.Option {
		return []client.Option{client.WithHostPorts(addr), client.WithRPCTimeout(3 * time.Second), client.WithConnectTimeout(rpc.ConnectTimeout)}
	}
	for _, bc := range []struct {
		name string
		opts []client.Option
		ctx  context.Context
	}{
		{"pool", poolOpts(addr), laneCtx},
		{"detached", rpc.Client(addr, 3*time.Second), rpc.Detached(laneCtx)},
		{"mux-pool", append(poolOpts(muxAddr), client.WithMuxConnection(1)), laneCtx},
		{"mux-detached", append(rpc.Client(muxAddr, 3*time.Second), client.WithMuxConnection(1)), rpc.Detached(laneCtx)},
	} {
		cli, err := gwservice.NewClient("plato-gateway", bc.opts...)
		if err != nil {
			b.Fatal(err)
		}
		req := &fleet.SessionsRequest{StateId: "s1"}
		if _, err := cli.Sessions(bc.ctx, req); err != nil {
			b.Fatal(err)
		}
		for _, callers := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/callers=%d", bc.name, callers), func(b *testing.B) {
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := cpuNow(b)
				var next atomic.Int64
				var wg sync.WaitGroup
				for range callers {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if _, err := cli.Sessions(bc.ctx, req); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64((cpuNow(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
			})
		}
	}
}
