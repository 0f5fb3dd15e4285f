package bench

import "syscall"

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
