package gateway

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
)

const carriedHandshake = "GET /plato HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://chat.example\r\n\r\n"

// carriedConn is a WebSocket connection adopted with carry as the bytes the old process had read;
// its flusher is marked running, so what it answers stays queued for the test to see.
func carriedConn(gw *Gateway, w *wsConn, carry string) *conn {
	c := &conn{id: 1, gw: gw, fd: -1, state: stateNew, flushing: true, ws: w}
	c.cold = &connCold{handoff: &connHandoff{carry: []byte(carry)}}
	return c
}

func addCarry(c *conn, b []byte) {
	c.mu.Lock()
	c.cold.handoff.carry = append(c.cold.handoff.carry, b...)
	c.mu.Unlock()
}

func rawQueued(t *testing.T, c *conn) [][]byte {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]byte
	for _, o := range c.queue {
		if o.down == nil || o.down.Signal != wsRawSignal {
			t.Fatalf("queued %+v, want raw WebSocket bytes", o)
		}
		out = append(out, o.down.Body)
	}
	return out
}

// A handshake and a WebSocket frame the old process had half read are finished by the new one:
// the handshake is answered 101 once its blank line arrives, the frame acted on once whole, and
// what follows waits for the rest.
func TestDrainWSCarryFinishesWhatWasHalfRead(t *testing.T) {
	gw := newIdleGateway(t)
	c := carriedConn(gw, &wsConn{}, carriedHandshake[:30])
	gw.drainWSCarry(c)
	if c.ws.Upgraded || len(rawQueued(t, c)) != 0 || string(c.cold.handoff.carry) != carriedHandshake[:30] {
		t.Fatalf("half a handshake: upgraded %v, queued %d, carry %q", c.ws.Upgraded, len(rawQueued(t, c)), c.cold.handoff.carry)
	}
	ping := ws.MustCompileFrame(ws.MaskFrame(ws.NewPingFrame([]byte("hi"))))
	next := ws.MustCompileFrame(ws.MaskFrame(ws.NewBinaryFrame(bytes.Repeat([]byte("p"), 300))))
	rest := append([]byte(carriedHandshake[30:]), ping[:3]...)
	addCarry(c, rest)
	gw.drainWSCarry(c)
	q := rawQueued(t, c)
	if !c.ws.Upgraded || c.ws.Origin != "https://chat.example" || len(q) != 1 || !bytes.HasPrefix(q[0], []byte("HTTP/1.1 101 ")) {
		t.Fatalf("whole handshake: upgraded %v origin %q, queued %q", c.ws.Upgraded, c.ws.Origin, q)
	}
	if string(c.cold.handoff.carry) != string(ping[:3]) {
		t.Fatalf("carry %x, want the ping's first 3 bytes", c.cold.handoff.carry)
	}
	addCarry(c, append(ping[3:], next[:5]...))
	gw.drainWSCarry(c)
	q = rawQueued(t, c)
	pong := ws.MustCompileFrame(ws.NewPongFrame([]byte("hi")))
	if len(q) != 2 || !bytes.Equal(q[1], pong) {
		t.Fatalf("after the ping: queued %q, want the 101 and %x", q, pong)
	}
	if !bytes.Equal(c.cold.handoff.carry, next[:5]) {
		t.Fatalf("carry %x, want the next frame's first 5 bytes", c.cold.handoff.carry)
	}
}

// Carried bytes that break the rules close the connection as a read would, and are dropped.
func TestDrainWSCarryRefusesBadInput(t *testing.T) {
	gw := newIdleGateway(t)
	for _, tc := range []struct {
		name  string
		ws    wsConn
		carry string
		want  string
	}{
		{"not a handshake", wsConn{}, "POST /plato HTTP/1.1\r\n", "HTTP/1.1 400 "},
		{"handshake too large", wsConn{}, "GET /plato HTTP/1.1\r\nX: " + strings.Repeat("x", wsMaxHandshake), "HTTP/1.1 431 "},
		{"unmasked frame", wsConn{Upgraded: true}, string(ws.MustCompileFrame(ws.NewBinaryFrame([]byte("abc")))), "\x88"},
		{"text frame", wsConn{Upgraded: true}, string(ws.MustCompileFrame(ws.MaskFrame(ws.NewTextFrame([]byte("abc"))))), "\x88"},
	} {
		w := tc.ws
		c := carriedConn(gw, &w, tc.carry)
		gw.drainWSCarry(c)
		q := rawQueued(t, c)
		c.mu.Lock()
		st, action := c.state, fleet.DownAction(0)
		var carry []byte // what was carried goes, and with it the handoff (carry.go)
		if h := c.handoffLocked(); h != nil {
			carry = h.carry
		}
		if len(c.queue) == 1 {
			action = c.queue[0].down.Action
		}
		c.mu.Unlock()
		if len(q) != 1 || !strings.HasPrefix(string(q[0]), tc.want) || action != fleet.DownAction_SEND_AND_CLOSE || st != stateClosing || carry != nil {
			t.Errorf("%s: queued %q (action %v), state %d, carry %d bytes; want %q then a close", tc.name, q, action, st, len(carry), tc.want)
		}
	}
}
