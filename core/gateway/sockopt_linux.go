//go:build linux

package gateway

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendQueue is how many bytes the kernel holds in fd's send queue: written by the gateway and not
// yet acknowledged by the device (SIOCOUTQ).
func sendQueue(fd int) (int, error) { return unix.IoctlGetInt(fd, unix.SIOCOUTQ) }

// setSendBuffer sets fd's SO_SNDBUF to n and returns what the kernel made of it: Linux doubles
// the value for its own bookkeeping and caps it at net.core.wmem_max.
func setSendBuffer(fd, n int) (int, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, n); err != nil {
		return 0, err
	}
	return sendBuffer(fd)
}

// sendBuffer is fd's SO_SNDBUF as the kernel reports it.
func sendBuffer(fd int) (int, error) { return unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF) }

// writeNow writes b to the non-blocking fd at once, or as much of it as there is room for. The
// raw system call does not tell the scheduler it may block (it cannot: the descriptor is
// non-blocking), which spares a wake-up of its monitor thread in a process that was idle, as
// netpoll's own sendmsg does.
func writeNow(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
