package client_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// fakeServer is a minimal gateway + state server speaking the device protocol, so the client's own
// logic can be tested over real sockets.
type fakeServer struct {
	t        *testing.T
	ln       net.Listener
	opts     serverOpts
	conns    chan *serverConn
	quit     chan struct{}
	accepted atomic.Int32
	resumes  atomic.Int32 // Resume frames received
	resumed  atomic.Int32 // Resumes answered with 0
}

type serverOpts struct {
	token       string                // the token Login and Resume must carry; others get 1101
	acceptToken func(tok string) bool // replaces the check against token when set
	loginCode   protocol.Code         // a non-zero LoginAck code to answer with
	loginClose  protocol.Code         // answer Login with Close(code) instead of a LoginAck
	silentLogin bool                  // never answer Login
	heartbeatMs uint32
	silent      bool // answer nothing after login (no HeartbeatAck, no UplinkAck)
	// uplink decides an UplinkAck; ok=false means no answer. Default: code 0.
	uplink func(seq uint64, payload []byte) (code protocol.Code, ok bool)
	// resume answers a Resume with a valid token: 0 resumes the session it names (a new conn_id;
	// the uplink and downlink seqs carry on), 1208 asks for a Login on the same socket, any other
	// code refuses and closes. Nil answers 1208: a server that keeps nothing.
	resume func(r protocol.Resume) protocol.Code
	// replay runs right after ResumeAck 0, before anything is read: the frames a real server
	// resends there.
	replay func(sc *serverConn)
	// store holds the sessions; servers sharing one can resume each other's connections. Default: one
	// of the server's own.
	store *store
}

// store is the state server behind fake gateways: connection IDs and the sessions they name.
type store struct {
	mu     sync.Mutex
	nextID uint64
	byID   map[uint64]*session
}

// session is what a Resume carries over: the sequences.
type session struct {
	lastUp  atomic.Uint64 // the last uplink seq accepted
	downSeq atomic.Uint64 // the last downlink seq sent
}

func newStore() *store { return &store{byID: make(map[uint64]*session)} }

// open gives a new connection its ID, in the session named by prev (a new one when prev is 0 or
// unknown).
func (st *store) open(prev uint64) (uint64, *session) {
	st.mu.Lock()
	defer st.mu.Unlock()
	sess := st.byID[prev]
	if sess == nil {
		sess = new(session)
	}
	st.nextID++
	st.byID[st.nextID] = sess
	return st.nextID, sess
}

// serverConn is one logged-in device connection on the fake server.
type serverConn struct {
	conn   net.Conn
	id     uint64
	sess   *session
	login  protocol.Login   // the Login, when the device logged in
	resume *protocol.Resume // the Resume the device sent first, if it did
	wmu    sync.Mutex
	frames chan protocol.Frame // every frame the device sent after Login
}

func newServer(t *testing.T, opts serverOpts) *fakeServer {
	t.Helper()
	if opts.token == "" {
		opts.token = "tok"
	}
	if opts.heartbeatMs == 0 {
		opts.heartbeatMs = 10_000
	}
	if opts.store == nil {
		opts.store = newStore()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, ln: ln, opts: opts, conns: make(chan *serverConn, 64), quit: make(chan struct{})}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		close(s.quit)
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
	if err != nil {
		return
	}
	sc := &serverConn{conn: conn, frames: make(chan protocol.Frame, 4096)}
	if f.Signal == protocol.SigResume {
		var ok bool
		if f, ok = s.answerResume(sc, br, f); !ok {
			return
		}
		if sc.sess != nil {
			s.loop(sc, br)
			return
		}
	}
	if f.Signal != protocol.SigLogin || sc.login.Decode(f.Body) != nil {
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
	if code == 0 && !s.accepts(sc.login.Token) {
		code = protocol.CodeTokenInvalid
	}
	ack := protocol.LoginAck{Code: code, HeartbeatMs: s.opts.heartbeatMs}
	if code == 0 {
		sc.id, sc.sess = s.opts.store.open(0)
		ack.ConnID = sc.id
	}
	sc.send(protocol.SigLoginAck, 0, f.Seq, ack.Append(nil))
	if code != 0 {
		return
	}
	s.loop(sc, br)
}

func (s *fakeServer) accepts(token string) bool {
	if s.opts.acceptToken != nil {
		return s.opts.acceptToken(token)
	}
	return token == s.opts.token
}

// answerResume answers the Resume f. When it resumed, sc.sess is set; when it asked for a Login,
// it returns the next frame; ok is false when the connection is over.
func (s *fakeServer) answerResume(sc *serverConn, br *bufio.Reader, f protocol.Frame) (next protocol.Frame, ok bool) {
	s.resumes.Add(1)
	var r protocol.Resume
	if r.Decode(f.Body) != nil {
		return f, false
	}
	sc.resume = &r
	code := protocol.CodeResumeRejected
	switch {
	case !s.accepts(r.Token):
		code = protocol.CodeTokenInvalid
	case s.opts.resume != nil:
		code = s.opts.resume(r)
	}
	ack := protocol.ResumeAck{Code: code, HeartbeatMs: s.opts.heartbeatMs}
	if code == protocol.CodeOK {
		sc.id, sc.sess = s.opts.store.open(r.PrevConnID)
		ack.ConnID = sc.id
		s.resumed.Add(1)
	}
	sc.send(protocol.SigResumeAck, 0, f.Seq, ack.Append(nil))
	switch code {
	case protocol.CodeOK:
		if s.opts.replay != nil {
			s.opts.replay(sc)
		}
		return f, true
	case protocol.CodeResumeRejected:
		f, _, err := protocol.ReadFrame(br, protocol.DefaultMaxBody, nil)
		return f, err == nil
	}
	return f, false
}

// loop serves a logged-in connection: it hands sc to the test, then records and answers frames.
func (s *fakeServer) loop(sc *serverConn, br *bufio.Reader) {
	select {
	case s.conns <- sc:
	case <-s.quit:
		return
	}
	defer close(sc.frames)
	for {
		f, _, err := protocol.ReadFrame(br, protocol.DefaultMaxBody, nil)
		if err != nil {
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
			if f.Seq <= sc.sess.lastUp.Load() {
				sc.send(protocol.SigUplinkAck, 0, f.Seq, (&protocol.Ack{Code: protocol.CodeDuplicate}).Append(nil))
				continue
			}
			sc.sess.lastUp.Store(f.Seq)
			code, ok := protocol.CodeOK, true
			if s.opts.uplink != nil {
				code, ok = s.opts.uplink(f.Seq, f.Body)
			}
			if ok {
				sc.send(protocol.SigUplinkAck, 0, f.Seq, (&protocol.Ack{Code: code}).Append(nil))
			}
		case protocol.SigClose:
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
	case <-time.After(poll.Timeout):
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
	seq := sc.sess.downSeq.Add(1)
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

// drop closes the socket without a Close, as a lost network or a crashed gateway does.
func (sc *serverConn) drop() { sc.conn.Close() }

// redirect asks the device to move to addrs, with token when it is not empty.
func (sc *serverConn) redirect(token string, addrs ...string) {
	sc.send(protocol.SigRedirect, 0, 0, (&protocol.Redirect{Code: protocol.CodeMigrated, Endpoints: addrs, Token: token}).Append(nil))
}

// gone waits until the device closed the connection, and fails if it sent a Close first.
func (sc *serverConn) gone(t *testing.T) {
	t.Helper()
	timeout := time.After(poll.Timeout)
	for {
		select {
		case f, ok := <-sc.frames:
			if !ok {
				return
			}
			if f.Signal == protocol.SigClose {
				t.Fatalf("the device sent %v; it should have just closed the socket", f)
			}
		case <-timeout:
			t.Fatal("the device kept the connection open")
		}
	}
}

// next returns the next frame with signal sig the device sent, skipping others.
func (sc *serverConn) next(t *testing.T, sig protocol.Signal) protocol.Frame {
	t.Helper()
	return sc.nextOf(t, sig)
}

// nextOf returns the next frame the device sent with one of sigs, skipping others.
func (sc *serverConn) nextOf(t *testing.T, sigs ...protocol.Signal) protocol.Frame {
	t.Helper()
	timeout := time.After(poll.Timeout)
	for {
		select {
		case f, ok := <-sc.frames:
			if !ok {
				t.Fatalf("connection closed while waiting for %v", sigs)
			}
			if slices.Contains(sigs, f.Signal) {
				return f
			}
		case <-timeout:
			t.Fatalf("no %v from the device", sigs)
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

// lowPort cycles through the ports refusedAddr hands out.
var lowPort atomic.Uint32

// refusedAddr returns an address nobody listens on. It is a port below 1024 rather than one a
// listener on port 0 was given and closed: the system gives that port to the next listener on port
// 0, and a test process running alongside (go test -count, two runs at once) would then answer there.
func refusedAddr(t *testing.T) string {
	t.Helper()
	for range 1023 {
		addr := fmt.Sprintf("127.0.0.1:%d", 1+lowPort.Add(1)%1023)
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return addr
		}
		c.Close() // a service of this machine listens there
	}
	t.Fatal("every port below 1024 is listening")
	return ""
}

// wait polls cond until it holds, instead of sleeping a guessed time.
func wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, what, cond)
}

func codeOf(err error) protocol.Code {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return 0
}
