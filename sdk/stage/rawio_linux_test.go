//go:build linux

package stage

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// unixPair returns the two ends of a connected unix stream socket, as the net package makes them
// (non-blocking, in the netpoller), each with its raw reader and writer.
func unixPair(t *testing.T) (a, b *net.UnixConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

func TestSocketIOReadsAndWritesWholeFrames(t *testing.T) {
	a, b := unixPair(t)
	wa, rb := newSocketIO(a), newSocketIO(b)
	if _, ok := wa.(*socketIO); !ok {
		t.Fatalf("newSocketIO gave %T, want the raw reader and writer", wa)
	}
	// Far more than the socket buffer holds: the writer waits in the netpoller for room, in
	// part-writes, while the reader drains.
	msg := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	done := make(chan error, 1)
	go func() {
		n, err := wa.Write(msg)
		if err == nil && n != len(msg) {
			err = io.ErrShortWrite
		}
		done <- err
	}()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(rb, got); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("the bytes read are not the bytes written")
	}
}

func TestSocketIOEndsOnPeerCloseDeadlineAndClose(t *testing.T) {
	a, b := unixPair(t)
	rb := newSocketIO(b)
	buf := make([]byte, 16)

	// A deadline ends a read that has nothing to read, as the host's callers rely on.
	if err := b.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	_ = b.SetReadDeadline(time.Time{})

	// The peer closing is io.EOF once its bytes are read.
	if _, err := newSocketIO(a).Write([]byte("last")); err != nil {
		t.Fatal(err)
	}
	_ = a.Close()
	if n, err := rb.Read(buf); err != nil || string(buf[:n]) != "last" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if _, err := rb.Read(buf); err != io.EOF {
		t.Fatalf("read after the peer closed: %v, want io.EOF", err)
	}

	// Closing our own end ends a read waiting in the netpoller with net.ErrClosed.
	_, d := unixPair(t)
	rd := newSocketIO(d)
	errc := make(chan error, 1)
	go func() {
		_, err := rd.Read(buf)
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	_ = d.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed socket: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closing the socket did not end the read")
	}
	if _, err := newSocketIO(d).Write([]byte("x")); err == nil {
		t.Fatal("write on a closed socket succeeded")
	}
}

func TestSocketIOAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	a, b := unixPair(t)
	wa, rb := newSocketIO(a), newSocketIO(b)
	msg := make([]byte, 512)
	buf := make([]byte, 512)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := wa.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rb, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per write and read, want 0", allocs)
	}
}
