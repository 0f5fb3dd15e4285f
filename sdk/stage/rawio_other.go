//go:build !linux

package stage

import (
	"io"
	"net"
	"syscall"
)

func newSocketIO(c *net.UnixConn) io.ReadWriter { return c }

func rawWrite(fd uintptr, b []byte) (int, error) { return syscall.Write(int(fd), b) }
