package client_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/protocol"
)

func TestFinalCloseCodesStop(t *testing.T) {
	// 1101 is final here because the token is Config.Token: it cannot be renewed.
	for _, code := range []protocol.Code{protocol.CodeReplaced, protocol.CodeKicked, protocol.CodeMalformed, protocol.CodeTokenInvalid} {
		t.Run(fmt.Sprint(uint16(code)), func(t *testing.T) {
			s := newServer(t, serverOpts{resume: resumeOK, uplink: holdUplink})
			st := new(states)
			c := dial(t, s, reconnecting(st))
			sc := s.accept()
			sent := sendAsync(c, "held")
			sc.next(t, protocol.SigUplink)
			sc.close(code)

			done(t, c)
			if codeOf(c.Err()) != code {
				t.Fatalf("Err() = %v, want code %d", c.Err(), code)
			}
			if err := result(t, sent); codeOf(err) != code {
				t.Fatalf("pending Send = %v, want code %d", err, code)
			}
			if _, open := <-c.Messages(); open {
				t.Fatal("Messages() must be closed once the client is over")
			}
			st.waitFor(t, client.Connecting, client.Connected, client.Disconnected, client.Closed)
			if n := s.accepted.Load(); n != 1 {
				t.Fatalf("the client reconnected (%d connections) after a final code", n)
			}
		})
	}
}

func TestOtherEndsReconnect(t *testing.T) {
	for _, tt := range []struct {
		code    protocol.Code // 0: the socket just drops
		resumes bool          // the server keeps the connection (§11.1), so the client sends Resume
	}{
		{0, true},
		{protocol.CodeHeartbeatTimeout, true},
		{protocol.CodeShuttingDown, true},
		{protocol.CodeSlowConsumer, true},
		{protocol.CodeMigrated, true},
		{protocol.CodeStateLost, true},
		{protocol.CodeConnectionLost, true},
		{protocol.CodeOverloaded, true},
		{protocol.CodeInternal, true},
		{protocol.CodeRateLimited, false},
		{protocol.CodeLoginTimeout, false},
		{2001, false},
	} {
		t.Run(fmt.Sprint(uint16(tt.code)), func(t *testing.T) {
			s := newServer(t, serverOpts{resume: resumeOK})
			c := dial(t, s, reconnecting(new(states)))
			sc := s.accept()
			if tt.code == 0 {
				sc.drop()
			} else {
				sc.close(tt.code)
			}
			sc2 := s.accept()
			switch {
			case tt.resumes && (sc2.resume == nil || sc2.resume.PrevConnID != sc.id):
				t.Fatalf("want a Resume of conn %d, got %+v", sc.id, sc2.resume)
			case !tt.resumes && (sc2.resume != nil || sc2.login.Token != "tok"):
				t.Fatalf("nothing is kept after %d: want a Login straight away, got resume %+v", tt.code, sc2.resume)
			}
			if err := c.Send(context.Background(), []byte("x")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSilenceReconnectsToNextEndpoint(t *testing.T) {
	quiet := newServer(t, serverOpts{heartbeatMs: 30, silent: true})
	good := newServer(t, serverOpts{})
	st := new(states)
	c := dial(t, quiet, func(cfg *client.Config) {
		reconnecting(st)(cfg)
		cfg.Endpoints = []string{quiet.addr(), good.addr()}
	})
	sc := good.accept()
	if sc.resume == nil || sc.login.Token != "tok" {
		t.Fatalf("want a Resume (refused) then a Login, got %+v / %+v", sc.resume, sc.login)
	}
	wait(t, "the client on the next endpoint", func() bool { return c.Endpoint() == good.addr() })
	if d := st.last(client.Disconnected); d.Err == nil || !strings.Contains(d.Err.Error(), "nothing heard") {
		t.Fatalf("disconnected with %v, want silence", d.Err)
	}
}

func TestIPConfAskedWhenEndpointsRunOut(t *testing.T) {
	first := newServer(t, serverOpts{})
	second := newServer(t, serverOpts{resume: resumeOK})
	ipconf, asked := newIPConfFunc(t, func(n int) (string, []string) {
		if n == 1 {
			return "tok", []string{first.addr()}
		}
		return "tok", []string{second.addr()}
	})
	c := dial(t, first, func(cfg *client.Config) {
		reconnecting(new(states))(cfg)
		cfg.Endpoints, cfg.Token, cfg.IPConfURL, cfg.Credential = nil, "", ipconf.URL, "cred"
	})
	first.accept().drop()
	if sc := second.accept(); sc.resume == nil {
		t.Fatal("want a Resume at the endpoint of the fresh list")
	}
	wait(t, "the client on the fresh list's endpoint", func() bool { return c.Endpoint() == second.addr() })
	if n := asked.Load(); n != 2 {
		t.Fatalf("ipconf asked %d times, want 2", n)
	}
}

// renewingIPConf hands out "t1" first and "t2" after, with gw listed twice: after a drop the
// client tries the list's second entry with t1 before it asks ipconf again.
func renewingIPConf(t *testing.T, gw *fakeServer) (string, func() int32) {
	s, asked := newIPConfFunc(t, func(n int) (string, []string) {
		if n == 1 {
			return "t1", []string{gw.addr(), gw.addr()}
		}
		return "t2", []string{gw.addr()}
	})
	return s.URL, asked.Load
}

func TestTokenRenewedWhenRefused(t *testing.T) {
	var expired atomic.Bool
	gw := newServer(t, serverOpts{resume: resumeOK, acceptToken: func(tok string) bool { return tok == "t2" || tok == "t1" && !expired.Load() }})
	url, asked := renewingIPConf(t, gw)
	c := dial(t, gw, func(cfg *client.Config) {
		reconnecting(new(states))(cfg)
		cfg.Endpoints, cfg.Token, cfg.IPConfURL, cfg.Credential = nil, "", url, "cred"
	})
	sc := gw.accept()
	expired.Store(true)
	sc.drop()
	if sc2 := gw.accept(); sc2.resume == nil || sc2.resume.Token != "t2" || sc2.resume.PrevConnID != sc.id {
		t.Fatalf("want a Resume with the renewed token, got %+v", sc2.resume)
	}
	if n := asked(); n != 2 {
		t.Fatalf("ipconf asked %d times, want 2", n)
	}
	if gw.resumes.Load() != 2 {
		t.Fatalf("%d Resumes, want 2: one refused with the old token, one accepted with the new", gw.resumes.Load())
	}
	if err := c.Send(context.Background(), []byte("x")); err != nil {
		t.Fatal(err)
	}
}

func TestTokenRefusedAfterRenewalIsFinal(t *testing.T) {
	var refuse atomic.Bool
	gw := newServer(t, serverOpts{resume: resumeOK, acceptToken: func(string) bool { return !refuse.Load() }})
	url, asked := renewingIPConf(t, gw)
	c := dial(t, gw, func(cfg *client.Config) {
		reconnecting(new(states))(cfg)
		cfg.Endpoints, cfg.Token, cfg.IPConfURL, cfg.Credential = nil, "", url, "cred"
	})
	sc := gw.accept()
	refuse.Store(true)
	sc.drop()
	done(t, c)
	if codeOf(c.Err()) != protocol.CodeTokenInvalid || asked() != 2 {
		t.Fatalf("Err() = %v after %d ipconf requests; want code %d after 2", c.Err(), asked(), protocol.CodeTokenInvalid)
	}
}

func TestAppRefusalAfterRenewalIsFinal(t *testing.T) {
	gw := newServer(t, serverOpts{resume: resumeOK})
	ipconf, asked := newIPConfFunc(t, func(int) (string, []string) { return "tok", []string{gw.addr()} })
	c := dial(t, gw, func(cfg *client.Config) {
		reconnecting(new(states))(cfg)
		cfg.Endpoints, cfg.Token, cfg.IPConfURL, cfg.Credential = nil, "", ipconf.URL, "cred"
	})
	gw.accept().close(protocol.CodeForbidden) // the first time, a fresh token may help
	gw.accept().close(protocol.CodeForbidden) // with a fresh token all the same: it will not
	done(t, c)
	if codeOf(c.Err()) != protocol.CodeForbidden || asked.Load() != 2 {
		t.Fatalf("Err() = %v after %d ipconf requests; want code %d after 2", c.Err(), asked.Load(), protocol.CodeForbidden)
	}
}
