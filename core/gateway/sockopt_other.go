//go:build !linux

package gateway

import (
	"errors"
	"syscall"
)

// errNoSendQueue: only Linux tells the bytes in a socket's send queue; elsewhere the slow-consumer
// check counts what the gateway holds, not the kernel's part.
var errNoSendQueue = errors.New("the kernel's send queue is only read on Linux")

func sendQueue(int) (int, error) { return 0, errNoSendQueue }

func setSendBuffer(fd, n int) (int, error) {
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, n); err != nil {
		return 0, err
	}
	return sendBuffer(fd)
}

func sendBuffer(fd int) (int, error) {
	return syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF)
}

func writeNow(fd int, b []byte) (int, error) { return syscall.Write(fd, b) }
