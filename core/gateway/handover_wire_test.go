package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudwego/netpoll"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/poll"
)

func sampleConns() []*handedConn {
	return []*handedConn{
		{id: 1 << 40, state: stateLoggedIn, reason: 0, hbInFlight: true, appID: "demo", did: "d1", uid: "u1", link: "state-1",
			sessions: []string{"team", "room"}, downSeq: 42, upAnswered: 17, upPending: []int64{18, 19},
			unacked: []*fleet.DownFrame{{ConnId: 1 << 40, Signal: 5, Seq: 41, Body: []byte("x"), Track: true}},
			input:   []byte{1, 2, 3},
			queue: []outFrame{
				{down: &fleet.DownFrame{ConnId: 1 << 40, Action: fleet.DownAction_SEND_AND_CLOSE, Signal: 9, Flags: 3, Seq: 43, Body: []byte("bye"), Did: "d1"}},
				{broadcast: []byte("whole frame")},
			}},
		{id: 7, state: stateNew},
		// A WebSocket connection logged in, and one whose handshake was half received.
		{id: 8, state: stateLoggedIn, appID: "demo", did: "d8", link: "state-1", input: []byte{0x82, 0x85},
			ws: &wsConn{Upgraded: true, Origin: "https://chat.example"}},
		{id: 9, state: stateNew, input: []byte("GET /plato HTTP/1.1\r\nHost: x"), ws: &wsConn{}},
	}
}

// A connection's transport survives the handover: TCP stays TCP, a WebSocket keeps its handshake
// state and Origin.
func TestHandoverConnsCarryTheTransport(t *testing.T) {
	out, err := decodeConns(encodeConns(sampleConns()))
	if err != nil {
		t.Fatal(err)
	}
	if out[0].ws != nil || out[1].ws != nil {
		t.Fatalf("TCP connections came back as WebSocket: %+v %+v", out[0].ws, out[1].ws)
	}
	if w := out[2].ws; w == nil || !w.Upgraded || w.Origin != "https://chat.example" {
		t.Fatalf("upgraded WebSocket connection came back as %+v", w)
	}
	if w := out[3].ws; w == nil || w.Upgraded || w.Origin != "" {
		t.Fatalf("WebSocket connection in its handshake came back as %+v", w)
	}
}

// An unknown transport, or an Origin longer than a handshake accepts, is refused.
func TestHandoverConnsBadTransport(t *testing.T) {
	one := func(ws *wsConn) []byte { return encodeConns([]*handedConn{{id: 1, state: stateLoggedIn, ws: ws}}) }
	b := one(nil)
	b[len(b)-1] = 3 // the transport is the record's last byte
	if _, err := decodeConns(b); !errors.Is(err, errHandoverMsg) {
		t.Fatalf("transport 3: %v, want errHandoverMsg", err)
	}
	long := strings.Repeat("o", wsMaxOrigin+1)
	if _, err := decodeConns(one(&wsConn{Upgraded: true, Origin: long})); !errors.Is(err, errHandoverMsg) {
		t.Fatalf("an Origin of %d bytes: %v, want errHandoverMsg", len(long), err)
	}
	if _, err := decodeConns(one(&wsConn{Upgraded: true, Origin: long[:wsMaxOrigin]})); err != nil {
		t.Fatalf("an Origin of %d bytes: %v", wsMaxOrigin, err)
	}
}

func TestHandoverConnsRoundTrip(t *testing.T) {
	in := sampleConns()
	out, err := decodeConns(encodeConns(in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip changed the connections:\n got %+v\nwant %+v", out, in)
	}
}

func TestHandoverMessagesRoundTrip(t *testing.T) {
	h, err := decodeHello(encodeHello(hello{nextID: 99, states: []string{"a", "b"}}))
	if err != nil || h.nextID != 99 || !reflect.DeepEqual(h.states, []string{"a", "b"}) {
		t.Fatalf("hello: %+v %v", h, err)
	}
	// A hello of another layout is refused, so that the upgrade is refused before anything moves.
	other := encodeHello(hello{nextID: 99})
	binary.BigEndian.PutUint16(other, handoverVersion+1)
	if _, err := decodeHello(other); err == nil || !strings.Contains(err.Error(), "handover version") {
		t.Fatalf("a hello of another version: %v", err)
	}
	frames := []*fleet.DownFrame{{ConnId: 3, Signal: 4, Seq: 5, Body: []byte("p")}}
	id, fs, err := decodePush(encodePush("state-1", frames))
	if err != nil || id != "state-1" || !reflect.DeepEqual(fs, frames) {
		t.Fatalf("push: %q %+v %v", id, fs, err)
	}
	changes := []*fleet.SessionChange{{ConnId: 3, Session: "s", Join: true}}
	id, cs, err := decodeSessions(encodeSessions("state-2", changes))
	if err != nil || id != "state-2" || !reflect.DeepEqual(cs, changes) {
		t.Fatalf("sessions: %q %+v %v", id, cs, err)
	}
	if s, err := decodeText(encodeText("why")); err != nil || s != "why" {
		t.Fatalf("text: %q %v", s, err)
	}
}

// Every prefix of a valid message, and a message with bytes left over, is refused.
func TestHandoverConnsMalformed(t *testing.T) {
	b := encodeConns(sampleConns())
	for i := range len(b) {
		if _, err := decodeConns(b[:i]); !errors.Is(err, errHandoverMsg) {
			t.Fatalf("a message cut at %d of %d bytes: %v, want errHandoverMsg", i, len(b), err)
		}
	}
	if _, err := decodeConns(append(b, 0)); !errors.Is(err, errHandoverMsg) {
		t.Fatalf("a byte left over: %v", err)
	}
	// A count far beyond the bytes is refused before anything is allocated for it.
	if _, err := decodeConns([]byte{0xff, 0xff, 0xff, 0xff}); !errors.Is(err, errHandoverMsg) {
		t.Fatalf("a huge count: %v", err)
	}
}

// Messages cross a unix socket pair with their descriptors, in order, however they are cut.
func TestHandoverSocketCarriesDescriptors(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := fileConn(t, fds[0]), fileConn(t, fds[1])
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	big := bytes.Repeat([]byte("z"), 1<<20) // larger than the socket's buffer: sent in parts
	go func() {
		_ = writeHandoverMsg(a, msgForward, []byte("first"), nil)
		_ = writeHandoverMsg(a, msgConns, big, []int{int(w.Fd())})
		_ = writeHandoverMsg(a, msgEnd, nil, nil)
	}()
	hr := newHandoverReader(b)
	m, err := hr.read()
	if err != nil || m.typ != msgForward || string(m.payload) != "first" || len(m.fds) != 0 {
		t.Fatalf("first message: %+v %v", m, err)
	}
	m, err = hr.read()
	if err != nil || m.typ != msgConns || !bytes.Equal(m.payload, big) || len(m.fds) != 1 {
		t.Fatalf("second message: type %d, %d bytes, %d fds, %v", m.typ, len(m.payload), len(m.fds), err)
	}
	// The descriptor received is the pipe's write end: what is written there comes out of r.
	passed := os.NewFile(uintptr(m.fds[0]), "passed")
	if _, err := passed.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	passed.Close()
	got := make([]byte, 2)
	if _, err := r.Read(got); err != nil || string(got) != "hi" {
		t.Fatalf("read %q %v through the passed descriptor", got, err)
	}
	if m, err = hr.read(); err != nil || m.typ != msgEnd {
		t.Fatalf("third message: %+v %v", m, err)
	}
}

func fileConn(t *testing.T, fd int) *net.UnixConn {
	t.Helper()
	f := os.NewFile(uintptr(fd), "sock")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UnixConn)
}

// stopAccepting reaches into netpoll's event loop: should a netpoll release change its layout,
// this fails rather than an upgrade.
func TestStopAcceptingReachesTheListener(t *testing.T) {
	var accepted atomic.Int64
	loop, err := netpoll.NewEventLoop(func(_ context.Context, c netpoll.Connection) error {
		r := c.Reader()
		b, _ := r.Next(r.Len())
		_, _ = c.Writer().WriteBinary(append([]byte(nil), b...))
		_ = r.Release()
		return c.Writer().Flush()
	}, netpoll.WithOnConnect(func(ctx context.Context, _ netpoll.Connection) context.Context {
		accepted.Add(1)
		return ctx
	}))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := netpoll.CreateListener("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = loop.Serve(ln) }()
	var first net.Conn
	poll.Within(t, 5*time.Second, "the loop to accept", func() bool {
		if first == nil {
			if first, err = net.Dial("tcp", ln.Addr().String()); err != nil {
				first = nil
				return false
			}
		}
		return accepted.Load() == 1
	})
	defer first.Close()
	// A second socket keeps the listening socket open, as the new process's would.
	dup, err := syscall.Dup(ln.Fd())
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(dup)
	if err := stopAccepting(loop); err != nil {
		t.Fatalf("stopAccepting: %v", err)
	}
	_ = ln.Close()
	second, err := net.Dial("tcp", ln.Addr().String()) // queued on the listening socket, not accepted
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	time.Sleep(200 * time.Millisecond)
	if n := accepted.Load(); n != 1 {
		t.Fatalf("%d connections accepted after stopAccepting, want the first only", n)
	}
	// The connection accepted before still works.
	if _, err := first.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	_ = first.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 4)
	if _, err := first.Read(got); err != nil || string(got) != "ping" {
		t.Fatalf("echo after stopAccepting: %q %v", got, err)
	}
}

func FuzzHandoverDecode(f *testing.F) {
	f.Add(encodeConns(sampleConns()))
	f.Add(encodeConns(nil))
	f.Add(encodePush("s", []*fleet.DownFrame{{ConnId: 1, Body: []byte("b")}}))
	f.Add(encodeSessions("s", []*fleet.SessionChange{{ConnId: 1, Session: "x", Join: true}}))
	f.Add(encodeHello(hello{nextID: 1, states: []string{"a"}}))
	f.Add([]byte{0, 0, 0, 1, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if cs, err := decodeConns(b); err == nil {
			// What decodes encodes back to the same bytes.
			if again := encodeConns(cs); !bytes.Equal(again, b) {
				t.Fatalf("decode then encode changed %x into %x", b, again)
			}
		}
		_, _, _ = decodePush(b)
		_, _, _ = decodeSessions(b)
		_, _ = decodeHello(b)
		_, _ = decodeText(b)
		_, _ = decodeCount(b)
	})
}
