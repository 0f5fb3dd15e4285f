package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/protocol"
)

func TestDialConfigErrors(t *testing.T) {
	for name, cfg := range map[string]client.Config{
		"no app":           {DID: "d", Endpoints: []string{"x:1"}, Token: "t"},
		"no did":           {AppID: "a", Endpoints: []string{"x:1"}, Token: "t"},
		"endpoints no tok": {AppID: "a", DID: "d", Endpoints: []string{"x:1"}},
		"long did":         {AppID: "a", DID: strings.Repeat("d", protocol.MaxString+1), Endpoints: []string{"x:1"}, Token: "t"},
		"huge max body":    {AppID: "a", DID: "d", Endpoints: []string{"x:1"}, Token: "t", MaxBody: protocol.HardMaxBody + 1},
		"no credential":    {AppID: "a", DID: "d"},
	} {
		if _, err := client.Dial(context.Background(), cfg); err == nil {
			t.Errorf("%s: Dial succeeded", name)
		}
	}
}

func TestDialTokenErrorStops(t *testing.T) {
	for _, code := range []protocol.Code{protocol.CodeTokenInvalid, protocol.CodeTokenExpired, protocol.CodeTokenMismatch} {
		bad := newServer(t, serverOpts{loginCode: code})
		good := newServer(t, serverOpts{})
		_, err := client.Dial(context.Background(), client.Config{Endpoints: []string{bad.addr(), good.addr()}, Token: "tok", AppID: "a", DID: "d"})
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != code {
			t.Fatalf("got %v, want *protocol.Error %d", err, code)
		}
		if n := good.accepted.Load(); n != 0 {
			t.Fatalf("a token error must not try the next endpoint; it got %d connections", n)
		}
	}
}

func TestDialFallsBack(t *testing.T) {
	for name, first := range map[string]serverOpts{
		"login ack 1204": {loginCode: protocol.CodeShuttingDown},
		"login ack 1210": {loginCode: protocol.CodeStateLost},
		"login ack 1303": {loginCode: protocol.CodeOverloaded},
		"close 1204":     {loginClose: protocol.CodeShuttingDown},
		"login timeout":  {silentLogin: true},
	} {
		t.Run(name, func(t *testing.T) {
			bad := newServer(t, first)
			good := newServer(t, serverOpts{})
			c, err := client.Dial(context.Background(), client.Config{
				Endpoints: []string{refusedAddr(t), bad.addr(), good.addr()}, Token: "tok", AppID: "a", DID: "d",
				LoginTimeout: 100 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Endpoint() != good.addr() || bad.accepted.Load() != 1 {
				t.Fatalf("connected to %s (bad server saw %d connections)", c.Endpoint(), bad.accepted.Load())
			}
		})
	}
}

func TestDialOtherRefusalStops(t *testing.T) {
	bad := newServer(t, serverOpts{loginClose: protocol.CodeKicked})
	good := newServer(t, serverOpts{})
	_, err := client.Dial(context.Background(), client.Config{Endpoints: []string{bad.addr(), good.addr()}, Token: "tok", AppID: "a", DID: "d"})
	if codeOf(err) != protocol.CodeKicked || good.accepted.Load() != 0 {
		t.Fatalf("got %v and %d connections to the next endpoint", err, good.accepted.Load())
	}
}

func TestDialAllFail(t *testing.T) {
	a, b := refusedAddr(t), refusedAddr(t)
	_, err := client.Dial(context.Background(), client.Config{Endpoints: []string{a, b}, Token: "t", AppID: "a", DID: "d"})
	if err == nil || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) {
		t.Fatalf("got %v, want an error naming both endpoints", err)
	}
}

func TestDialContextCancelled(t *testing.T) {
	s := newServer(t, serverOpts{silentLogin: true})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := client.Dial(ctx, client.Config{Endpoints: []string{s.addr(), s.addr()}, Token: "t", AppID: "a", DID: "d", LoginTimeout: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	if time.Since(start) > 2*time.Second || s.accepted.Load() != 1 {
		t.Fatalf("Dial took %s and made %d connections after its context ended", time.Since(start), s.accepted.Load())
	}
}

func TestDialSkipsWhatIsNotAGateway(t *testing.T) {
	// An HTTP server answers the Login with bytes that are not a frame (a bad magic): that says
	// nothing about the device, so the next endpoint is tried.
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()
	good := newServer(t, serverOpts{})
	c, err := client.Dial(context.Background(), client.Config{
		Endpoints: []string{strings.TrimPrefix(web.URL, "http://"), good.addr()}, Token: "tok", AppID: "a", DID: "d",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Endpoint() != good.addr() {
		t.Fatalf("connected to %s, want %s", c.Endpoint(), good.addr())
	}
}
