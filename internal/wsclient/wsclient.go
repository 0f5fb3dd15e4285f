// Package wsclient is a minimal WebSocket client of the gateway's WebSocket transport
// (docs/protocol.md, "WebSocket"), for tests and the bench: a Conn is a net.Conn whose every Write
// goes out as one masked binary message and whose Read returns the payloads of the binary messages
// received, so code written for the TCP transport (one Plato frame per Write, frames read from a
// stream) runs over WebSocket unchanged. Browsers and mini-programs use their own WebSocket.
package wsclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/gobwas/ws"
)

// Options tune Dial.
type Options struct {
	// Origin is sent as the handshake's Origin header, as a browser would; "" sends none.
	Origin string
	// Protocols are offered as Sec-WebSocket-Protocol.
	Protocols []string
	// NetDial dials the TCP connection; nil uses a net.Dialer.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Conn is one client WebSocket connection. Reads and writes may run concurrently (one reader).
type Conn struct {
	net.Conn
	r io.Reader
	// Protocol is the subprotocol the server selected ("" for none).
	Protocol string

	left int64 // payload bytes of the current binary message not read yet

	mu          sync.Mutex // guards writes and the close fields
	wbuf        []byte
	closeCode   ws.StatusCode
	closeReason string
	closed      bool
}

// Dial connects to url ("ws://host:port/plato") and completes the handshake. A refused handshake
// returns ws.StatusError with the HTTP status.
func Dial(ctx context.Context, url string, o Options) (*Conn, error) {
	d := ws.Dialer{Protocols: o.Protocols, NetDial: o.NetDial}
	if o.Origin != "" {
		d.Header = ws.HandshakeHeaderHTTP(http.Header{"Origin": {o.Origin}})
	}
	nc, br, hs, err := d.Dial(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("websocket handshake with %s: %w", url, err)
	}
	c := &Conn{Conn: nc, r: nc, Protocol: hs.Protocol}
	if br != nil {
		// The server's first frames may have arrived with its 101.
		c.r = io.MultiReader(br, nc)
	}
	return c, nil
}

// Write sends p as one masked binary message.
func (c *Conn) Write(p []byte) (int, error) {
	if err := c.WriteMessage(ws.OpBinary, true, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteMessage sends one masked frame of any opcode, for tests that must send what the gateway
// refuses (text, fragments).
func (c *Conn) WriteMessage(op ws.OpCode, fin bool, p []byte) error {
	h := ws.Header{Fin: fin, OpCode: op, Masked: true, Mask: ws.NewMask(), Length: int64(len(p))}
	c.mu.Lock()
	defer c.mu.Unlock()
	buf := c.wbuf[:0]
	w := appendWriter{&buf}
	if err := ws.WriteHeader(w, h); err != nil {
		return err
	}
	n := len(buf)
	buf = append(buf, p...)
	ws.Cipher(buf[n:], h.Mask, 0)
	c.wbuf = buf[:0]
	_, err := c.Conn.Write(buf)
	return err
}

type appendWriter struct{ b *[]byte }

func (w appendWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}

// Read reads the payload bytes of the binary messages received, in order. A ping is answered; a
// close frame ends the stream with io.EOF, and CloseStatus tells its code and reason.
func (c *Conn) Read(p []byte) (int, error) {
	for c.left == 0 {
		h, err := ws.ReadHeader(c.r)
		if err != nil {
			return 0, err
		}
		if h.Masked {
			return 0, errors.New("websocket: the server sent a masked frame")
		}
		switch h.OpCode {
		case ws.OpBinary, ws.OpContinuation:
			c.left = h.Length
		case ws.OpPing, ws.OpPong, ws.OpClose:
			payload := make([]byte, h.Length)
			if _, err := io.ReadFull(c.r, payload); err != nil {
				return 0, err
			}
			switch h.OpCode {
			case ws.OpPing:
				if err := c.WriteMessage(ws.OpPong, true, payload); err != nil {
					return 0, err
				}
			case ws.OpClose:
				code, reason := ws.ParseCloseFrameData(payload)
				c.mu.Lock()
				c.closed, c.closeCode, c.closeReason = true, code, reason
				c.mu.Unlock()
				return 0, io.EOF
			}
		default:
			return 0, fmt.Errorf("websocket: unexpected opcode %d from the server", h.OpCode)
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err == io.EOF && c.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// CloseStatus is the close frame the server sent, if any.
func (c *Conn) CloseStatus() (code ws.StatusCode, reason string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode, c.closeReason, c.closed
}

// SendClose sends a close frame (the connection stays open for the server's answer).
func (c *Conn) SendClose(code ws.StatusCode, reason string) error {
	return c.WriteMessage(ws.OpClose, true, ws.NewCloseFrameBody(code, reason))
}

// ReadFrame reads the next frame as it is, control frames included, for tests that look at them
// (a pong); it must not be mixed with Read in the middle of a message.
func (c *Conn) ReadFrame() (ws.Header, []byte, error) {
	h, err := ws.ReadHeader(c.r)
	if err != nil {
		return h, nil, err
	}
	p := make([]byte, h.Length)
	_, err = io.ReadFull(c.r, p)
	return h, p, err
}
