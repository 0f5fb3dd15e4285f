package client_test

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

// fakeServer is a minimal gateway + state server speaking the device protocol, so the client's own
// logic can be tested over real sockets.
type fakeServer struct {
	t        *testing.T
	ln       net.Listener
	opts     serverOpts
	conns    chan *serverConn
	accepted atomic.Int32
	nextID   atomic.Uint64
}

type serverOpts struct {
	token       string        // the token Login must carry; others get LoginAck 1101
	loginCode   protocol.Code // a non-zero LoginAck code to answer with
	loginClose  protocol.Code // answer Login with Close(code) instead of a LoginAck
	silentLogin bool          // never answer Login
	heartbeatMs uint32
	silent      bool // answer nothing after login (no HeartbeatAck, no UplinkAck)
	// uplink decides an UplinkAck; ok=false means no answer. Default: code 0.
	uplink func(seq uint64, payload []byte) (code protocol.Code, ok bool)
}

// serverConn is one logged-in device connection on the fake server.
type serverConn struct {
	conn    net.Conn
	login   protocol.Login
	wmu     sync.Mutex
	frames  chan protocol.Frame // every frame the device sent after Login
	downSeq atomic.Uint64
}

func newServer(t *testing.T, opts serverOpts) *fakeServer {
	t.Helper()
	if opts.token == "" {
		opts.token = "tok"
	}
	if opts.heartbeatMs == 0 {
		opts.heartbeatMs = 10_000
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, ln: ln, opts: opts, conns: make(chan *serverConn, 16)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			mu.Lock()
			open = append(open, conn)
			mu.Unlock()
			wg.Go(func() { s.serve(conn) })
		}
	})
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) serve(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	f, _, err := protocol.ReadFrame(br, protocol.DefaultMaxBody, nil)
	if err != nil || f.Signal != protocol.SigLogin {
		return
	}
	sc := &serverConn{conn: conn, frames: make(chan protocol.Frame, 4096)}
	if err := sc.login.Decode(f.Body); err != nil {
		return
	}
	switch {
	case s.opts.silentLogin:
		drain(br)
		return
	case s.opts.loginClose != 0:
		sc.send(protocol.SigClose, 0, 0, (&protocol.Close{Code: s.opts.loginClose, Message: "bye"}).Append(nil))
		return
	}
	code := s.opts.loginCode
	if code == 0 && sc.login.Token != s.opts.token {
		code = protocol.CodeTokenInvalid
	}
	ack := protocol.LoginAck{Code: code, HeartbeatMs: s.opts.heartbeatMs}
	if code == 0 {
		ack.ConnID = s.nextID.Add(1)
	}
	sc.send(protocol.SigLoginAck, 0, f.Seq, ack.Append(nil))
	if code != 0 {
		return
	}
	s.conns <- sc

	var lastUp uint64
	for {
		f, _, err := protocol.ReadFrame(br, protocol.DefaultMaxBody, nil)
		if err != nil {
			close(sc.frames)
			return
		}
		sc.frames <- f
		if s.opts.silent {
			continue
		}
		switch f.Signal {
		case protocol.SigHeartbeat:
			sc.send(protocol.SigHeartbeatAck, 0, f.Seq, nil)
		case protocol.SigUplink:
			if f.Seq <= lastUp {
				sc.send(protocol.SigUplinkAck, 0, f.Seq, (&protocol.Ack{Code: protocol.CodeDuplicate}).Append(nil))
				continue
			}
			lastUp = f.Seq
			code, ok := protocol.CodeOK, true
			if s.opts.uplink != nil {
				code, ok = s.opts.uplink(f.Seq, f.Body)
			}
			if ok {
				sc.send(protocol.SigUplinkAck, 0, f.Seq, (&protocol.Ack{Code: code}).Append(nil))
			}
		case protocol.SigClose:
			close(sc.frames)
			return
		}
	}
}

// drain reads until the peer goes away, keeping the connection open meanwhile.
func drain(br *bufio.Reader) {
	var b [512]byte
	for {
		if _, err := br.Read(b[:]); err != nil {
			return
		}
	}
}

// accept waits for the next logged-in connection.
func (s *fakeServer) accept() *serverConn {
	s.t.Helper()
	select {
	case sc := <-s.conns:
		return sc
	case <-time.After(5 * time.Second):
		s.t.Fatal("no connection logged in")
		return nil
	}
}

func (sc *serverConn) send(sig protocol.Signal, flags uint16, seq uint64, body []byte) {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	sc.conn.Write(protocol.AppendFrame(nil, sig, flags, seq, body))
}

// push sends a new downlink and returns its seq.
func (sc *serverConn) push(msgID uint64, payload string) uint64 {
	seq := sc.downSeq.Add(1)
	sc.send(protocol.SigDownlink, 0, seq, (&protocol.Downlink{MsgID: msgID, Payload: []byte(payload)}).Append(nil))
	return seq
}

// repush retransmits a downlink under an earlier seq.
func (sc *serverConn) repush(seq, msgID uint64, payload string) {
	sc.send(protocol.SigDownlink, protocol.FlagRetransmit, seq, (&protocol.Downlink{MsgID: msgID, Payload: []byte(payload)}).Append(nil))
}

func (sc *serverConn) close(code protocol.Code) {
	sc.send(protocol.SigClose, 0, 0, (&protocol.Close{Code: code, Message: "test"}).Append(nil))
	sc.conn.Close()
}

// next returns the next frame with signal sig the device sent, skipping others.
func (sc *serverConn) next(t *testing.T, sig protocol.Signal) protocol.Frame {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case f, ok := <-sc.frames:
			if !ok {
				t.Fatalf("connection closed while waiting for %s", sig)
			}
			if f.Signal == sig {
				return f
			}
		case <-timeout:
			t.Fatalf("no %s from the device", sig)
		}
	}
}

// none checks that no frame with signal sig arrives within d.
func (sc *serverConn) none(t *testing.T, sig protocol.Signal, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case f, ok := <-sc.frames:
			if !ok {
				return
			}
			if f.Signal == sig {
				t.Fatalf("unexpected %v", f)
			}
		case <-timeout:
			return
		}
	}
}

// refusedAddr returns an address nobody listens on.
func refusedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// wait polls cond until it holds, instead of sleeping a guessed time.
func wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func codeOf(err error) protocol.Code {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return 0
}
