package pollnet

import (
	"net"
	"os"
	"path/filepath"
	"testing"

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

// TestAccepts: netpoll accepts on the converted listener (its Fd is a working, non-blocking socket).
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
	if again, err := Convert(l); err != nil || again != l {
		t.Fatalf("converting a converted listener: %v, %v", again, err)
	}
}
