package ipconf

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/natsd"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

var testSecret = []byte("ipconf-test-secret-0123456789")

// The test apps: demo and other, whose devices carry JWTs signed with jwtSecret (kid "dev").
const jwtSecret = "ipconf-test-jwt-secret-of-32-bytes"

func testApps(t testing.TB) *apps.Table {
	t.Helper()
	table, err := apps.New(map[string]config.App{
		"demo":  config.SimpleApp("ipconf-test-key-demo", jwtSecret, ""),
		"other": config.SimpleApp("ipconf-test-key-other", "another-ipconf-jwt-secret-32-bytes", ""),
	}, apps.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// jwtFor is a JWT for app/did/uid as the app's backend would sign it, valid for an hour.
func jwtFor(t testing.TB, app, did, uid string, mutate func(jwt.MapClaims)) string {
	t.Helper()
	c := jwt.MapClaims{"sub": uid, "did": did, "aud": app, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	if mutate != nil {
		mutate(c)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header["kid"] = "dev"
	s, err := tok.SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var quiet = slog.New(slog.DiscardHandler)

// client closes its connections after each request: an idle keep-alive connection holds
// Shutdown for exitWaitTimeout (TestShutdownWithKeepAlive covers that case).
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// startRegistry runs embedded NATS on a random port and returns a NATS registry on it.
func startRegistry(t *testing.T) *registry.NATS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := natsd.Start(ctx, natsd.Config{StoreDir: t.TempDir()}, quiet)
	if err != nil {
		t.Fatalf("starting nats: %v", err)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	nc, js, err := registry.Connect(ctx, srv.ClientURL(), "ipconf-test", quiet)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	t.Cleanup(nc.Close)
	reg, err := registry.NewNATS(ctx, js, registry.NATSConfig{Bucket: "ipconf_test", TTL: time.Minute, Log: quiet})
	if err != nil {
		t.Fatalf("creating registry: %v", err)
	}
	t.Cleanup(reg.Close)
	return reg
}

func startServer(t *testing.T, cfg Config, reg registry.Registry) *Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.TokenSecret == nil {
		cfg.TokenSecret = testSecret
	}
	if cfg.Apps == nil {
		cfg.Apps = testApps(t)
	}
	s, err := New(cfg, reg, quiet)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

type reply struct {
	status int
	list   listResponse
	err    errorResponse
	raw    string
}

// get asks with the credential of the query's app and did (uid "u-" + did), as the device would.
func get(t *testing.T, s *Server, pathAndQuery string) reply {
	t.Helper()
	cred := ""
	if u, err := url.Parse(pathAndQuery); err == nil {
		q := u.Query()
		cred = jwtFor(t, q.Get("app_id"), q.Get("did"), "u-"+q.Get("did"), nil)
	}
	return getWith(t, s, pathAndQuery, "Bearer "+cred)
}

// getWith asks with the Authorization header auth ("" for none).
func getWith(t *testing.T, s *Server, pathAndQuery, auth string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+s.Addr()+pathAndQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", pathAndQuery, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, raw: string(body)}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("GET %s: content type %q", pathAndQuery, ct)
	}
	if resp.StatusCode == http.StatusOK {
		err = json.Unmarshal(body, &r.list)
	} else {
		err = json.Unmarshal(body, &r.err)
	}
	if err != nil {
		t.Fatalf("GET %s: decoding %q: %v", pathAndQuery, body, err)
	}
	return r
}

// reporter keeps putting gateway nodes once every 200ms, as live gateways do every second.
type reporter struct {
	mu    sync.Mutex
	nodes map[string]registry.Node
}

func (r *reporter) set(n registry.Node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nodes[n.ID] = n
}

func (r *reporter) stop(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.nodes, id)
}

func startReporter(t *testing.T, reg registry.Registry) *reporter {
	r := &reporter{nodes: map[string]registry.Node{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			r.mu.Lock()
			nodes := make([]registry.Node, 0, len(r.nodes))
			for _, n := range r.nodes {
				nodes = append(nodes, n)
			}
			r.mu.Unlock()
			for _, n := range nodes {
				if err := reg.Put(ctx, n); err != nil && ctx.Err() == nil {
					t.Errorf("put %s: %v", n.ID, err)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return r
}

func gateway(id, addr string, remaining float64, conns int64) registry.Node {
	return registry.Node{
		ID: id, Role: registry.RoleGateway, Endpoint: addr, RPCNetwork: "tcp", RPCAddr: "127.0.0.1:1",
		Load: registry.Load{Conns: conns, BandwidthBytesPerSec: remaining + 1500, BytesInPerSec: 1000, BytesOutPerSec: 500},
	}
}

func TestListEndToEnd(t *testing.T) {
	reg := startRegistry(t)
	s := startServer(t, Config{StaleAfter: 2 * time.Second}, reg)

	// No gateway yet: 503 with the no-gateway code.
	r := get(t, s, "/ip/list?app_id=demo&did=d1")
	if r.status != http.StatusServiceUnavailable || r.err.Error.Code != protocol.CodeNoGateway {
		t.Fatalf("without gateways: %d %s", r.status, r.raw)
	}

	rep := startReporter(t, reg)
	rep.set(gateway("gw-1", "127.0.0.1:8901", 0.93e9, 12))
	rep.set(gateway("gw-2", "127.0.0.1:8902", 2.5e9, 800))
	rep.set(gateway("gw-3", "127.0.0.1:8903", 0.931e9, 3)) // same rounded headroom as gw-1, fewer conns
	rep.set(gateway("gw-4", "127.0.0.1:8904", 0.1e9, 0))

	poll.Until(t, "four endpoints", func() bool {
		r = get(t, s, "/ip/list?app_id=demo&did=d1")
		return r.status == http.StatusOK && len(r.list.Endpoints) == 4
	})
	want := []Endpoint{
		{ID: "gw-2", Addr: "127.0.0.1:8902", DynamicScore: 2.5, StaticScore: 800},
		{ID: "gw-3", Addr: "127.0.0.1:8903", DynamicScore: 0.93, StaticScore: 3},
		{ID: "gw-1", Addr: "127.0.0.1:8901", DynamicScore: 0.93, StaticScore: 12},
		{ID: "gw-4", Addr: "127.0.0.1:8904", DynamicScore: 0.1, StaticScore: 0},
	}
	for i, ep := range r.list.Endpoints {
		if ep != want[i] {
			t.Errorf("endpoint %d = %+v, want %+v", i, ep, want[i])
		}
	}
	if r.list.AppID != "demo" || r.list.DID != "d1" || r.list.UID != "u-d1" {
		t.Errorf("echoed app_id/did/uid = %q/%q/%q", r.list.AppID, r.list.DID, r.list.UID)
	}

	// The token verifies with the shared secret for this app ID and did only, and binds the uid
	// the credential proved.
	v, err := token.NewSigner(testSecret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if c, err := v.Verify(r.list.Token, "demo", "d1", now); err != nil || c.UID != "u-d1" {
		t.Errorf("token does not verify, or binds another uid: %+v, %v", c, err)
	}
	if _, err := v.Verify(r.list.Token, "demo", "d2", now); func() protocol.Code { c, _ := protocol.CodeOf(err); return c }() != protocol.CodeTokenMismatch {
		t.Errorf("token verified for another did: %v", err)
	}
	if exp := time.Unix(r.list.TokenExpiresAt, 0); exp.Before(now.Add(config.DefaultTokenTTL-time.Minute)) || exp.After(now.Add(config.DefaultTokenTTL+time.Minute)) {
		t.Errorf("token_expires_at %v is not about auth.token_ttl from now", exp)
	}

	// A deregistered gateway is no longer handed out.
	rep.stop("gw-2")
	if err := reg.Delete(context.Background(), registry.RoleGateway, "gw-2"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "gw-2 to leave", func() bool {
		r = get(t, s, "/ip/list?app_id=demo&did=d1")
		return r.status == http.StatusOK && len(r.list.Endpoints) == 3 && r.list.Endpoints[0].ID == "gw-3"
	})

	// One that stops reporting goes stale (StaleAfter 2s) although its registry entry lives on.
	rep.stop("gw-3")
	poll.Until(t, "gw-3 to go stale", func() bool {
		r = get(t, s, "/ip/list?app_id=demo&did=d1")
		return r.status == http.StatusOK && len(r.list.Endpoints) == 2 && r.list.Endpoints[0].ID == "gw-1"
	})

	h := get(t, s, "/healthz")
	if h.status != http.StatusOK || !strings.Contains(h.raw, `"status":"ok"`) {
		t.Errorf("healthz: %d %s", h.status, h.raw)
	}
}

func TestListTopEight(t *testing.T) {
	reg := startRegistry(t)
	s := startServer(t, Config{}, reg)
	rep := startReporter(t, reg)
	for i := range 12 {
		id := "gw-" + string(rune('a'+i))
		rep.set(gateway(id, "127.0.0.1:9"+string(rune('0'+i%10)), float64(i)*1e9, 0))
	}
	var r reply
	poll.Until(t, "twelve gateways known", func() bool {
		r = get(t, s, "/ip/list?app_id=demo&did=d1")
		return r.status == http.StatusOK && len(r.list.Endpoints) == 8 && r.list.Endpoints[0].ID == "gw-l" && s.scorer.Len() == 12
	})
	r = get(t, s, "/ip/list?app_id=demo&did=d1")
	for i, ep := range r.list.Endpoints {
		if want := "gw-" + string(rune('l'-i)); ep.ID != want {
			t.Errorf("endpoint %d = %s, want %s", i, ep.ID, want)
		}
	}
}

func TestListBadRequests(t *testing.T) {
	s := startServer(t, Config{}, startRegistry(t))
	long := strings.Repeat("x", MaxParamLen+1)
	for _, tc := range []struct {
		query, msg string
	}{
		{"", "app_id is required"},
		{"did=d1", "app_id is required"},
		{"app_id=&did=d1", "app_id is required"},
		{"app_id=demo", "did is required"},
		{"app_id=demo&did=", "did is required"},
		{"app_id=" + long + "&did=d1", "app_id is longer than 128 bytes"},
		{"app_id=demo&did=" + long, "did is longer than 128 bytes"},
		{"app_id=de%00mo&did=d1", "app_id must be printable UTF-8"},
		{"app_id=demo&did=d%0A1", "did must be printable UTF-8"},
		{"app_id=demo&did=%FF", "did must be printable UTF-8"},
	} {
		r := get(t, s, "/ip/list?"+tc.query)
		if r.status != http.StatusBadRequest || r.err.Error.Code != protocol.CodeInvalidArgument || r.err.Error.Message != tc.msg {
			t.Errorf("?%s: %d %s, want 400 %q", tc.query, r.status, r.raw, tc.msg)
		}
	}
	// Exactly the limit, and non-ASCII printable text, are fine: an app of 128 bytes is not
	// configured (403), and a did in Chinese passes to the gateways (503 here: there are none).
	ok := strings.Repeat("x", MaxParamLen)
	if r := get(t, s, "/ip/list?app_id="+ok+"&did=d1"); r.status != http.StatusForbidden {
		t.Errorf("an app ID at the limit: %d %s, want 403", r.status, r.raw)
	}
	if r := get(t, s, "/ip/list?app_id=demo&did="+url.QueryEscape("设备 1")); r.status != http.StatusServiceUnavailable {
		t.Errorf("a did in Chinese: %d %s, want 503", r.status, r.raw)
	}
}

func TestStartAddressTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := New(Config{Addr: ln.Addr().String(), TokenSecret: testSecret, Apps: testApps(t)}, startRegistry(t), quiet)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Start on a taken address: %v", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown after a failed Start: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	reg := registry.Registry(nil)
	if _, err := New(Config{TokenSecret: testSecret, Apps: testApps(t)}, reg, quiet); err == nil {
		t.Error("nil registry accepted")
	}
	var fake fakeRegistry
	for name, cfg := range map[string]Config{
		"short secret":  {TokenSecret: []byte("short"), Apps: testApps(t)},
		"too many":      {TokenSecret: testSecret, MaxEndpoints: 9, Apps: testApps(t)},
		"negative ttl":  {TokenSecret: testSecret, TokenTTL: -time.Second, Apps: testApps(t)},
		"negative max":  {TokenSecret: testSecret, MaxEndpoints: -1, Apps: testApps(t)},
		"negative keep": {TokenSecret: testSecret, StaleAfter: -time.Second, Apps: testApps(t)},
		"no apps":       {TokenSecret: testSecret},
	} {
		if _, err := New(cfg, fake, quiet); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s, err := New(Config{TokenSecret: testSecret, Apps: testApps(t)}, fake, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Addr != config.DefaultIPConfAddr || s.cfg.TokenTTL != config.DefaultTokenTTL || s.cfg.MaxEndpoints != 8 || s.cfg.StaleAfter != config.DefaultStaleAfter || s.cfg.KeepStale != config.DefaultKeepStale {
		t.Errorf("defaults not applied: %+v", s.cfg)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown before Start: %v", err)
	}
}

// fakeRegistry is enough for tests that never start the server.
type fakeRegistry struct{}

func (fakeRegistry) Put(context.Context, registry.Node) error                     { return nil }
func (fakeRegistry) Delete(context.Context, registry.Role, string) error          { return nil }
func (fakeRegistry) List(context.Context, registry.Role) ([]registry.Node, error) { return nil, nil }
func (fakeRegistry) Watch(context.Context, registry.Role) (<-chan registry.Event, error) {
	return nil, errors.New("not implemented")
}
func (fakeRegistry) Resets() <-chan struct{} { return nil }

func TestShutdownWithKeepAlive(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", TokenSecret: testSecret, Apps: testApps(t)}, startRegistry(t), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	keepAlive := &http.Client{Transport: &http.Transport{}}
	defer keepAlive.CloseIdleConnections()
	resp, err := keepAlive.Get("http://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 3*exitWaitTimeout {
		t.Errorf("Shutdown took %v with an idle keep-alive connection", d)
	}
	if _, err := client.Get("http://" + s.Addr() + "/healthz"); err == nil {
		t.Error("server still answers after Shutdown")
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

// syncBuffer collects log output written from server goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.WriteString(string(p))
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Hertz's logs reach the running Server's logger, and stop reaching it after its Shutdown.
func TestHertzLogsFollowTheRunningServer(t *testing.T) {
	reg := startRegistry(t)
	run := func(out *syncBuffer) {
		logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
		s, err := New(Config{Addr: "127.0.0.1:0", TokenSecret: testSecret, Apps: testApps(t)}, reg, logger)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	var first, second syncBuffer
	run(&first)
	if !strings.Contains(first.String(), "component=hertz") {
		t.Fatalf("no hertz logs in the server's logger:\n%s", first.String())
	}
	before := first.String()
	run(&second)
	if !strings.Contains(second.String(), "component=hertz") {
		t.Errorf("second server got no hertz logs:\n%s", second.String())
	}
	if first.String() != before {
		t.Errorf("a stopped server's logger still receives logs:\n%s", strings.TrimPrefix(first.String(), before))
	}
}
