package gateway

import (
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudwego/netpoll"
)

// TestDetachedInputMissesNoByte detaches sockets from netpoll while their peers stream into them,
// as an upgrade passes connections under load: what detachedInput returns, followed by what the
// socket still holds, must be the whole stream. It fails (a gap, or bytes out of order) when the
// poller's read in flight at Detach is not waited for, and when netpoll's layout changes.
func TestDetachedInputMissesNoByte(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(10 * time.Second)
	rounds := 0
	for ; rounds < 200 && time.Now().Before(deadline); rounds++ {
		detachUnderLoad(t, ln, rounds)
		if t.Failed() {
			return
		}
	}
	t.Logf("%d sockets detached while streaming", rounds)
}

func detachUnderLoad(t *testing.T, ln net.Listener, round int) {
	t.Helper()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	f, err := sc.(*net.TCPConn).File()
	sc.Close()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := netpoll.NewFDConnection(int(f.Fd()))
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	// The stream: consecutive big-endian uint32s, written until told to stop.
	var stop atomic.Bool
	written := make(chan uint64, 1)
	go func() {
		var next uint32
		var total uint64
		buf := make([]byte, 4*(256+rand.IntN(2048)))
		for !stop.Load() {
			for i := 0; i < len(buf); i += 4 {
				binary.BigEndian.PutUint32(buf[i:], next)
				next++
			}
			n, err := client.Write(buf)
			total += uint64(n)
			if err != nil {
				break
			}
		}
		_ = client.(*net.TCPConn).CloseWrite()
		written <- total
	}()
	type taken struct {
		input []byte
		fd    int
		err   error
	}
	got := make(chan taken, 1)
	_ = nc.AddCloseCallback(func(c netpoll.Connection) error {
		in, err := detachedInput(c, nil)
		if err != nil {
			got <- taken{nil, -1, err}
			return nil
		}
		fd, err := dupCloexec(c.(interface{ Fd() int }).Fd())
		if err != nil {
			fd = -1
		}
		got <- taken{in, fd, nil}
		return nil
	})
	time.Sleep(time.Duration(rand.IntN(400)) * time.Microsecond)
	if err := nc.(interface{ Detach() error }).Detach(); err != nil {
		t.Fatal(err)
	}
	tk := <-got
	f.Close()
	stop.Store(true)
	if tk.err != nil {
		t.Fatalf("waiting for the poller: %v", tk.err)
	}
	if tk.fd < 0 {
		t.Fatal("duplicating the detached socket failed")
	}
	rest := os.NewFile(uintptr(tk.fd), "detached")
	defer rest.Close()
	_ = syscall.SetNonblock(tk.fd, false)
	tail, err := io.ReadAll(rest)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("round %d: reading the detached socket: %v", round, err)
	}
	total := <-written
	stream := append(tk.input, tail...)
	if uint64(len(stream)) != total {
		t.Errorf("round %d: %d bytes taken at Detach + %d read after = %d, the peer wrote %d", round, len(tk.input), len(tail), len(stream), total)
	}
	for i := 0; i+4 <= len(stream); i += 4 {
		if v := binary.BigEndian.Uint32(stream[i:]); v != uint32(i/4) {
			t.Errorf("round %d: at byte %d (%d taken at Detach): %d, want %d", round, i, len(tk.input), v, i/4)
			return
		}
	}
}

// A connection that is not netpoll's own (or a netpoll whose layout changed) is refused before it
// is detached, so passBatch leaves it to be redirected rather than lose its bytes.
func TestPollerStateRefusesAnotherLayout(t *testing.T) {
	type otherConn struct{ netpoll.Connection }
	if _, err := pollerState(&otherConn{}); err == nil {
		t.Fatal("pollerState accepted a connection without netpoll's operator")
	}
	if err := quiescePoller(&otherConn{}); err == nil {
		t.Fatal("quiescePoller accepted a connection without netpoll's operator")
	}
}
