package gateway_test

import (
	"context"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/platoim/plato/core/gateway/gatewaytest"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// BenchmarkGatewayConnHeap measures the Go heap a whole gateway keeps per logged-in device that
// heartbeats: netpoll's share (BenchmarkIdleConnHeap) and Plato's, its conn, tables and strings.
// The gateway is a real one (gatewaytest: a fake state server over Kitex, which accepts every
// Login); the devices are raw sockets, so none of theirs is on the heap, and what the fake state
// server recorded is dropped before measuring. A first burst of n devices logs in, then a second:
// heap-B/conn is the second's, what each connection keeps; burst-B/conn the first's, which adds
// what a burst of that size grows once and keeps (netpoll's poller event arrays). The reports
// of docs/performance.md come from
//
//	go test -run '^$' -bench GatewayConnHeap -benchtime 1x -count 3 ./core/gateway/
//
// and PLATO_HEAP_PROFILE=file (with -memprofilerate 1) writes the heap profile after the second
// burst.
func BenchmarkGatewayConnHeap(b *testing.B) {
	for range b.N {
		burst, steady := gatewayConnHeap(b, 2000)
		b.ReportMetric(steady, "heap-B/conn")
		b.ReportMetric(burst, "burst-B/conn")
	}
}

func gatewayConnHeap(b *testing.B, n int) (burst, steady float64) {
	h := gatewaytest.New(b, gatewaytest.Options{NoNATS: true})
	all := make([]int, 0, 2*n+1)
	// Everything goes at the end of the call, not of the benchmark: `make bench` runs it more than
	// once, and the devices of two calls would near the open-file limit.
	defer func() {
		for _, fd := range all {
			_ = syscall.Close(fd)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = h.Gateway.Shutdown(ctx)
	}()
	port := h.Gateway.Addr()
	_, p, _ := net.SplitHostPort(port)
	portNum, _ := strconv.Atoi(p)
	login := func(first, count int) {
		start := len(all)
		for i := first; i < first+count; i++ {
			fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
			if err != nil {
				b.Fatal(err)
			}
			all = append(all, fd)
			if err := syscall.Connect(fd, &syscall.SockaddrInet4{Port: portNum, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				b.Fatal(err)
			}
			did := "device-" + strconv.Itoa(i)
			tok, _ := h.Tokens.Issue("app", did, did, time.Now(), time.Time{})
			frame := protocol.AppendFrame(nil, protocol.SigLogin, 0, 1, (&protocol.Login{AppID: "app", DID: did, UID: did, Token: tok}).Append(nil))
			if _, err := syscall.Write(fd, frame); err != nil {
				b.Fatal(err)
			}
		}
		isLogin := func(ev *fleet.UpEvent) bool { return protocol.Signal(ev.Signal) == protocol.SigLogin }
		poll.Until(b, "the state server to see every Login", func() bool { return h.State.Count(isLogin) == count })
		var frames []*fleet.DownFrame
		for _, ev := range h.State.Find(isLogin) {
			ack := (&protocol.LoginAck{ConnID: uint64(ev.ConnId), HeartbeatMs: 30000}).Append(nil)
			frames = append(frames, &fleet.DownFrame{
				ConnId: ev.ConnId, Action: fleet.DownAction_LOGIN_OK, Signal: int8(protocol.SigLoginAck), Seq: 1, Body: ack,
			})
			if len(frames) == 500 {
				h.Push(frames...)
				frames = nil
			}
		}
		if len(frames) > 0 {
			h.Push(frames...)
		}
		hb := protocol.AppendFrame(nil, protocol.SigHeartbeat, 0, 2, nil)
		for _, fd := range all[start:] {
			readFrame(b, fd)
			if _, err := syscall.Write(fd, hb); err != nil {
				b.Fatal(err)
			}
		}
		isHB := func(ev *fleet.UpEvent) bool { return protocol.Signal(ev.Signal) == protocol.SigHeartbeat }
		poll.Until(b, "the state server to see every heartbeat", func() bool { return h.State.Count(isHB) == count })
		h.State.Forget()
	}
	// A first device makes what the gateway builds once (the app's usage, the lanes' buffers).
	login(0, 1)
	before := liveHeap()
	login(1, n)
	mid := liveHeap()
	login(n+1, n)
	after := liveHeap()
	if f := os.Getenv("PLATO_HEAP_PROFILE"); f != "" {
		// Where the heap goes, for docs/performance.md: run with -memprofilerate 1.
		out, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		defer out.Close()
		if err := pprof.WriteHeapProfile(out); err != nil {
			b.Fatal(err)
		}
	}
	return float64(mid-before) / float64(n), float64(after-mid) / float64(n)
}

// readFrame reads one whole frame from a blocking socket.
func readFrame(b *testing.B, fd int) {
	head := make([]byte, protocol.HeaderLen)
	readFull(b, fd, head)
	hd, err := protocol.ParseHeader(head, protocol.HardMaxBody)
	if err != nil {
		b.Fatal(err)
	}
	readFull(b, fd, make([]byte, hd.Length))
}

func readFull(b *testing.B, fd int, buf []byte) {
	for got := 0; got < len(buf); {
		k, err := syscall.Read(fd, buf[got:])
		if err != nil || k == 0 {
			b.Fatalf("reading a frame: %v", err)
		}
		got += k
	}
}
