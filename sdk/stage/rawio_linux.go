//go:build linux

package stage

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// The data socket's reads and writes are raw system calls, made through syscall.RawConn so that
// the netpoller still does the waiting (and a read deadline still ends it). A socket of the net
// package is non-blocking, so none of them blocks; syscall.Read and syscall.Write would also tell
// the runtime that a system call may block, and that wakes the runtime's monitor thread (sysmon)
// whenever it sleeps because the process was idle: with one caller at a time, at every batch on
// both sides, for about a fifth of a round trip's CPU (docs/adr/0011-stage-data-socket.md,
// "Raw system calls"). CloudWeGo's netpoll does its I/O the same way.

// socketIO is the data socket's reader and writer. Reads come from one goroutine at a time (the
// reading role on the host, the reader on the plugin) and so do writes (the host's sender
// goroutine, the plugin's send lock); each direction's state is bound once, so a call allocates
// nothing.
type socketIO struct {
	sc syscall.RawConn

	rb     []byte
	rn     int
	rerr   syscall.Errno
	readFn func(fd uintptr) bool

	wb      []byte
	wn      int
	werr    syscall.Errno
	writeFn func(fd uintptr) bool
}

// newSocketIO returns c's reader and writer, or c itself if it has no raw descriptor.
func newSocketIO(c *net.UnixConn) io.ReadWriter {
	sc, err := c.SyscallConn()
	if err != nil {
		return c
	}
	s := &socketIO{sc: sc}
	s.readFn = s.readOnce
	s.writeFn = s.writeSome
	return s
}

func (s *socketIO) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	s.rb, s.rn, s.rerr = b, 0, 0
	err := s.sc.Read(s.readFn)
	n, errno := s.rn, s.rerr
	s.rb = nil
	switch {
	case err != nil:
		return 0, err // closed, or the read deadline passed
	case errno != 0:
		return 0, os.NewSyscallError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readOnce reads what is there; false (nothing yet) makes the netpoller wait for more.
func (s *socketIO) readOnce(fd uintptr) bool {
	for {
		n, errno := rawSys(syscall.SYS_READ, fd, s.rb)
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			s.rn = n
		default:
			s.rerr = errno
		}
		return true
	}
}

func (s *socketIO) Write(b []byte) (int, error) {
	s.wb, s.wn, s.werr = b, 0, 0
	err := s.sc.Write(s.writeFn)
	n, errno := s.wn, s.werr
	s.wb = nil
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, os.NewSyscallError("write", errno)
	}
	return n, nil
}

// writeSome writes until all of wb is out; false (the socket is full) makes the netpoller wait
// for room.
func (s *socketIO) writeSome(fd uintptr) bool {
	for s.wn < len(s.wb) {
		n, errno := rawSys(syscall.SYS_WRITE, fd, s.wb[s.wn:])
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			s.wn += n
			continue
		}
		s.werr = errno
		return true
	}
	return true
}

// rawWrite is one write(2) on the non-blocking fd (trySend).
func rawWrite(fd uintptr, b []byte) (int, error) {
	n, errno := rawSys(syscall.SYS_WRITE, fd, b)
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

func rawSys(trap, fd uintptr, b []byte) (int, syscall.Errno) {
	r, _, errno := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	return int(r), errno
}
