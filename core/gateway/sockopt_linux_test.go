//go:build linux

package gateway

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// socketPair is a loopback TCP connection whose client end (the device) sets a small receive
// buffer and never reads, and whose server end's descriptor the test drives by hand, non-blocking.
func socketPair(t *testing.T) (serverFD int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
	}}
	client, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	raw, err := server.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.Control(func(fd uintptr) { serverFD = int(fd) })
	if err := unix.SetNonblock(serverFD, true); err != nil {
		t.Fatal(err)
	}
	return serverFD
}

// fill writes 1 KB at a time until the kernel takes no more (a few retries, for the peer's ACKs
// and window updates to settle), and returns the bytes taken.
func fill(t *testing.T, fd int) int {
	t.Helper()
	buf := make([]byte, 1024)
	total, stuck := 0, 0
	for stuck < 5 {
		n, err := writeNow(fd, buf)
		if n > 0 {
			total += n
			stuck = 0
			continue
		}
		if !errors.Is(err, unix.EAGAIN) {
			t.Fatalf("write: %v", err)
		}
		stuck++
		time.Sleep(20 * time.Millisecond)
	}
	return total
}

// TestSendBufferBoundsTheKernelQueue is what gateway.socket_send_buffer relies on: with SO_SNDBUF
// set, the kernel reports twice the value and holds a bounded amount unsent for a device that does
// not read, which sendQueue (SIOCOUTQ) sees; without it the kernel autotunes to megabytes.
func TestSendBufferBoundsTheKernelQueue(t *testing.T) {
	const set = 64 << 10
	fd := socketPair(t)
	got, err := setSendBuffer(fd, set)
	if err != nil {
		t.Fatal(err)
	}
	if got != 2*set {
		t.Fatalf("SO_SNDBUF %d: the kernel reports %d, want %d (Linux doubles it)", set, got, 2*set)
	}
	written := fill(t, fd)
	outq, err := sendQueue(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SO_SNDBUF %d (kernel %d): %d bytes taken, %d of them still in the send queue", set, got, written, outq)
	if outq <= 0 || outq > written {
		t.Fatalf("send queue %d after %d bytes written to a device that does not read", outq, written)
	}
	// Generous: the kernel counts its own overhead against the buffer, so what it holds is of the
	// order of the doubled value; autotuned, the same socket would hold megabytes.
	if outq > 4*got {
		t.Fatalf("the kernel holds %d bytes unsent with SO_SNDBUF %d: not bounded", outq, set)
	}

	free := socketPair(t)
	before, err := sendBuffer(free)
	if err != nil {
		t.Fatal(err)
	}
	w := fill(t, free)
	q, _ := sendQueue(free)
	t.Logf("without SO_SNDBUF (kernel %d at first): %d bytes taken, %d still in the send queue", before, w, q)
}
