// Package pollnet makes listeners for netpoll and for Kitex servers that can stop beside other
// sockets of the same process: Plato's gateway (device and WebSocket servers), every Kitex server
// of Plato's, and the business server of this SDK. netpoll's own (netpoll.CreateListener, ConvertListener) lose
// track of the descriptor they poll when they close, which in a process that keeps running other
// sockets breaks one of those:
//
//   - netpoll v0.7.2's listener polls a dup of the listening socket (net.TCPListener.File) and
//     closes it with syscall.Close(fd) and then again through the *os.File that owns the same
//     number; Kitex's server Stop closes the listener twice more (transServer.Shutdown, then the
//     event loop's). A later close closes whatever socket got the freed number meanwhile.
//   - Kitex's Stop closes the listener first and only 100 ms or more later has netpoll take the
//     number out of its epoll set (EPOLL_CTL_DEL). If a connection got the number meanwhile and
//     was registered in the same set, it is the one taken out: it never hears of its input again,
//     and its calls time out (a state server stopping beside a gateway and another state server in
//     one process: the gateway's calls to the other one, and its pushes to the gateway, stalled).
//
// So the first Close here stops listening at once but keeps the number taken, by a placeholder
// that no epoll set holds, and only the second frees it, after netpoll's detach (netpoll's server
// detaches and then closes; Kitex closes before that as well). strace showed both;
// docs/netpoll-proposal.md, item 7.
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

// Convert makes ln a netpoll.Listener that owns ln. Its first Close closes ln and stops the socket
// netpoll polls, keeping its number taken; the second frees the number. An owner that closes the
// listener only through netpoll's Shutdown (which detaches it first) closes it once more after.
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
	file *os.File // owns fd, a dup of the listening socket, then its placeholder
	fd   int

	mu     sync.Mutex
	closes int
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
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closes++
	switch l.closes {
	case 1:
		err := l.Listener.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
		return errors.Join(err, l.retire())
	case 2:
		return l.file.Close()
	}
	return nil
}

// retire puts a placeholder (/dev/null, which no epoll set can hold) on the polled number. That
// drops this process's hold on the socket, so connections to it are refused (unless a new process
// of an upgrade holds it too) and the kernel takes it out of netpoll's epoll set by itself, while
// the number stays taken until netpoll has detached it. Should /dev/null not open (no descriptor
// left), the socket itself keeps the number until the second Close, still listening: shutting it
// down would stop it in a new process that was passed it as well.
func (l *listener) retire() error {
	null, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(null)
	if err := unix.Dup3(null, l.fd, unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("pollnet: stopping %s: %w", l.Addr(), err)
	}
	return nil
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
