package gateway_test

import (
	"context"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/cloudwego/netpoll"

	"github.com/platoim/plato/core/gateway"
)

// BenchmarkIdleConnHeap measures the Go heap that netpoll keeps per idle connection of a device
// that logged in and heartbeats: a 300-byte frame in and a 64-byte answer out, then a 20-byte
// frame each way, read and written as the gateway does (ReadBinary and Release, Malloc and Flush).
// The devices are raw sockets, so no client state is on the heap. It reports heap-B/conn under
// netpoll's defaults and under the policy plato sets (TuneNetpoll); docs/netpoll-proposal.md
// quotes it:
//
//	go test -run '^$' -bench IdleConnHeap -benchtime 1x ./core/gateway/
func BenchmarkIdleConnHeap(b *testing.B) {
	for _, tc := range []struct {
		name        string
		buf, minCap int
	}{
		{"netpoll-defaults", 8192, 4096},
		{"plato-policy", gateway.NetpollReadBuffer, gateway.NetpollMinNode},
	} {
		b.Run(tc.name, func(b *testing.B) {
			// Nothing else runs in this process (-run '^$'): the package variables are set while
			// no connection exists, and put back to the policy TestMain set.
			netpoll.LinkBufferCap = tc.minCap
			if err := netpoll.Configure(netpoll.Config{BufferSize: tc.buf, LoadBalance: netpoll.RoundRobin}); err != nil {
				b.Fatal(err)
			}
			defer func() {
				if err := gateway.TuneNetpoll(); err != nil {
					b.Fatal(err)
				}
			}()
			for range b.N {
				b.ReportMetric(idleConnHeap(b, 2000), "heap-B/conn")
			}
		})
	}
}

func idleConnHeap(b *testing.B, n int) float64 {
	ln, err := netpoll.CreateListener("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	answer := func(c netpoll.Connection, size int) error {
		w := c.Writer()
		buf, err := w.Malloc(size)
		if err != nil {
			return err
		}
		clear(buf)
		return w.Flush()
	}
	loop, err := netpoll.NewEventLoop(func(ctx context.Context, c netpoll.Connection) error {
		r := c.Reader()
		defer r.Release()
		for r.Len() > 0 {
			in, err := r.ReadBinary(r.Len())
			if err != nil {
				return err
			}
			size := 20
			if len(in) > 20 {
				size = 64
			}
			if err := answer(c, size); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = loop.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = loop.Shutdown(ctx)
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	before := liveHeap()
	fds := make([]int, 0, n)
	defer func() {
		for _, fd := range fds {
			_ = syscall.Close(fd)
		}
	}()
	buf := make([]byte, 300)
	for range n {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err != nil {
			b.Fatal(err)
		}
		fds = append(fds, fd)
		if err := syscall.Connect(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			b.Fatal(err)
		}
		rawExchange(b, fd, buf[:300], 64)
		rawExchange(b, fd, buf[:20], 20)
	}
	return float64(liveHeap()-before) / float64(n)
}

// rawExchange writes out on a blocking socket and reads want bytes back.
func rawExchange(b *testing.B, fd int, out []byte, want int) {
	if _, err := syscall.Write(fd, out); err != nil {
		b.Fatal(err)
	}
	in := make([]byte, want)
	for got := 0; got < want; {
		k, err := syscall.Read(fd, in[got:])
		if err != nil || k == 0 {
			b.Fatalf("reading the answer: %v", err)
		}
		got += k
	}
}

// liveHeap is the heap in use once what is garbage is collected, twice so that sync.Pool's victim
// cache (where netpoll's freed buffers wait) is emptied too.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
