package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/cloudwego/netpoll"

	"github.com/platoim/plato/sdk/business/pollnet"
	"github.com/platoim/plato/sdk/protocol"
)

// echoServer is the baseline: the machine's raw limit for the bench's own client. It speaks enough
// of the wire protocol that the client code path is identical (Login gets a LoginAck, Uplink an
// UplinkAck, Heartbeat a HeartbeatAck, each of the same shape Plato sends) on the same netpoll
// reactor the gateway uses, but keeps no state beyond did -> socket and runs no pipeline, batching
// or RPC. Downlinks for the baseline arrive as an Uplink from a "push" login (echoPushApp) whose
// body lists dids, and are written straight to those dids' sockets.
type echoServer struct {
	ln     netpoll.Listener
	loop   netpoll.EventLoop
	mu     sync.Mutex
	byDID  map[string]*echoConn
	connID atomic.Uint64
	msgID  atomic.Uint64
	done   chan struct{}
}

// echoPushApp is the app ID of the baseline's push connection.
const echoPushApp = "plato-bench-push"

// echoHeartbeatMs is what the echo server tells devices, the gateway's default.
const echoHeartbeatMs = 30_000

type echoConn struct {
	nc     netpoll.Connection
	mu     sync.Mutex // netpoll's writer is not safe for concurrent use; pushes write from elsewhere
	did    string
	pusher bool
	dlSeq  uint64 // under mu
}

type echoCtxKey struct{}

// startEcho listens on addr (host:0 picks a port) and serves until shutdown.
func startEcho(addr string) (*echoServer, error) {
	ln, err := pollnet.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("echo: listening on %s: %w", addr, err)
	}
	s := &echoServer{ln: ln, byDID: map[string]*echoConn{}, done: make(chan struct{})}
	s.loop, err = netpoll.NewEventLoop(s.onRequest, netpoll.WithOnConnect(s.onConnect))
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("echo: creating event loop: %w", err)
	}
	go func() {
		defer close(s.done)
		if err := s.loop.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			slog.Default().Warn("echo server stopped", "err", err)
		}
	}()
	return s, nil
}

func (s *echoServer) addr() string { return s.ln.Addr().String() }

func (s *echoServer) shutdown(ctx context.Context) {
	_ = s.loop.Shutdown(ctx)
	s.ln.Close()
	<-s.done
}

func (s *echoServer) onConnect(ctx context.Context, nc netpoll.Connection) context.Context {
	c := &echoConn{nc: nc}
	_ = nc.AddCloseCallback(func(netpoll.Connection) error {
		s.mu.Lock()
		if c.did != "" && s.byDID[c.did] == c {
			delete(s.byDID, c.did)
		}
		s.mu.Unlock()
		return nil
	})
	return context.WithValue(ctx, echoCtxKey{}, c)
}

// onRequest answers every complete frame, as the gateway's reader does.
func (s *echoServer) onRequest(ctx context.Context, nc netpoll.Connection) error {
	c, _ := ctx.Value(echoCtxKey{}).(*echoConn)
	r := nc.Reader()
	defer r.Release()
	if c == nil {
		return nc.Close()
	}
	for r.Len() > 0 {
		hb, err := r.Peek(protocol.HeaderLen)
		if err != nil {
			return nc.Close()
		}
		// A baseline push lists up to maxEchoPush dids: more than a device frame's usual maximum.
		h, err := protocol.ParseHeader(hb, protocol.HardMaxBody)
		if err != nil {
			return nc.Close()
		}
		if err := r.Skip(protocol.HeaderLen); err != nil {
			return nc.Close()
		}
		body, err := r.ReadBinary(int(h.Length))
		if err != nil {
			return nc.Close()
		}
		s.handle(c, h, body)
	}
	return nil
}

func (s *echoServer) handle(c *echoConn, h protocol.Header, body []byte) {
	switch h.Signal {
	case protocol.SigLogin:
		var m protocol.Login
		if err := m.Decode(body); err != nil {
			_ = c.nc.Close()
			return
		}
		if m.AppID == echoPushApp {
			c.pusher = true
		} else {
			c.did = m.AppID + "\x00" + m.DID
			s.mu.Lock()
			s.byDID[c.did] = c
			s.mu.Unlock()
		}
		c.write(protocol.SigLoginAck, h.Seq, (&protocol.LoginAck{ConnID: s.connID.Add(1), HeartbeatMs: echoHeartbeatMs}).Append(nil))
	case protocol.SigHeartbeat:
		c.write(protocol.SigHeartbeatAck, h.Seq, nil)
	case protocol.SigUplink:
		if c.pusher {
			c.write(protocol.SigUplinkAck, h.Seq, (&protocol.Ack{Message: s.pushFrom(body)}).Append(nil))
			return
		}
		c.write(protocol.SigUplinkAck, h.Seq, (&protocol.Ack{}).Append(nil))
	case protocol.SigClose:
		_ = c.nc.Close()
	}
}

// pushFrom delivers a push request (see encodeEchoPush) and returns one '1' (sent) or '0'
// (offline) per did.
func (s *echoServer) pushFrom(body []byte) string {
	app, dids, payload, ok := decodeEchoPush(body)
	if !ok {
		return ""
	}
	out := make([]byte, len(dids))
	dl := (&protocol.Downlink{MsgID: s.msgID.Add(1), Payload: payload}).Append(nil)
	for i, did := range dids {
		s.mu.Lock()
		c := s.byDID[app+"\x00"+did]
		s.mu.Unlock()
		out[i] = '0'
		if c != nil {
			c.mu.Lock()
			c.dlSeq++
			seq := c.dlSeq
			c.mu.Unlock()
			if c.write(protocol.SigDownlink, seq, dl) {
				out[i] = '1'
			}
		}
	}
	return string(out)
}

// write sends one frame; it reports whether the connection took it.
func (c *echoConn) write(sig protocol.Signal, seq uint64, body []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.nc.Writer()
	b, err := w.Malloc(protocol.HeaderLen + len(body))
	if err != nil {
		return false
	}
	protocol.PutHeader(b, protocol.Header{Signal: sig, Seq: seq, Length: uint32(len(body))})
	copy(b[protocol.HeaderLen:], body)
	return w.Flush() == nil
}

// maxEchoPush is the most dids in one echo push: the answer is one character per did in a
// protocol string, at most protocol.MaxString long.
const maxEchoPush = 4000

// encodeEchoPush is the body of a baseline push: app ID, u16 count, that many dids, then the payload.
func encodeEchoPush(app string, dids []string, payload []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(app)))
	b = append(b, app...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(dids)))
	for _, d := range dids {
		b = binary.BigEndian.AppendUint16(b, uint16(len(d)))
		b = append(b, d...)
	}
	return append(b, payload...)
}

func decodeEchoPush(b []byte) (app string, dids []string, payload []byte, ok bool) {
	str := func() (string, bool) {
		if len(b) < 2 {
			return "", false
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return "", false
		}
		s := string(b[2 : 2+n])
		b = b[2+n:]
		return s, true
	}
	if app, ok = str(); !ok || len(b) < 2 {
		return "", nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n > maxEchoPush {
		return "", nil, nil, false
	}
	for range n {
		d, ok := str()
		if !ok {
			return "", nil, nil, false
		}
		dids = append(dids, d)
	}
	return app, dids, b, true
}
