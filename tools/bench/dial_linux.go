package bench

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (linux/in.h), not in package syscall.
const ipBindAddressNoPort = 24

// dialControl lets a connection bound to a source address leave the port choice to connect(): with
// a plain bind to port 0 the kernel must find a port free for every destination, scanning past
// sockets in TIME_WAIT (a previous pass leaves tens of thousands), and connecting slows to a crawl.
// At connect() time it only needs the 4-tuple to be unique.
func dialControl(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// rcvbufControl is a dialer Control that sets SO_RCVBUF to n before the socket connects (0 keeps
// the kernel's, which autotunes as the device reads).
func rcvbufControl(n int) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		if n <= 0 {
			return nil
		}
		var serr error
		if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n) }); err != nil {
			return err
		}
		return serr
	}
}

// recvQueue is how many bytes wait in nc's receive queue (SIOCINQ): what a device that stopped
// reading holds in its own kernel.
func recvQueue(nc net.Conn) (int, bool) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	n, ierr := 0, error(nil)
	if err := raw.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil || ierr != nil {
		return 0, false
	}
	return n, true
}
