package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/cloudwego/netpoll"
	"github.com/gobwas/ws"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/business/pollnet"
	"github.com/platoim/plato/sdk/protocol"
)

// The WebSocket transport (docs/protocol.md, "WebSocket"): the same protocol, one Plato frame per
// binary WebSocket message, for clients that cannot open a raw TCP socket (browsers,
// mini-programs). The handshake and the WebSocket framing are done on the connection's own netpoll
// buffers, in the read callback, like the TCP framing: no goroutine per connection. Once a binary
// message is unwrapped, its Plato frame takes the TCP path (onFrame), so login, limits, overload
// refusals and the slow-consumer cut-off are the same code.

const (
	// WSPath is the one path the WebSocket listener upgrades.
	WSPath = "/plato"
	// WSSubprotocol is selected when a client offers it (Sec-WebSocket-Protocol); none is required.
	WSSubprotocol = "plato"
	// wsMaxHandshake bounds a handshake request, headers included: browsers send cookies, but a
	// request this large is refused (431) rather than buffered.
	wsMaxHandshake = 8 << 10
	// wsMaxOrigin bounds the Origin header kept per connection until its Login.
	wsMaxOrigin = 256
	// wsRawSignal marks a queued DownFrame whose Body is written as is: an HTTP answer to the
	// handshake, or a compiled WebSocket control frame. No Plato signal is negative.
	wsRawSignal int8 = -1
)

// WebSocket close codes the gateway sends (RFC 6455 §7.4.1).
const (
	// wsCloseNormal follows a Plato Close (or a refused LoginAck/ResumeAck): the Plato frame says
	// why, and the close reason repeats its code in decimal.
	wsCloseNormal        = ws.StatusNormalClosure   // 1000
	wsCloseProtocolError = ws.StatusProtocolError   // 1002: unmasked, reserved bits or opcodes, bad control frames
	wsCloseUnsupported   = ws.StatusUnsupportedData // 1003: text or fragmented messages
	wsCloseTooBig        = ws.StatusMessageTooBig   // 1009: above gateway.max_body + the Plato header
)

// Handshake results counted by plato_gateway_ws_handshakes_total.
const (
	wsHandshakeOK = iota
	wsHandshakeRefused
	numWSHandshakeResults
)

var wsHandshakeResults = [numWSHandshakeResults]string{"ok", "refused"}

// wsConn is what a WebSocket connection holds beyond a TCP one: small and explicit, so that it can
// be handed over with the socket (a process upgrade). A partly received WebSocket frame is held in
// netpoll's input buffer, as a partly received Plato frame is on TCP. Both fields are guarded by
// conn.mu.
type wsConn struct {
	// Upgraded is set once the handshake was answered 101: from then on input is WebSocket frames.
	Upgraded bool
	// Origin is the handshake's Origin header ("" when it had none), checked at Login and Resume
	// against the app's allowed origins: the app is known only then.
	Origin string
}

// startWS opens the WebSocket listener when gateway.ws_addr is set.
func (gw *Gateway) startWS() error {
	if gw.cfg.WSAddr == "" {
		return nil
	}
	ln, err := pollnet.Listen("tcp", gw.cfg.WSAddr)
	if err != nil {
		return fmt.Errorf("gateway: listening for WebSocket devices on %s: %w", gw.cfg.WSAddr, err)
	}
	return gw.serveWS(ln)
}

// serveWS serves WebSocket devices on ln, opened here or passed by the previous process.
func (gw *Gateway) serveWS(ln netpoll.Listener) error {
	loop, err := netpoll.NewEventLoop(gw.onWSRequest,
		netpoll.WithOnConnect(gw.onWSConnect),
		netpoll.WithReadTimeout(gw.cfg.ReadTimeout),
		netpoll.WithWriteTimeout(gw.cfg.WriteTimeout),
	)
	if err != nil {
		ln.Close()
		return fmt.Errorf("gateway: creating the WebSocket event loop: %w", err)
	}
	gw.wsLn, gw.wsLoop = ln, loop
	gw.done.Add(1)
	go func() {
		defer gw.done.Done()
		if err := gw.wsLoop.Serve(gw.wsLn); err != nil && !errors.Is(err, net.ErrClosed) {
			gw.log.Error("WebSocket listener stopped", "err", err)
		}
	}()
	return nil
}

// stopWS closes the WebSocket listener (its connections were closed with the others).
func (gw *Gateway) stopWS(ctx context.Context) {
	if gw.wsLoop != nil {
		_ = gw.wsLoop.Shutdown(ctx)
	}
	if gw.wsLn != nil {
		gw.wsLn.Close() // once more after the loop's: pollnet frees the number only then
	}
}

// WSAddr is the WebSocket listen address; "" without one.
func (gw *Gateway) WSAddr() string {
	if gw.wsLn == nil {
		return ""
	}
	return gw.wsLn.Addr().String()
}

// WSEndpoint is the WebSocket URL ipconf hands to devices; "" without a WebSocket listener.
func (gw *Gateway) WSEndpoint() string {
	if gw.wsLn == nil {
		return ""
	}
	hp := gw.cfg.WSAdvertise
	switch {
	case strings.HasPrefix(hp, "ws://") || strings.HasPrefix(hp, "wss://"):
		return hp // a TLS proxy's URL, as it is
	case hp == "":
		hp = gw.WSAddr()
	}
	return "ws://" + hp + WSPath
}

// onWSConnect registers a WebSocket socket like a TCP one: its login timer bounds the handshake
// and the Login together (gateway.login_timeout), so a handshake sent a byte at a time is cut off.
func (gw *Gateway) onWSConnect(ctx context.Context, nc netpoll.Connection) context.Context {
	return gw.accept(ctx, nc, &wsConn{})
}

// onWSRequest reads the handshake, then every complete WebSocket frame (readWS), behind what is
// carried of one not complete (readCarried).
func (gw *Gateway) onWSRequest(ctx context.Context, nc netpoll.Connection) error {
	c, _ := ctx.Value(connCtxKey{}).(*conn)
	if c == nil || c.ws == nil {
		return nc.Close()
	}
	return gw.readCarried(c, nc)
}

// errHandingOff ends a read interrupted to pass the connection to a new process: its unconsumed
// bytes go with it (handover.go).
var errHandingOff = errors.New("the connection is being passed to a new process")

// errCarried ends a read that moved the start of a handshake or frame into the carry (carryWS):
// input that arrived meanwhile continues it, so it must go behind the carry (readCarried, on the
// next call, which netpoll makes while input is left) and not be read as a frame of its own.
var errCarried = errors.New("the rest of the input is carried")

// readWS reads c's handshake, then every complete WebSocket frame. Like readFrames it consumes
// all input or closes, and it consumes a handshake or a frame only once it is complete: the start
// of one that is not is carried (carryWS), and the read ends there, since what netpoll adds to
// the input meanwhile continues it.
func (gw *Gateway) readWS(c *conn, nc netpoll.Connection) error {
	r := nc.Reader()
	defer r.Release()
	defer gw.guard(c, "read")
	defer c.releaseFlushes()
	for r.Len() > 0 {
		c.mu.Lock()
		closing := c.state == stateClosing || c.closed
		upgraded := c.ws.Upgraded
		if upgraded {
			c.holdLocked()
		}
		c.mu.Unlock()
		if closing {
			return r.Skip(r.Len())
		}
		var err error
		if upgraded {
			err = gw.wsReadFrame(c, r)
		} else {
			err = gw.wsHandshake(c, r)
		}
		if errors.Is(err, errHandingOff) || errors.Is(err, errCarried) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// carryWS is carryRest for readWS: errCarried ends its loop.
func (gw *Gateway) carryWS(c *conn, r netpoll.Reader) error {
	if err := gw.carryRest(c, r); err != nil {
		return err
	}
	return errCarried
}

// wsReadFailed is readFailed for the WebSocket reads: errHandingOff when the read was interrupted
// to pass the connection.
func (gw *Gateway) wsReadFailed(c *conn, err error) error {
	if gw.readFailed(c, err) == nil {
		return errHandingOff
	}
	return err
}

// wsHandshake reads one HTTP upgrade request and answers it: 101, or a 4xx and a close.
func (gw *Gateway) wsHandshake(c *conn, r netpoll.Reader) error {
	for {
		n := min(r.Len(), wsMaxHandshake)
		b, err := r.Peek(n)
		if err != nil {
			return gw.wsReadFailed(c, err)
		}
		req, status, reason := wsRequestIn(b)
		if status != 0 {
			gw.wsRefuse(c, r, status, reason)
			return nil
		}
		if req != nil {
			if !gw.wsAnswer(c, req) {
				return r.Skip(r.Len())
			}
			return r.Skip(len(req))
		}
		// The rest comes later (carry.go), within gateway.login_timeout: the login timer answers
		// 408 and closes otherwise.
		return gw.carryWS(c, r)
	}
}

// wsRequestIn finds a complete handshake request (up to its blank line) at the start of b, the
// bytes received so far, at most wsMaxHandshake of them. It returns nil while more is needed, and
// an HTTP status with a reason when the bytes cannot become a handshake.
func wsRequestIn(b []byte) (req []byte, status int, reason string) {
	if len(b) >= 4 && !bytes.HasPrefix(b, []byte("GET ")) {
		// Not worth waiting for the rest: no WebSocket handshake starts otherwise (a TCP device
		// dialled the wrong port, or garbage).
		return nil, http.StatusBadRequest, "not a WebSocket handshake: want GET " + WSPath
	}
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return b[:i+4], 0, ""
	}
	if len(b) >= wsMaxHandshake {
		return nil, http.StatusRequestHeaderFieldsTooLarge, "handshake larger than " + strconv.Itoa(wsMaxHandshake) + " bytes"
	}
	return nil, 0, ""
}

// wsAnswer answers a complete handshake request: false when the connection closes instead (a
// refused handshake, or a close decided meanwhile), and the rest of its input is to be dropped.
func (gw *Gateway) wsAnswer(c *conn, req []byte) bool {
	hs, out, err := wsUpgrade(req)
	if err != nil {
		gw.metrics.wsHandshakes[wsHandshakeRefused].Add(1)
		gw.log.Debug("refusing a WebSocket handshake", "conn", c.id, "err", err)
		c.sendRawAndClose(out, protocol.CodeMalformed)
		return false
	}
	gw.metrics.wsHandshakes[wsHandshakeOK].Add(1)
	// Upgraded and the 101 go together under c.mu: a close decided meanwhile (the login timer)
	// comes after the 101 as a Plato Close, or before it as an HTTP error, never in between.
	c.mu.Lock()
	if c.closed || c.state == stateClosing {
		c.mu.Unlock()
		return false
	}
	c.ws.Upgraded, c.ws.Origin = true, hs.origin
	start, full := c.appendLocked(outFrame{down: &fleet.DownFrame{ConnId: int64(c.id), Signal: wsRawSignal, Body: out}}, false)
	c.mu.Unlock()
	c.started(start, full)
	return true
}

// wsRefuse answers a handshake with an HTTP error and closes; r, when not nil, drops the rest of
// the input.
func (gw *Gateway) wsRefuse(c *conn, r netpoll.Reader, status int, reason string) {
	gw.metrics.wsHandshakes[wsHandshakeRefused].Add(1)
	c.sendRawAndClose(httpError(status, reason), protocol.CodeMalformed)
	skipAll(r)
}

// skipAll drops the rest of r's input; r is nil when the input is bytes carried over an upgrade
// (handover_ws.go), which the caller drops.
func skipAll(r netpoll.Reader) {
	if r != nil {
		_ = r.Skip(r.Len())
	}
}

// wsHandshakeResult is what a successful handshake tells about the client.
type wsHandshakeResult struct {
	origin   string
	protocol string
}

// wsUpgrade parses one complete HTTP request (up to its blank line) with gobwas/ws's Upgrader and
// returns the response to send: 101 when err is nil, an HTTP error otherwise. It does no I/O.
func wsUpgrade(req []byte) (wsHandshakeResult, []byte, error) {
	var res wsHandshakeResult
	var out bytes.Buffer
	u := ws.Upgrader{
		OnRequest: func(uri []byte) error {
			path, _, _ := bytes.Cut(uri, []byte("?"))
			if string(path) != WSPath {
				return ws.RejectConnectionError(ws.RejectionStatus(http.StatusNotFound),
					ws.RejectionReason("no WebSocket endpoint at "+strconv.Quote(string(path))+": it is "+WSPath))
			}
			return nil
		},
		OnHeader: func(k, v []byte) error {
			if !bytes.EqualFold(k, []byte("Origin")) {
				return nil
			}
			if len(v) > wsMaxOrigin {
				return ws.RejectConnectionError(ws.RejectionStatus(http.StatusBadRequest),
					ws.RejectionReason("Origin longer than "+strconv.Itoa(wsMaxOrigin)+" bytes"))
			}
			res.origin = string(v)
			return nil
		},
		// A client may offer the "plato" subprotocol; one that offers only others gets none.
		ProtocolCustom: func(offered []byte) (string, bool) {
			for p := range bytes.SplitSeq(offered, []byte(",")) {
				if string(bytes.TrimSpace(p)) == WSSubprotocol {
					return WSSubprotocol, true
				}
			}
			return "", true
		},
	}
	hs, err := u.Upgrade(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(req), &out})
	if err != nil {
		var rej *ws.ConnectionRejectedError
		if !errors.As(err, &rej) || out.Len() == 0 {
			// The request could not even be read as HTTP (a bad request line, a header line
			// too long): gobwas wrote nothing, or a 500 for it; it is the client's fault.
			return res, httpError(http.StatusBadRequest, "malformed handshake: "+err.Error()), err
		}
		return res, out.Bytes(), err
	}
	res.protocol = hs.Protocol
	return res, out.Bytes(), nil
}

// httpError is a complete HTTP error response that closes the connection.
func httpError(status int, reason string) []byte {
	body := reason + "\n"
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
}

// wsReadFrame reads one WebSocket frame, once it is complete, and acts on it; the start of one not
// complete is carried (carry.go).
func (gw *Gateway) wsReadFrame(c *conn, r netpoll.Reader) error {
	if r.Len() < 2 {
		return gw.carryWS(c, r)
	}
	b, err := r.Peek(2)
	if err != nil {
		return gw.wsReadFailed(c, err)
	}
	if r.Len() < wsHeaderLen(b) {
		return gw.carryWS(c, r)
	}
	hb, err := r.Peek(wsHeaderLen(b))
	if err != nil {
		return gw.wsReadFailed(c, err)
	}
	h, hl, err := parseWSHeader(hb)
	if err != nil {
		gw.wsFail(c, r, wsCloseProtocolError, err.Error())
		return nil
	}
	if status, reason := gw.wsCheck(h); status != 0 {
		gw.wsFail(c, r, status, reason)
		return nil
	}
	if r.Len() < hl+int(h.Length) {
		return gw.carryWS(c, r)
	}
	if err := r.Skip(hl); err != nil {
		return err
	}
	payload, err := r.ReadBinary(int(h.Length))
	if err != nil {
		c.abort(protocol.CodeConnectionLost)
		return err
	}
	gw.wsMessage(c, r, h, hl, payload)
	return nil
}

// wsCheck says why the gateway refuses a frame with header h: a close status and a reason, or 0.
func (gw *Gateway) wsCheck(h ws.Header) (ws.StatusCode, string) {
	maxMsg := int64(gw.cfg.MaxBody + protocol.HeaderLen)
	switch {
	case h.Rsv != 0:
		return wsCloseProtocolError, "reserved bits set: no extension was negotiated"
	case !h.Masked:
		return wsCloseProtocolError, "client frames must be masked"
	case h.OpCode.IsReserved():
		return wsCloseProtocolError, "reserved opcode " + strconv.Itoa(int(h.OpCode))
	case h.OpCode.IsControl() && (!h.Fin || h.Length > 125):
		return wsCloseProtocolError, "control frames must be whole and at most 125 bytes"
	case h.OpCode == ws.OpText:
		return wsCloseUnsupported, "text messages are not accepted: send each Plato frame as one binary message"
	case h.OpCode == ws.OpContinuation || !h.Fin:
		return wsCloseUnsupported, "fragmented messages are not accepted: send each Plato frame as one binary message"
	case h.Length > maxMsg:
		return wsCloseTooBig, "message of " + strconv.FormatInt(h.Length, 10) + " bytes: at most " + strconv.FormatInt(maxMsg, 10)
	}
	return 0, ""
}

// wsMessage acts on one whole frame, its header h (hl bytes) checked by wsCheck and its payload
// still masked. r, when not nil, drops the rest of the input should the connection close.
func (gw *Gateway) wsMessage(c *conn, r netpoll.Reader, h ws.Header, hl int, payload []byte) {
	ws.Cipher(payload, h.Mask, 0)
	switch h.OpCode {
	case ws.OpPing:
		c.enqueue(&fleet.DownFrame{ConnId: int64(c.id), Signal: wsRawSignal, Body: ws.MustCompileFrame(ws.NewPongFrame(payload))})
		return
	case ws.OpPong:
		return
	case ws.OpClose:
		gw.wsClosedByClient(c, r, payload)
		return
	}
	gw.metrics.bytesIn.Add(int64(hl + len(payload)))
	if len(payload) < protocol.HeaderLen {
		gw.protocolError(c, r, &protocol.Error{Code: protocol.CodeMalformed,
			Msg: "a binary message of " + strconv.Itoa(len(payload)) + " bytes is shorter than a Plato header"})
		return
	}
	ph, err := protocol.ParseHeader(payload[:protocol.HeaderLen], gw.cfg.MaxBody)
	if err != nil {
		gw.protocolError(c, r, err)
		return
	}
	if int(ph.Length) != len(payload)-protocol.HeaderLen {
		gw.protocolError(c, r, &protocol.Error{Code: protocol.CodeMalformed,
			Msg: "each binary message must hold exactly one Plato frame: the header says " + strconv.Itoa(int(ph.Length)) +
				" body bytes, the message has " + strconv.Itoa(len(payload)-protocol.HeaderLen)})
		return
	}
	gw.metrics.framesIn.Add(uint8(ph.Signal))
	gw.onFrame(c, ph, payload[protocol.HeaderLen:])
}

// wsClosedByClient answers a client's close frame with one echoing its code, and closes: the
// WebSocket counterpart of a Plato Close 1209.
func (gw *Gateway) wsClosedByClient(c *conn, r netpoll.Reader, payload []byte) {
	code := wsCloseNormal
	if len(payload) == 1 {
		gw.wsFail(c, r, wsCloseProtocolError, "a close frame's body is a 2-byte code and a reason")
		return
	}
	if len(payload) >= 2 {
		code, _ = ws.ParseCloseFrameDataUnsafe(payload)
		if err := ws.CheckCloseFrameData(code, ""); err != nil {
			gw.wsFail(c, r, wsCloseProtocolError, "close code "+strconv.Itoa(int(code))+" may not be sent")
			return
		}
	}
	c.sendRawAndClose(ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, ""))), protocol.CodeClientClose)
	skipAll(r)
}

// wsFail closes a connection that broke the WebSocket rules with a close frame saying why.
func (gw *Gateway) wsFail(c *conn, r netpoll.Reader, status ws.StatusCode, reason string) {
	code := protocol.CodeMalformed
	if status == wsCloseTooBig {
		code = protocol.CodeFrameTooLarge
	}
	gw.metrics.protocolErrors.Add(int(code))
	gw.log.Debug("closing a WebSocket connection", "conn", c.id, "ws_status", int(status), "reason", reason)
	c.sendRawAndClose(wsCloseFrame(status, reason), code)
	skipAll(r)
}

// wsCloseFrame is a compiled close frame; the reason is cut to fit a control frame.
func wsCloseFrame(status ws.StatusCode, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	return ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(status, reason)))
}

// sendRawAndClose queues raw bytes as the connection's last words and closes it after them, with
// code as its close reason.
func (c *conn) sendRawAndClose(b []byte, code protocol.Code) {
	c.mu.Lock()
	if c.closed || c.state == stateClosing {
		c.mu.Unlock()
		return
	}
	c.state = stateClosing
	c.reason = code
	start, _ := c.appendLocked(outFrame{down: &fleet.DownFrame{ConnId: int64(c.id), Action: fleet.DownAction_SEND_AND_CLOSE, Signal: wsRawSignal, Body: b}}, true)
	c.mu.Unlock()
	if start {
		c.startFlush()
	}
}

// wsPreUpgradeClose is what closeWith sends instead of a Plato Close to a WebSocket connection
// whose handshake was not answered yet: an HTTP error. nil for every other connection. c.mu is
// held.
func (c *conn) wsPreUpgradeCloseLocked(code protocol.Code, msg string) *fleet.DownFrame {
	if c.ws == nil || c.ws.Upgraded {
		return nil
	}
	status := http.StatusBadRequest
	switch code {
	case protocol.CodeLoginTimeout:
		status, msg = http.StatusRequestTimeout, "no complete handshake within the login timeout"
	case protocol.CodeShuttingDown, protocol.CodeOverloaded:
		status = http.StatusServiceUnavailable
	case protocol.CodeInternal:
		status = http.StatusInternalServerError
	}
	return &fleet.DownFrame{ConnId: int64(c.id), Action: fleet.DownAction_SEND_AND_CLOSE, Signal: wsRawSignal, Body: httpError(status, msg)}
}

// wsOrigin is the handshake's Origin of a WebSocket connection; "" for TCP.
func (c *conn) wsOrigin() string {
	if c.ws == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ws.Origin
}

// wsWrite writes one queued frame to a WebSocket connection: a Plato frame as one binary message
// (followed by a close frame when it is the connection's last), or raw bytes as they are. It
// returns the bytes written and whether the connection closes after them.
func wsWrite(w netpoll.Writer, o outFrame) (n int, closeAfter bool, err error) {
	if o.broadcast != nil {
		hdr, err := w.Malloc(wsServerHeaderLen(len(o.broadcast)))
		if err != nil {
			return 0, false, err
		}
		putWSServerHeader(hdr, ws.OpBinary, len(o.broadcast))
		if _, err := w.WriteBinary(o.broadcast); err != nil {
			return 0, false, err
		}
		return len(hdr) + len(o.broadcast), false, nil
	}
	f := o.down
	closeAfter = f.Action == fleet.DownAction_SEND_AND_CLOSE
	if f.Signal == wsRawSignal {
		buf, err := w.Malloc(len(f.Body))
		if err != nil {
			return 0, false, err
		}
		copy(buf, f.Body)
		return len(buf), closeAfter, nil
	}
	size := protocol.HeaderLen + len(f.Body)
	hl := wsServerHeaderLen(size)
	var closing []byte
	if closeAfter {
		// The Plato frame says why; the close frame repeats its code for clients that only see
		// the WebSocket's close event.
		closing = wsCloseFrame(wsCloseNormal, strconv.Itoa(int(closeCode(f))))
	}
	buf, err := w.Malloc(hl + size + len(closing))
	if err != nil {
		return 0, false, err
	}
	putWSServerHeader(buf, ws.OpBinary, size)
	protocol.PutHeader(buf[hl:], protocol.Header{
		Signal: protocol.Signal(f.Signal), Flags: uint16(f.Flags), Seq: uint64(f.Seq), Length: uint32(len(f.Body)),
	})
	copy(buf[hl+protocol.HeaderLen:], f.Body)
	copy(buf[hl+size:], closing)
	return len(buf), closeAfter, nil
}
