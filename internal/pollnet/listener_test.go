package pollnet

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudwego/netpoll"
	"golang.org/x/sys/unix"
)

// TestCloseClosesEachDescriptorOnce: a descriptor opened after the listener closed, with the number
// the listener polled, survives more Closes of the listener (netpoll's own listener closes it).
func TestCloseClosesEachDescriptorOnce(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = filepath.Join(t.TempDir(), "l.sock")
			}
			l, err := Listen(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			fd := l.Fd()
			if err := l.Close(); err != nil {
				t.Fatalf("first Close: %v", err)
			}
			// Take the freed number: the lowest free one is handed out first.
			var files []*os.File
			defer func() {
				for _, f := range files {
					f.Close()
				}
			}()
			var mine *os.File
			for range 64 {
				f, err := os.Open(os.DevNull)
				if err != nil {
					t.Fatal(err)
				}
				files = append(files, f)
				if int(f.Fd()) == fd {
					mine = f
					break
				}
			}
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

// TestAccepts: the listener accepts as netpoll needs it: a non-blocking listening descriptor, and
// connections netpoll can take (netpoll.Conn), close-on-exec, with TCP_NODELAY.
func TestAccepts(t *testing.T) {
	l, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fl, err := unix.FcntlInt(uintptr(l.Fd()), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Fatalf("descriptor flags %#x, %v: want non-blocking", fl, err)
	}
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got net.Conn
	for i := 0; got == nil && i < 1000; i++ {
		if got, err = l.Accept(); err != nil {
			t.Fatal(err)
		}
		if got == nil {
			time.Sleep(time.Millisecond)
		}
	}
	if got == nil {
		t.Fatal("no connection accepted")
	}
	defer got.Close()
	if got.RemoteAddr().String() != c.LocalAddr().String() {
		t.Errorf("accepted from %s, want %s", got.RemoteAddr(), c.LocalAddr())
	}
	fc, ok := got.(netpoll.Conn)
	if !ok {
		t.Fatalf("accepted a %T, want a netpoll.Conn", got)
	}
	if fd, err := unix.FcntlInt(uintptr(fc.Fd()), unix.F_GETFD, 0); err != nil || fd&unix.FD_CLOEXEC == 0 {
		t.Errorf("accepted descriptor flags %#x, %v: want close-on-exec", fd, err)
	}
	if v, err := unix.GetsockoptInt(fc.Fd(), unix.IPPROTO_TCP, unix.TCP_NODELAY); err != nil || v == 0 {
		t.Errorf("TCP_NODELAY %d, %v: want it set", v, err)
	}
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if again, err := Convert(l); err != nil || again != l {
		t.Fatalf("converting a converted listener: %v, %v", again, err)
	}
}
