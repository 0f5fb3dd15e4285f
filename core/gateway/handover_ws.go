package gateway

import (
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/platoim/plato/sdk/business/pollnet"
)

// An upgrade (handover.go) carries the WebSocket transport too. The old process passes its
// WebSocket listener after the device and RPC ones, and the new process serves it with the
// WebSocket event loop: the same address, the same WSEndpoint. A WebSocket connection is a TCP
// socket plus its wsConn (Upgraded, Origin), which the handover wire format carries: the new
// process adopts it as a WebSocket connection, whose reads go through the WebSocket framing and
// whose writes through wsWrite. readWS, like readFrames, consumes a handshake or a frame only once
// it is complete, so the bytes passed with a connection start a handshake (one not upgraded yet)
// or a WebSocket frame, never the middle of one; the new process finishes them (drainWSCarry).

// wsListenerFD is the WebSocket listener's descriptor, to pass; -1 without one.
func (gw *Gateway) wsListenerFD() int {
	if gw.wsLn == nil {
		return -1
	}
	if fl, ok := gw.wsLn.(interface{ Fd() int }); ok {
		return fl.Fd()
	}
	return -1
}

// stopAcceptingWS stops accepting WebSocket devices here once the new process holds the
// listener; the WebSocket connections stay, to be passed.
func (gw *Gateway) stopAcceptingWS() {
	if gw.wsLoop == nil {
		return
	}
	if err := stopAccepting(gw.wsLoop); err != nil {
		// Both accept meanwhile; the connections accepted here are passed like the others.
		gw.log.Error("upgrade: could not stop accepting WebSocket devices here", "err", err)
		return
	}
	_ = gw.wsLn.Close()
}

// inheritWS serves the WebSocket listener the old process passed (fd, or -1 when it had none).
// The listener is taken as it is, as the device listener is: a gateway.ws_addr changed in the
// configuration applies at the next restart. Without one passed, the listener is opened when
// gateway.ws_addr asks for it. A failure leaves the gateway without WebSocket, not without its
// TCP devices, which it holds already.
func (gw *Gateway) inheritWS(fd int) {
	if fd < 0 {
		if err := gw.startWS(); err != nil {
			gw.log.Error("upgrade: no WebSocket listener", "err", err)
		}
		return
	}
	if err := gw.adoptWSListener(fd); err != nil {
		gw.log.Error("upgrade: no WebSocket listener", "err", err)
	}
}

func (gw *Gateway) adoptWSListener(fd int) error {
	f := os.NewFile(uintptr(fd), "websocket-listener")
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("gateway: adopting the WebSocket listener: %w", err)
	}
	nl, err := pollnet.Convert(l)
	if err != nil {
		l.Close()
		return fmt.Errorf("gateway: adopting the WebSocket listener: %w", err)
	}
	return gw.serveWS(nl)
}

// closeFDs closes descriptors received and not adopted; -1 stands for none.
func closeFDs(fds []int) {
	for _, fd := range fds {
		if fd >= 0 {
			_ = syscall.Close(fd)
		}
	}
}

// drainInput acts on what c's carried bytes complete: Plato frames on TCP, the handshake and
// WebSocket frames on WebSocket.
func (gw *Gateway) drainInput(c *conn) {
	if c.ws != nil {
		gw.drainWSCarry(c)
		return
	}
	gw.drainCarry(c)
}

// drainWSCarry is drainCarry for a WebSocket connection: it answers a complete handshake at the
// start of c's carried bytes, then acts on every complete WebSocket frame, and keeps the rest.
func (gw *Gateway) drainWSCarry(c *conn) {
	for {
		h, carry := c.lockCarry()
		if h == nil {
			return
		}
		upgraded := c.ws.Upgraded
		c.mu.Unlock()
		// consume cuts n bytes off the carry; drop forgets it, as a read skips the rest of the
		// input once the connection closes.
		consume := func(n int) {
			c.mu.Lock()
			if h.carry = carry[n:]; len(h.carry) == 0 {
				h.carry = nil
			}
			c.carryConsumedLocked(h)
			c.mu.Unlock()
		}
		drop := func() { consume(len(carry)) }
		if !upgraded {
			req, status, reason := wsRequestIn(carry[:min(len(carry), wsMaxHandshake)])
			switch {
			case status != 0:
				drop()
				gw.wsRefuse(c, nil, status, reason)
				return
			case req == nil:
				return
			}
			consume(len(req))
			if !gw.wsAnswer(c, req) {
				drop()
				return
			}
			continue
		}
		if len(carry) < 2 || len(carry) < wsHeaderLen(carry) {
			return
		}
		hd, hl, err := parseWSHeader(carry)
		if err != nil {
			drop()
			gw.wsFail(c, nil, wsCloseProtocolError, err.Error())
			return
		}
		if status, reason := gw.wsCheck(hd); status != 0 {
			drop()
			gw.wsFail(c, nil, status, reason)
			return
		}
		n := hl + int(hd.Length)
		if len(carry) < n {
			return
		}
		payload := append([]byte(nil), carry[hl:n]...)
		consume(n)
		gw.wsMessage(c, nil, hd, hl, payload)
	}
}
