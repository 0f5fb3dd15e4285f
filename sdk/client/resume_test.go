package client_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/protocol"
)

func TestResumeAfterDrop(t *testing.T) {
	s := newServer(t, serverOpts{
		resume: resumeOK,
		uplink: holdUplink,
		replay: func(sc *serverConn) {
			sc.repush(2, 101, "b") // got before the drop, its ACK lost: acknowledged, not delivered again
			sc.push(102, "c")      // pushed while the device was away: the sequence carries on
		},
	})
	st := new(states)
	c := dial(t, s, reconnecting(st))
	sc := s.accept()
	sc.push(100, "a")
	sc.push(101, "b")
	for _, want := range []uint64{100, 101} {
		if m := message(t, c); m.MsgID != want {
			t.Fatalf("got %+v, want msg %d", m, want)
		}
		sc.next(t, protocol.SigDownlinkAck)
	}
	sent := sendAsync(c, "held")
	if f := sc.next(t, protocol.SigUplink); f.Seq != 1 {
		t.Fatalf("first uplink %v", f)
	}
	sc.drop()

	sc2 := s.accept()
	want := protocol.Resume{AppID: "demo", DID: "d1", UID: "u1", Token: "tok", PrevConnID: sc.id, LastDownlink: 2}
	if sc2.resume == nil || *sc2.resume != want {
		t.Fatalf("server got resume %+v, want %+v", sc2.resume, want)
	}
	// The resend and the acks of the replayed downlinks travel side by side, in either order.
	var acks []uint64
	for resent := false; !resent || len(acks) < 2; {
		switch f := sc2.nextOf(t, protocol.SigUplink, protocol.SigDownlinkAck); f.Signal {
		case protocol.SigDownlinkAck:
			acks = append(acks, f.Seq)
		default:
			if resent || f.Seq != 1 || string(f.Body) != "held" {
				t.Fatalf("resent uplink %v %q, want seq 1 \"held\" once", f, f.Body)
			}
			resent = true
		}
	}
	if !slices.Equal(acks, []uint64{2, 3}) {
		t.Fatalf("acks %v of the replayed downlinks, want [2 3]", acks)
	}
	if err := result(t, sent); err != nil {
		t.Fatalf("an uplink the server had (1008 on its resend) must count as sent: %v", err)
	}
	if m := message(t, c); m.MsgID != 102 || m.Seq != 3 {
		t.Fatalf("after the resume got %+v, want msg 102 at seq 3", m)
	}
	if err := c.Send(context.Background(), []byte("after")); err != nil {
		t.Fatal(err)
	}
	if f := sc2.next(t, protocol.SigUplink); f.Seq != 2 {
		t.Fatalf("the uplink seq must carry on after a resume: got %v", f)
	}
	if c.ConnID() != sc2.id || c.Endpoint() != s.addr() {
		t.Fatalf("ConnID %d, want the resumed connection's %d", c.ConnID(), sc2.id)
	}

	c.Close() // it returns once OnState was told everything
	if got, want := st.kinds(), []client.StateKind{client.Connecting, client.Connected, client.Disconnected, client.Connecting, client.Resumed, client.Closed}; !slices.Equal(got, want) {
		t.Fatalf("states %v, want %v", st.all(), want)
	}
	if d := st.last(client.Disconnected); d.Err == nil || d.ConnID != sc.id {
		t.Fatalf("disconnected state %+v: want the lost connection and why", d)
	}
	if r := st.last(client.Resumed); r.ConnID != sc2.id || r.Endpoint != s.addr() {
		t.Fatalf("resumed state %+v", r)
	}
	if cl := st.last(client.Closed); cl.Err != nil {
		t.Fatalf("closed after Close with %v, want nil", cl.Err)
	}
}

func TestResumeRefusedLogsIn(t *testing.T) {
	s := newServer(t, serverOpts{uplink: holdUplink}) // it keeps nothing: every Resume gets 1208
	st := new(states)
	c := dial(t, s, reconnecting(st))
	sc := s.accept()
	sc.push(100, "a")
	message(t, c)
	sc.next(t, protocol.SigDownlinkAck)
	sent := sendAsync(c, "held")
	sc.next(t, protocol.SigUplink)
	sc.drop()

	sc2 := s.accept()
	if sc2.resume == nil || sc2.resume.PrevConnID != sc.id || sc2.login.Token != "tok" {
		t.Fatalf("want a Resume of conn %d, then a Login on the same socket; got resume %+v, login %+v", sc.id, sc2.resume, sc2.login)
	}
	err := result(t, sent)
	if !errors.Is(err, client.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "could not be resumed") {
		t.Fatalf("an uplink pending across a new login: got %v, want ErrOutcomeUnknown", err)
	}
	sc2.repush(1, 100, "a") // a retransmission of what the old connection delivered: still recognised
	sc2.push(200, "d")
	if m := message(t, c); m.MsgID != 200 || m.Seq != 1 {
		t.Fatalf("got %+v, want msg 200 at seq 1 (a new connection's sequence)", m)
	}
	if err := c.Send(context.Background(), []byte("after")); err != nil {
		t.Fatal(err)
	}
	if f := sc2.next(t, protocol.SigUplink); f.Seq != 1 {
		t.Fatalf("a new connection's uplinks start at 1: got %v", f)
	}
	st.waitFor(t, client.Connecting, client.Connected, client.Disconnected, client.Connecting, client.Connected)
}

func TestSendWaitsForReconnect(t *testing.T) {
	gate := make(chan struct{})
	s := newServer(t, serverOpts{resume: func(protocol.Resume) protocol.Code { <-gate; return protocol.CodeOK }})
	t.Cleanup(func() { close(gate) }) // runs before the server's cleanup, which waits for its goroutines
	c := dial(t, s, reconnecting(new(states)))
	s.accept().drop()
	wait(t, "the client to send its Resume", func() bool { return s.resumes.Load() == 1 })

	sent := sendAsync(c, "while away")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.Send(ctx, []byte("never")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a Send while reconnecting is bounded by its context: got %v", err)
	}
	select {
	case err := <-sent:
		t.Fatalf("Send returned %v while the client was reconnecting; it should wait", err)
	default:
	}
	gate <- struct{}{}
	if err := result(t, sent); err != nil {
		t.Fatal(err)
	}
	if f := s.accept().next(t, protocol.SigUplink); string(f.Body) != "while away" {
		t.Fatalf("first uplink after the resume %q", f.Body)
	}
}
