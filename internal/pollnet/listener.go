// Package pollnet makes the listeners Plato hands to netpoll (the gateway's device and WebSocket
// servers, and every Kitex server): netpoll's own (netpoll.CreateListener, ConvertListener) close
// their descriptor twice, which in a process that keeps running other sockets can close one of
// theirs.
//
// netpoll v0.7.2's listener polls a dup of the listening socket (net.TCPListener.File) and closes it
// with syscall.Close(fd) and then again through the *os.File that owns the same number; Kitex's
// server Stop closes the listener twice more (transServer.Shutdown, then the event loop's). Between
// two of those closes another goroutine can open a socket that gets the freed number, and the next
// close closes it instead: a Kitex connection to a peer then fails with "bad file descriptor", or
// its requests go into another socket. Seen when a state server stopped beside a gateway and
// another state server in one process (plato up, the end-to-end tests).
package pollnet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/cloudwego/netpoll"
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

// Fd is the descriptor netpoll accepts on.
func (l *listener) Fd() int { return l.fd }

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
