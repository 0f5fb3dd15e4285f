package pollnet

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudwego/netpoll"
	"golang.org/x/sys/unix"
)

func listenBoth(t *testing.T, network string) netpoll.Listener {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "l.sock")
	}
	l, err := Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// takeNumber opens files until one gets descriptor fd (the lowest free number is handed out first)
// and returns it; nil when fd was not handed out.
func takeNumber(t *testing.T, fd int) *os.File {
	t.Helper()
	var files []*os.File
	t.Cleanup(func() {
		for _, f := range files {
			f.Close()
		}
	})
	for range 64 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		if int(f.Fd()) == fd {
			return f
		}
	}
	return nil
}

// TestCloseKeepsTheNumberUntilTheSecond: the first Close stops the listener (connections are
// refused) but its number stays taken, so that netpoll's later EPOLL_CTL_DEL of that number cannot
// take another socket out of its epoll set; the second frees it, and later ones close nothing.
func TestCloseKeepsTheNumberUntilTheSecond(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			l := listenBoth(t, network)
			fd, addr := l.Fd(), l.Addr()
			ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(ep)
			if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
				t.Fatal(err)
			}

			if err := l.Close(); err != nil {
				t.Fatalf("first Close: %v", err)
			}
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
				t.Fatalf("after the first Close, descriptor %d is free (%v): a socket opened now could be detached by netpoll", fd, err)
			}
			if c, err := net.DialTimeout(addr.Network(), addr.String(), 5*time.Second); err == nil {
				c.Close()
				t.Fatalf("a connection to %s was accepted after Close", addr)
			}
			// What netpoll's detach does after the first Close takes nothing out: the socket left the
			// set when it closed, and the placeholder (/dev/null) cannot be in one.
			if err := unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, fd, &unix.EpollEvent{}); err != unix.ENOENT && err != unix.EPERM {
				t.Fatalf("EPOLL_CTL_DEL of the stopped listener's number: %v, want ENOENT or EPERM", err)
			}

			if err := l.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			mine := takeNumber(t, fd)
			if mine == nil {
				t.Skipf("descriptor %d was not handed out again", fd)
			}
			_ = l.Close()
			_ = l.Close()
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
				t.Fatalf("a later Close of the listener closed descriptor %d, now another file's: %v", fd, err)
			}
		})
	}
}

// TestNetpollServesAndStops: netpoll accepts through the listener, and its Shutdown (detach, then
// Close) followed by the owner's Close frees the number.
func TestNetpollServesAndStops(t *testing.T) {
	l := listenBoth(t, "tcp")
	fd := l.Fd()
	loop, err := netpoll.NewEventLoop(func(ctx context.Context, c netpoll.Connection) error {
		b, err := c.Reader().Next(c.Reader().Len())
		if err != nil {
			return err
		}
		if _, err := c.Writer().WriteBinary(append([]byte(nil), b...)); err != nil {
			return err
		}
		return c.Writer().Flush()
	})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- loop.Serve(l) }()
	c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := c.Read(buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q %v", buf, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := loop.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		t.Fatalf("netpoll's one Close freed descriptor %d: %v", fd, err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("the owner's Close: %v", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
		if f := takeNumber(t, fd); f == nil {
			t.Fatalf("descriptor %d is still taken after the owner's Close", fd)
		}
	}
}
