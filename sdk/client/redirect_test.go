package client_test

import (
	"context"
	"testing"

	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/protocol"
)

func TestRedirectFollowed(t *testing.T) {
	from := newServer(t, serverOpts{})
	to := newServer(t, serverOpts{token: "tok2", resume: resumeOK})
	st := new(states)
	c := dial(t, from, reconnecting(st))
	old := from.accept()
	old.redirect("tok2", to.addr())

	sc := to.accept()
	if sc.resume == nil || sc.resume.PrevConnID != old.id || sc.resume.Token != "tok2" {
		t.Fatalf("want a Resume of conn %d with the Redirect's token, got %+v", old.id, sc.resume)
	}
	var cl protocol.Close
	if err := cl.Decode(old.next(t, protocol.SigClose).Body); err != nil || cl.Code != protocol.CodeClientClose {
		t.Fatalf("the old connection got close %+v, %v; want 1209", cl, err)
	}
	if to.resumed.Load() != 1 {
		t.Fatal("the old connection was closed before the new one resumed it")
	}
	wait(t, "the client on the new gateway", func() bool { return c.Endpoint() == to.addr() })
	if from.accepted.Load() != 1 {
		t.Fatalf("on %s after the redirect, with %d connections to the old gateway", c.Endpoint(), from.accepted.Load())
	}
	if err := c.Send(context.Background(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	st.waitFor(t, client.Connecting, client.Connected, client.Disconnected, client.Connecting, client.Resumed)
	if d := st.last(client.Disconnected); codeOf(d.Err) != protocol.CodeMigrated {
		t.Fatalf("disconnected with %v, want code %d", d.Err, protocol.CodeMigrated)
	}
}

func TestRedirectUnreachableFallsBack(t *testing.T) {
	s := newServer(t, serverOpts{resume: resumeOK})
	c := dial(t, s, reconnecting(new(states)))
	old := s.accept()
	old.redirect("", refusedAddr(t))
	// No Close 1209: the server must keep the connection's state for the Resume that follows.
	old.gone(t)
	if sc := s.accept(); sc.resume == nil || sc.resume.PrevConnID != old.id {
		t.Fatalf("want a Resume of conn %d through the client's own endpoints, got %+v", old.id, sc.resume)
	}
	if err := c.Send(context.Background(), []byte("x")); err != nil {
		t.Fatal(err)
	}
}
