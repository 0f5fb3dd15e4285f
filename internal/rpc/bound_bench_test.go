package rpc_test

import (
	"context"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudwego/kitex/client"

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

// BenchmarkCall makes sequential Gateway.Sessions calls to a real Kitex server on loopback, the
// way a batch lane does: "pool" as before ADR 0011 (Kitex's RPC timeout and a cancellable
// context: each call handed to a timeout-pool goroutine), "detached" as Plato calls now.
func BenchmarkCall(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	svr := gwservice.NewServer(&hangingGateway{release: make(chan struct{})}, rpc.Server(ln)...)
	var wg sync.WaitGroup
	wg.Go(func() { _ = svr.Run() })
	defer func() { _ = svr.Stop(); wg.Wait() }()
	addr := ln.Addr().String()
	time.Sleep(100 * time.Millisecond) // the server's accept loop

	laneCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, bc := range []struct {
		name string
		opts []client.Option
		ctx  context.Context
	}{
		{"pool", []client.Option{client.WithHostPorts(addr), client.WithRPCTimeout(3 * time.Second), client.WithConnectTimeout(rpc.ConnectTimeout)}, laneCtx},
		{"detached", rpc.Client(addr, 3*time.Second), rpc.Detached(laneCtx)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cli, err := gwservice.NewClient("plato-gateway", bc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			req := &fleet.SessionsRequest{StateId: "s1"}
			if _, err := cli.Sessions(bc.ctx, req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuNow(b)
			for b.Loop() {
				if _, err := cli.Sessions(bc.ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuNow(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
