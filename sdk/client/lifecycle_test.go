package client_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

func TestCloseDuringReconnect(t *testing.T) {
	t.Run("backing off", func(t *testing.T) {
		s := newServer(t, serverOpts{resume: resumeOK, uplink: holdUplink})
		st := new(states)
		c := dial(t, s, func(cfg *client.Config) {
			reconnecting(st)(cfg)
			cfg.ReconnectMin, cfg.ReconnectMax = time.Hour, time.Hour
		})
		sc := s.accept()
		sent := sendAsync(c, "held")
		sc.next(t, protocol.SigUplink)
		sc.drop()
		st.waitFor(t, client.Connecting, client.Connected, client.Disconnected)
		closePromptly(t, c)
		if err := result(t, sent); !errors.Is(err, client.ErrClosed) {
			t.Fatalf("pending Send = %v, want ErrClosed", err)
		}
		if n := s.accepted.Load(); n != 1 {
			t.Fatalf("%d connections: the client reconnected after Close", n)
		}
	})
	t.Run("resuming", func(t *testing.T) {
		gate := make(chan struct{})
		s := newServer(t, serverOpts{resume: func(protocol.Resume) protocol.Code { <-gate; return protocol.CodeOK }})
		t.Cleanup(func() { close(gate) })
		c := dial(t, s, func(cfg *client.Config) {
			reconnecting(new(states))(cfg)
			cfg.LoginTimeout = time.Hour
		})
		s.accept().drop()
		wait(t, "the client to send its Resume", func() bool { return s.resumes.Load() == 1 })
		closePromptly(t, c)
	})
}

func TestNoGoroutineLeftAfterClose(t *testing.T) {
	s := newServer(t, serverOpts{resume: resumeOK})
	before := runtime.NumGoroutine()
	st := new(states)
	c := dial(t, s, reconnecting(st))
	s.accept().drop()
	s.accept()
	st.waitFor(t, client.Connecting, client.Connected, client.Disconnected, client.Connecting, client.Resumed)
	if err := c.Send(context.Background(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	var now int
	if !poll.Wait(poll.Timeout, func() bool { now = runtime.NumGoroutine(); return now <= before }) {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after Close, %d before Dial:\n%s", now, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestStatesWithoutReconnect(t *testing.T) {
	s := newServer(t, serverOpts{})
	st := new(states)
	c := dial(t, s, func(cfg *client.Config) { cfg.OnState = st.add })
	s.accept().drop()
	done(t, c)
	st.waitFor(t, client.Connecting, client.Connected, client.Disconnected, client.Closed)
	if cl := st.last(client.Closed); cl.Err == nil || cl.Err != c.Err() {
		t.Fatalf("closed with %v, want Err() %v", cl.Err, c.Err())
	}
	if n := s.accepted.Load(); n != 1 {
		t.Fatalf("%d connections without Reconnect", n)
	}
}

func TestDialFailureEndsStates(t *testing.T) {
	st := new(states)
	addr := refusedAddr(t)
	_, err := client.Dial(context.Background(), client.Config{Endpoints: []string{addr}, Token: "t", AppID: "a", DID: "d", Reconnect: true, OnState: st.add})
	if err == nil {
		t.Fatal("Dial succeeded")
	}
	if got := st.kinds(); !slices.Equal(got, []client.StateKind{client.Connecting, client.Closed}) {
		t.Fatalf("states %v", st.all())
	}
}
