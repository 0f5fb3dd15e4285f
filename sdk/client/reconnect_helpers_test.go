package client_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// states records what Config.OnState is told.
type states struct {
	mu   sync.Mutex
	list []client.State
}

func (r *states) add(s client.State) {
	r.mu.Lock()
	r.list = append(r.list, s)
	r.mu.Unlock()
}

func (r *states) all() []client.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.list)
}

func (r *states) kinds() []client.StateKind {
	var ks []client.StateKind
	for _, s := range r.all() {
		ks = append(ks, s.Kind)
	}
	return ks
}

// waitFor waits until the states told so far are exactly want.
func (r *states) waitFor(t *testing.T, want ...client.StateKind) {
	t.Helper()
	if !poll.Wait(poll.Timeout, func() bool { return slices.Equal(r.kinds(), want) }) {
		t.Fatalf("states %v, want %v", r.all(), want)
	}
}

// last is the latest state of kind k.
func (r *states) last(k client.StateKind) client.State {
	all := r.all()
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Kind == k {
			return all[i]
		}
	}
	return client.State{}
}

// reconnecting is a Config modifier: Reconnect on, backoffs short enough for a test, states kept.
func reconnecting(st *states) func(*client.Config) {
	return func(cfg *client.Config) {
		cfg.Reconnect = true
		cfg.ReconnectMin = time.Millisecond
		cfg.ReconnectMax = 20 * time.Millisecond
		cfg.OnState = st.add
	}
}

func resumeOK(protocol.Resume) protocol.Code { return protocol.CodeOK }

// holdUplink answers every uplink but "held", which the server takes without answering.
func holdUplink(_ uint64, p []byte) (protocol.Code, bool) {
	return protocol.CodeOK, string(p) != "held"
}

// sendAsync runs Send in the background and returns where its result will arrive.
func sendAsync(c *client.Client, payload string) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- c.Send(context.Background(), []byte(payload)) }()
	return ch
}

func result(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(poll.Timeout):
		t.Fatal("Send never returned")
		return nil
	}
}

func message(t *testing.T, c *client.Client) client.Message {
	t.Helper()
	select {
	case m, ok := <-c.Messages():
		if !ok {
			t.Fatal("Messages() closed")
		}
		return m
	case <-time.After(poll.Timeout):
		t.Fatal("no message")
		return client.Message{}
	}
}

func done(t *testing.T, c *client.Client) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(poll.Timeout):
		t.Fatal("the client did not end")
	}
}

// closePromptly closes c, which must not wait for a backoff or a handshake to finish.
func closePromptly(t *testing.T, c *client.Client) {
	t.Helper()
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(poll.Timeout):
		t.Fatal("Close waited for the reconnect")
	}
	done(t, c)
	if c.Err() != nil {
		t.Fatalf("Err() after Close = %v, want nil", c.Err())
	}
	if err := c.Send(context.Background(), nil); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
}
