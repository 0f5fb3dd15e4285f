//go:build !linux

package bench

import (
	"net"
	"syscall"
)

// dialControl does nothing here; see dial_linux.go.
func dialControl(_, _ string, _ syscall.RawConn) error { return nil }

// rcvbufControl leaves the kernel's receive buffer here; see dial_linux.go.
func rcvbufControl(int) func(network, address string, c syscall.RawConn) error { return nil }

// recvQueue is not read here; see dial_linux.go.
func recvQueue(net.Conn) (int, bool) { return 0, false }
