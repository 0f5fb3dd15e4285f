package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/protocol"
)

// dial connects a client to s and closes it when the test ends.
func dial(t *testing.T, s *fakeServer, mod func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{Endpoints: []string{s.addr()}, Token: "tok", AppID: "demo", DID: "d1", UID: "u1"}
	if mod != nil {
		mod(&cfg)
	}
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLoginAndSend(t *testing.T) {
	s := newServer(t, serverOpts{})
	c := dial(t, s, nil)
	sc := s.accept()
	if want := (protocol.Login{AppID: "demo", DID: "d1", UID: "u1", Token: "tok", Platform: client.DefaultPlatform}); sc.login != want {
		t.Fatalf("server saw login %+v, want %+v", sc.login, want)
	}
	if c.ConnID() != 1 || c.Endpoint() != s.addr() {
		t.Fatalf("ConnID %d, Endpoint %q", c.ConnID(), c.Endpoint())
	}
	for i, p := range []string{"hi", "", "third"} {
		if err := c.Send(context.Background(), []byte(p)); err != nil {
			t.Fatalf("Send %q: %v", p, err)
		}
		f := sc.next(t, protocol.SigUplink)
		if f.Seq != uint64(i+1) || string(f.Body) != p {
			t.Fatalf("server got %v %q, want seq %d %q", f, f.Body, i+1, p)
		}
	}
}

func TestSendRefused(t *testing.T) {
	s := newServer(t, serverOpts{uplink: func(seq uint64, p []byte) (protocol.Code, bool) {
		switch string(p) {
		case "business":
			return 2042, true
		case "down":
			return protocol.CodeBusinessUnavailable, true
		}
		return 0, true
	}})
	c := dial(t, s, nil)
	for payload, want := range map[string]protocol.Code{"business": 2042, "down": protocol.CodeBusinessUnavailable, "ok": 0} {
		err := c.Send(context.Background(), []byte(payload))
		if got := codeOf(err); got != want || (want == 0) != (err == nil) {
			t.Errorf("Send(%q) = %v, want code %d", payload, err, want)
		}
	}
}

func TestSendTooLarge(t *testing.T) {
	s := newServer(t, serverOpts{})
	c := dial(t, s, func(cfg *client.Config) { cfg.MaxBody = 32 })
	if err := c.Send(context.Background(), make([]byte, 33)); codeOf(err) != protocol.CodeFrameTooLarge {
		t.Fatalf("got %v, want code %d", err, protocol.CodeFrameTooLarge)
	}
	if err := c.Send(context.Background(), make([]byte, 32)); err != nil {
		t.Fatalf("a payload at the maximum: %v", err)
	}
}

func TestConcurrentSends(t *testing.T) {
	// Acks come back out of order: odd seqs are answered late. Every Send must get its own.
	var mu sync.Mutex
	var held []uint64
	var sc *serverConn
	s := newServer(t, serverOpts{uplink: func(seq uint64, p []byte) (protocol.Code, bool) {
		if seq%2 == 0 {
			return protocol.Code(2000 + seq%1000), true
		}
		mu.Lock()
		held = append(held, seq)
		mu.Unlock()
		return 0, false
	}})
	c := dial(t, s, nil)
	sc = s.accept()

	const n = 64
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = c.Send(context.Background(), fmt.Appendf(nil, "m%d", i)) })
	}
	wait(t, "odd uplinks", func() bool { mu.Lock(); defer mu.Unlock(); return len(held) == n/2 })
	mu.Lock()
	for _, seq := range slices.Backward(held) {
		sc.send(protocol.SigUplinkAck, 0, seq, (&protocol.Ack{}).Append(nil))
	}
	mu.Unlock()
	wg.Wait()

	var seqs []uint64
	for range n {
		seqs = append(seqs, sc.next(t, protocol.SigUplink).Seq)
	}
	if !slices.IsSorted(seqs) || seqs[0] != 1 || seqs[n-1] != n {
		t.Fatalf("uplink seqs on the wire %v, want 1..%d in order", seqs, n)
	}
	var ok, refused int
	for _, err := range errs {
		switch code := codeOf(err); {
		case err == nil:
			ok++
		case code >= 2000 && code < 3000:
			refused++
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if ok != n/2 || refused != n/2 {
		t.Fatalf("%d accepted, %d refused; want %d each", ok, refused, n/2)
	}
}

func TestSendTimeoutAndContext(t *testing.T) {
	s := newServer(t, serverOpts{uplink: func(uint64, []byte) (protocol.Code, bool) { return 0, false }})
	c := dial(t, s, func(cfg *client.Config) { cfg.AckTimeout = 50 * time.Millisecond })
	if err := c.Send(context.Background(), []byte("x")); !errors.Is(err, client.ErrAckTimeout) {
		t.Fatalf("got %v, want ErrAckTimeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	c2 := dial(t, s, func(cfg *client.Config) { cfg.AckTimeout = time.Minute; cfg.DID = "d2" })
	if err := c2.Send(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if err := c2.Send(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("with a done context: got %v", err)
	}
	select {
	case <-c.Done():
		t.Fatal("a timed-out Send must not end the connection")
	default:
	}
}

func TestDownlinksInOrderAndAcked(t *testing.T) {
	s := newServer(t, serverOpts{})
	c := dial(t, s, nil)
	sc := s.accept()
	for i := range 5 {
		sc.push(uint64(100+i), fmt.Sprint("m", i))
	}
	for i := range 5 {
		m := <-c.Messages()
		if m.Seq != uint64(i+1) || m.MsgID != uint64(100+i) || string(m.Payload) != fmt.Sprint("m", i) || m.Retransmit {
			t.Fatalf("message %d = %+v", i, m)
		}
		if f := sc.next(t, protocol.SigDownlinkAck); f.Seq != uint64(i+1) || len(f.Body) != 0 {
			t.Fatalf("ack %v, want seq %d with an empty body", f, i+1)
		}
	}
}

func TestRetransmitDeduped(t *testing.T) {
	s := newServer(t, serverOpts{})
	c := dial(t, s, nil)
	sc := s.accept()
	seq := sc.push(10, "a")
	sc.repush(seq, 10, "a") // the ACK was lost: acknowledged again, not delivered again
	sc.repush(7, 11, "b")   // a retransmit of something never seen is delivered
	sc.push(12, "c")
	var got []uint64
	for range 3 {
		m := <-c.Messages()
		got = append(got, m.MsgID)
		if m.Retransmit != (m.MsgID == 11) {
			t.Fatalf("message %+v: wrong Retransmit", m)
		}
	}
	if !slices.Equal(got, []uint64{10, 11, 12}) {
		t.Fatalf("delivered %v, want [10 11 12]", got)
	}
	var acks []uint64
	for range 4 {
		acks = append(acks, sc.next(t, protocol.SigDownlinkAck).Seq)
	}
	if !slices.Equal(acks, []uint64{1, 1, 7, 2}) {
		t.Fatalf("acked %v, want [1 1 7 2]", acks)
	}
}

func TestBroadcastAckedWithItsFlagAndDeduped(t *testing.T) {
	s := newServer(t, serverOpts{})
	c := dial(t, s, nil)
	sc := s.accept()
	bcast := func(msgID uint64, payload string) {
		sc.send(protocol.SigDownlink, protocol.FlagBroadcast, msgID, (&protocol.Downlink{MsgID: msgID, Payload: []byte(payload)}).Append(nil))
	}
	seq := sc.push(500, "direct")
	bcast(500, "direct") // the same message by broadcast too: acknowledged, not delivered again
	bcast(900, "room")
	for _, want := range []uint64{500, 900} {
		m := <-c.Messages()
		if m.MsgID != want || m.Broadcast != (want == 900) {
			t.Fatalf("message %+v, want msg %d (broadcast %v)", m, want, want == 900)
		}
		if want == 900 && m.Seq != 900 {
			t.Fatalf("broadcast seq %d, want its msg id", m.Seq)
		}
	}
	type ack struct {
		seq   uint64
		flags uint16
	}
	var acks []ack
	for range 3 {
		f := sc.next(t, protocol.SigDownlinkAck)
		acks = append(acks, ack{f.Seq, f.Flags})
	}
	want := []ack{{seq, 0}, {500, protocol.FlagBroadcast}, {900, protocol.FlagBroadcast}}
	if !slices.Equal(acks, want) {
		t.Fatalf("acks %v, want %v", acks, want)
	}
}

func TestOnDownlinkAcksAfterReturn(t *testing.T) {
	s := newServer(t, serverOpts{})
	got := make(chan client.Message)
	release := make(chan struct{})
	dial(t, s, func(cfg *client.Config) {
		cfg.OnDownlink = func(m client.Message) {
			got <- m
			<-release
		}
	})
	sc := s.accept()
	sc.push(5, "x")
	if m := <-got; m.MsgID != 5 || string(m.Payload) != "x" {
		t.Fatalf("callback got %+v", m)
	}
	sc.none(t, protocol.SigDownlinkAck, 50*time.Millisecond)
	close(release)
	sc.next(t, protocol.SigDownlinkAck)
}

func TestHeartbeatWhenIdle(t *testing.T) {
	// 300 ms, not less: the client ends a connection it has read nothing on for 3 intervals, and
	// a loaded machine stalls this test process for hundreds of milliseconds at a time.
	s := newServer(t, serverOpts{heartbeatMs: 300})
	c := dial(t, s, nil)
	sc := s.accept()
	var seqs []uint64
	for range 3 {
		seqs = append(seqs, sc.next(t, protocol.SigHeartbeat).Seq)
	}
	if !slices.IsSorted(seqs) || seqs[0] == seqs[2] {
		t.Fatalf("heartbeat seqs %v", seqs)
	}
	// The server answers every heartbeat, so silence never ends the connection (3 x 300 ms).
	time.Sleep(1200 * time.Millisecond)
	select {
	case <-c.Done():
		t.Fatalf("connection ended: %v", c.Err())
	default:
	}
}

// TestHeartbeatSkippedWhileBusy: a connection that writes more often than its heartbeat interval
// sends no heartbeat. The test bounds every gap between two of the client's writes from above (from
// the start of one Send to the end of the next); a loaded machine can stall the test for longer
// than the interval, and a heartbeat after such a stall is right, so it fails only on a heartbeat
// the client sent without ever having been idle for an interval.
func TestHeartbeatSkippedWhileBusy(t *testing.T) {
	const interval = 500 * time.Millisecond
	s := newServer(t, serverOpts{heartbeatMs: uint32(interval / time.Millisecond)})
	before := time.Now() // the Login is written after this
	c := dial(t, s, nil)
	sc := s.accept()
	var maxGap time.Duration
	last := before // a moment no later than the client's last write
	stop := time.After(3 * interval)
	for busy := true; busy; {
		select {
		case <-stop:
			busy = false
		case <-time.After(10 * time.Millisecond):
			start := time.Now()
			if err := c.Send(context.Background(), []byte("x")); err != nil {
				t.Fatal(err)
			}
			// This Send's Uplink was written between start and now.
			maxGap = max(maxGap, time.Since(last))
			last = start
		}
	}
	for {
		select {
		case f := <-sc.frames:
			if f.Signal == protocol.SigHeartbeat {
				if gap := max(maxGap, time.Since(last)); gap < interval {
					t.Fatalf("heartbeat sent while uplinks were flowing (no gap between writes reached %v)", gap)
				}
				t.Logf("a heartbeat after the machine stalled the test for up to %v (interval %v): not a failure", max(maxGap, time.Since(last)), interval)
			}
		default:
			return
		}
	}
}

func TestSilentServerEndsConnection(t *testing.T) {
	s := newServer(t, serverOpts{heartbeatMs: 20, silent: true})
	c := dial(t, s, nil)
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection outlived a silent server")
	}
	if err := c.Err(); err == nil {
		t.Fatal("Err() = nil after the server went silent")
	}
}

func TestServerCloseEndsEverything(t *testing.T) {
	s := newServer(t, serverOpts{uplink: func(uint64, []byte) (protocol.Code, bool) { return 0, false }})
	c := dial(t, s, nil)
	sc := s.accept()
	sendErr := make(chan error, 1)
	go func() { sendErr <- c.Send(context.Background(), []byte("pending")) }()
	sc.next(t, protocol.SigUplink)
	sc.close(protocol.CodeReplaced)

	<-c.Done()
	if codeOf(c.Err()) != protocol.CodeReplaced {
		t.Fatalf("Err() = %v, want code %d", c.Err(), protocol.CodeReplaced)
	}
	if err := <-sendErr; codeOf(err) != protocol.CodeReplaced {
		t.Fatalf("pending Send = %v, want code %d", err, protocol.CodeReplaced)
	}
	if err := c.Send(context.Background(), []byte("late")); codeOf(err) != protocol.CodeReplaced {
		t.Fatalf("Send after the end = %v", err)
	}
	if _, open := <-c.Messages(); open {
		t.Fatal("Messages() must be closed after the connection ended")
	}
}

func TestClientClose(t *testing.T) {
	s := newServer(t, serverOpts{})
	c := dial(t, s, nil)
	sc := s.accept()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	var cl protocol.Close
	if err := cl.Decode(sc.next(t, protocol.SigClose).Body); err != nil || cl.Code != protocol.CodeClientClose {
		t.Fatalf("server got close %+v, %v; want code %d", cl, err, protocol.CodeClientClose)
	}
	<-c.Done()
	if c.Err() != nil {
		t.Fatalf("Err() after Close = %v, want nil", c.Err())
	}
	if err := c.Send(context.Background(), nil); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestBadFrameFromServer(t *testing.T) {
	s := newServer(t, serverOpts{})
	c := dial(t, s, func(cfg *client.Config) { cfg.MaxBody = 32 })
	sc := s.accept()
	sc.send(protocol.SigDownlink, 0, 1, make([]byte, 33))
	<-c.Done()
	if codeOf(c.Err()) != protocol.CodeFrameTooLarge {
		t.Fatalf("Err() = %v, want code %d", c.Err(), protocol.CodeFrameTooLarge)
	}
	var cl protocol.Close
	if err := cl.Decode(sc.next(t, protocol.SigClose).Body); err != nil || cl.Code != protocol.CodeFrameTooLarge {
		t.Fatalf("device sent close %+v, %v", cl, err)
	}
}

func TestMalformedBodyFromServer(t *testing.T) {
	s := newServer(t, serverOpts{})
	c := dial(t, s, nil)
	sc := s.accept()
	sc.send(protocol.SigDownlink, 0, 1, []byte{1, 2, 3}) // shorter than a msg ID
	<-c.Done()
	if codeOf(c.Err()) != protocol.CodeMalformed {
		t.Fatalf("Err() = %v, want code %d", c.Err(), protocol.CodeMalformed)
	}
}

func TestRedirectEndsConnection(t *testing.T) {
	s := newServer(t, serverOpts{})
	c := dial(t, s, nil)
	sc := s.accept()
	sc.send(protocol.SigRedirect, 0, 0, (&protocol.Redirect{Code: protocol.CodeMigrated, Endpoints: []string{"10.0.0.9:8900"}}).Append(nil))
	<-c.Done()
	if codeOf(c.Err()) != protocol.CodeMigrated {
		t.Fatalf("Err() = %v, want code %d", c.Err(), protocol.CodeMigrated)
	}
}
