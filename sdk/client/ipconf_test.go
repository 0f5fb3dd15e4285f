package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/protocol"
)

// newIPConf serves /ip/list like ipconf: 400 without app_id or did, 401 without the credential
// "cred" as a bearer, otherwise the given endpoints.
func newIPConf(t *testing.T, token string, addrs ...string) *httptest.Server {
	s, _ := newIPConfFunc(t, func(int) (string, []string) { return token, addrs })
	return s
}

// newIPConfFunc is newIPConf answering what answer says for the nth valid request (from 1); the
// counter says how many there were.
func newIPConfFunc(t *testing.T, answer func(n int) (token string, addrs []string)) (*httptest.Server, *atomic.Int32) {
	var asked atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/ip/list" {
			http.NotFound(w, r)
			return
		}
		app, did := r.URL.Query().Get("app_id"), r.URL.Query().Get("did")
		fail := func(status int, code protocol.Code, msg string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
		}
		switch {
		case app == "":
			fail(http.StatusBadRequest, protocol.CodeInvalidArgument, "app_id is required")
			return
		case did == "":
			fail(http.StatusBadRequest, protocol.CodeInvalidArgument, "did is required")
			return
		case r.Header.Get("Authorization") != "Bearer cred":
			fail(http.StatusUnauthorized, protocol.CodeTokenInvalid, "a credential is required")
			return
		}
		token, addrs := answer(int(asked.Add(1)))
		if len(addrs) == 0 {
			fail(http.StatusServiceUnavailable, protocol.CodeNoGateway, "no gateway available")
			return
		}
		list := client.IPList{AppID: app, DID: did, Token: token, TokenExpiresAt: time.Now().Add(10 * time.Minute).Unix()}
		for i, a := range addrs {
			list.Endpoints = append(list.Endpoints, client.Endpoint{ID: "gw-" + string(rune('1'+i)), Addr: a, DynamicScore: 0.93, StaticScore: 12})
		}
		json.NewEncoder(w).Encode(list)
	}))
	t.Cleanup(s.Close)
	return s, &asked
}

func TestFetchEndpoints(t *testing.T) {
	s := newIPConf(t, "tok", "127.0.0.1:8900", "127.0.0.1:8901")
	list, err := client.FetchEndpoints(context.Background(), nil, s.URL+"/", "my app&x=1", "d 1/é", "cred")
	if err != nil {
		t.Fatal(err)
	}
	if list.AppID != "my app&x=1" || list.DID != "d 1/é" {
		t.Fatalf("parameters were not escaped: %+v", list)
	}
	want := client.Endpoint{ID: "gw-1", Addr: "127.0.0.1:8900", DynamicScore: 0.93, StaticScore: 12}
	if len(list.Endpoints) != 2 || list.Endpoints[0] != want || list.Token != "tok" || list.TokenExpiresAt < time.Now().Unix() {
		t.Fatalf("got %+v", list)
	}
}

func TestFetchEndpointsErrors(t *testing.T) {
	s := newIPConf(t, "tok", "127.0.0.1:8900")
	empty := newIPConf(t, "tok")
	for _, tt := range []struct {
		name, url, app, cred string
		code                 protocol.Code
		text                 string
	}{
		{"missing app", s.URL, "", "cred", protocol.CodeInvalidArgument, "app_id is required"},
		{"no credential", s.URL, "a", "", protocol.CodeTokenInvalid, "HTTP 401"},
		{"wrong credential", s.URL, "a", "forged", protocol.CodeTokenInvalid, "a credential is required"},
		{"no gateway", empty.URL, "a", "cred", protocol.CodeNoGateway, "no gateway available"},
		{"not ipconf", s.URL + "/nope", "a", "cred", 0, "404"},
	} {
		_, err := client.FetchEndpoints(context.Background(), s.Client(), tt.url, tt.app, "d", tt.cred)
		if err == nil || codeOf(err) != tt.code || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%s: got %v, want code %d and %q", tt.name, err, tt.code, tt.text)
		}
	}
}

func TestDialThroughIPConf(t *testing.T) {
	gw := newServer(t, serverOpts{token: "from-ipconf"})
	ipconf := newIPConf(t, "from-ipconf", refusedAddr(t), gw.addr())
	c, err := client.Dial(context.Background(), client.Config{IPConfURL: ipconf.URL, AppID: "demo", DID: "d1", Credential: "cred"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Endpoint() != gw.addr() {
		t.Fatalf("connected to %s, want the second endpoint %s", c.Endpoint(), gw.addr())
	}
	if sc := gw.accept(); sc.login.Token != "from-ipconf" {
		t.Fatalf("login carried token %q", sc.login.Token)
	}
}

func TestDialIPConfError(t *testing.T) {
	ipconf := newIPConf(t, "tok")
	_, err := client.Dial(context.Background(), client.Config{IPConfURL: ipconf.URL, AppID: "demo", DID: "d1", Credential: "cred"})
	if codeOf(err) != protocol.CodeNoGateway {
		t.Fatalf("got %v, want code %d", err, protocol.CodeNoGateway)
	}
}
