// Package pollnet makes the listeners Plato hands to netpoll (the gateway's device and WebSocket
// servers, and every Kitex server): netpoll's own (netpoll.CreateListener, ConvertListener) close
// their descriptor twice, which in a process that keeps running other sockets can close one of
// theirs.
//
// netpoll v0.7.2's listener polls a dup of the listening socket (net.TCPListener.File) and closes it
// with syscall.Close(fd) and then again through the *os.File that owns the same number; Kitex's
// server Stop closes the listener twice more (transServer.Shutdown, then the event loop's). Between
// two of those closes another goroutine can open a socket that gets the freed number, and the next
// close closes it instead, whatever socket it now is. strace shows these closes when a state
// server stops beside a gateway and another state server in one process (plato up, the end-to-end
// tests); docs/netpoll-proposal.md, item 7.
package pollnet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/cloudwego/netpoll"
	"golang.org/x/sys/unix"
)

// Listen listens on network ("tcp", "unix") at addr, for netpoll.
func Listen(network, addr string) (netpoll.Listener, error) {
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	nl, err := Convert(ln)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return nl, nil
}

// Convert makes ln a netpoll.Listener that owns ln: its Close closes ln and the descriptor netpoll
// polls, each once, however often it is called.
func Convert(ln net.Listener) (netpoll.Listener, error) {
	if l, ok := ln.(*listener); ok {
		return l, nil
	}
	var (
		f   *os.File
		err error
	)
	switch l := ln.(type) {
	case *net.TCPListener:
		f, err = l.File()
	case *net.UnixListener:
		f, err = l.File()
	default:
		return nil, fmt.Errorf("pollnet: a %T cannot be polled by netpoll", ln)
	}
	if err != nil {
		return nil, fmt.Errorf("pollnet: the descriptor of %s: %w", ln.Addr(), err)
	}
	// File.Fd puts the descriptor in blocking mode; netpoll accepts on it without blocking.
	fd := int(f.Fd())
	if err := syscall.SetNonblock(fd, true); err != nil {
		f.Close()
		return nil, fmt.Errorf("pollnet: the descriptor of %s: %w", ln.Addr(), err)
	}
	return &listener{Listener: ln, file: f, fd: fd}, nil
}

type listener struct {
	net.Listener
	file *os.File // owns fd, a dup of the listening socket
	fd   int
	once sync.Once
	err  error
}

// Fd is the descriptor netpoll polls for connections.
func (l *listener) Fd() int { return l.fd }

// Accept takes one connection from the polled descriptor, as netpoll's listener does (nil, nil when
// none is waiting), but close-on-exec, so that a program started later (a plugin, the next process
// of an upgrade) does not hold it open. netpoll takes the connection's descriptor, addresses and
// network from it; TCP_NODELAY is set here, as netpoll sets it for its own.
func (l *listener) Accept() (net.Conn, error) {
	fd, sa, err := unix.Accept4(l.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, err
	}
	c := &conn{fd: fd, local: l.Addr()}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		c.remote = &net.TCPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: sa.Port}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	case *unix.SockaddrInet6:
		c.remote = &net.TCPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: sa.Port}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	case *unix.SockaddrUnix:
		c.remote = &net.UnixAddr{Name: sa.Name, Net: "unix"}
	default:
		c.remote = l.Addr()
	}
	return c, nil
}

func (l *listener) Close() error {
	l.once.Do(func() {
		err := l.Listener.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
		l.err = errors.Join(err, l.file.Close())
	})
	return l.err
}

// conn hands an accepted descriptor to netpoll, which reads only its Fd and addresses and owns the
// descriptor from then on; the other methods serve only a caller that does not give it to netpoll.
type conn struct {
	fd            int
	local, remote net.Addr
}

func (c *conn) Fd() int                          { return c.fd }
func (c *conn) LocalAddr() net.Addr              { return c.local }
func (c *conn) RemoteAddr() net.Addr             { return c.remote }
func (c *conn) Read(b []byte) (int, error)       { return unix.Read(c.fd, b) }
func (c *conn) Write(b []byte) (int, error)      { return unix.Write(c.fd, b) }
func (c *conn) Close() error                     { return unix.Close(c.fd) }
func (c *conn) SetDeadline(time.Time) error      { return errNoDeadline }
func (c *conn) SetReadDeadline(time.Time) error  { return errNoDeadline }
func (c *conn) SetWriteDeadline(time.Time) error { return errNoDeadline }

var errNoDeadline = errors.New("pollnet: an accepted connection has no deadlines before netpoll takes it")
