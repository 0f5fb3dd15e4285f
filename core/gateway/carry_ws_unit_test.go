package gateway

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/cloudwego/netpoll"
	"github.com/gobwas/ws"
)

// arrivingReader is a netpoll.Reader whose input grows the moment what it held is taken, as
// netpoll's does when its poller reads more of the socket while a read runs.
type arrivingReader struct {
	buf  []byte
	more []byte // added once buf is emptied
}

var errNotYet = errors.New("arrivingReader: not that many bytes")

func (r *arrivingReader) take(n int) ([]byte, error) {
	if n > len(r.buf) {
		return nil, errNotYet
	}
	p := append([]byte(nil), r.buf[:n]...)
	r.buf = r.buf[n:]
	if len(r.buf) == 0 && r.more != nil {
		r.buf, r.more = r.more, nil
	}
	return p, nil
}

func (r *arrivingReader) Next(n int) ([]byte, error)       { return r.take(n) }
func (r *arrivingReader) ReadBinary(n int) ([]byte, error) { return r.take(n) }
func (r *arrivingReader) Skip(n int) error                 { _, err := r.take(n); return err }
func (r *arrivingReader) Len() int                         { return len(r.buf) }
func (r *arrivingReader) Release() error                   { return nil }
func (r *arrivingReader) Peek(n int) ([]byte, error) {
	if n > len(r.buf) {
		return nil, errNotYet
	}
	return r.buf[:n], nil
}
func (r *arrivingReader) Until(byte) ([]byte, error)        { panic("not used") }
func (r *arrivingReader) ReadString(int) (string, error)    { panic("not used") }
func (r *arrivingReader) ReadByte() (byte, error)           { panic("not used") }
func (r *arrivingReader) Slice(int) (netpoll.Reader, error) { panic("not used") }

// readerConn is a connection of which the reads use only the Reader.
type readerConn struct {
	netpoll.Connection
	r *arrivingReader
}

func (c readerConn) Reader() netpoll.Reader { return c.r }

// A WebSocket read that carries the start of a handshake or a frame stops there: what netpoll
// adds to the input meanwhile is the rest of it, and is read behind the carry (readCarried), not
// as a frame of its own. Read as one, the rest of a browser's Login, whose header Chromium writes
// apart from its payload, was refused "reserved bits set" under load.
func TestWSReadStopsAtTheCarry(t *testing.T) {
	gw := newIdleGateway(t)
	// A ping whose mask starts with 0x70: read as a header, its rest has reserved bits set.
	mask := [4]byte{0x70, 0x01, 0x02, 0x03}
	ping := ws.MustCompileFrame(ws.MaskFrameWith(ws.NewPingFrame([]byte("hi")), mask))
	for _, tc := range []struct {
		name     string
		upgraded bool
		in       []byte
		cut      int
		want     []byte // the start of the last raw bytes queued
	}{
		{"frame", true, ping, 2, ws.MustCompileFrame(ws.NewPongFrame([]byte("hi")))},
		{"handshake", false, []byte(carriedHandshake), 30, []byte("HTTP/1.1 101 ")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &conn{id: 1, gw: gw, fd: -1, state: stateNew, flushing: true, ws: &wsConn{Upgraded: tc.upgraded}}
			nc := readerConn{r: &arrivingReader{buf: tc.in[:tc.cut:tc.cut], more: tc.in[tc.cut:]}}
			// netpoll calls the handler again while input is left, as its task loop does.
			for range 3 {
				if nc.r.Len() == 0 {
					break
				}
				if err := gw.onWSRequest(context.WithValue(context.Background(), connCtxKey{}, c), nc); err != nil {
					t.Fatalf("read: %v", err)
				}
			}
			q := rawQueued(t, c)
			if len(q) != 1 || !bytes.HasPrefix(q[0], tc.want) {
				t.Fatalf("queued %q, want %q only", q, tc.want)
			}
			c.mu.Lock()
			h := c.handoffLocked()
			c.mu.Unlock()
			if h != nil && h.carry != nil {
				t.Fatalf("carry %q left", h.carry)
			}
		})
	}
}
