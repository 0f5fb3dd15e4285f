package platform_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/internal/bizlink"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/testkit"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

const webhookSecret = "e2e-webhook-secret-0123"

// hookServer is a webhook business server in Go on loopback: it verifies every request's
// signature and timestamp as docs/business.md tells receivers to, records the events, and fails
// /deliver with HTTP 500 while fail says so.
type hookServer struct {
	t   *testing.T
	srv *httptest.Server
	mu  sync.Mutex
	evs []bizlink.Event
	// fail decides whether a /deliver carrying these events is answered 500.
	fail func([]bizlink.Event) bool
	// hold, when set, is how long a /deliver carrying an uplink waits before it answers.
	hold    time.Duration
	refused int // deliveries answered 500
	bad     int // requests whose signature or timestamp did not verify
}

func startHook(t *testing.T) *hookServer {
	h := &hookServer{t: t}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookServer) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	if err := bizlink.Verify(webhookSecret, r.Header.Get(bizlink.HeaderTimestamp), r.Header.Get(bizlink.HeaderSignature), body, time.Now(), bizlink.DefaultTolerance); err != nil {
		h.mu.Lock()
		h.bad++
		h.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	switch r.URL.Path {
	case "/plato/sessions":
		_, _ = io.WriteString(w, `{"sessions":[]}`)
	case "/plato/authenticate":
		var a struct{ DID, Credential string }
		if err := json.Unmarshal(body, &a); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if a.Credential == "session-of-"+a.DID {
			_ = json.NewEncoder(w).Encode(map[string]any{"code": 0, "uid": "user-of-" + a.DID})
			return
		}
		_, _ = io.WriteString(w, `{"code":2042,"message":"no such session"}`)
	case "/plato/deliver":
		var d bizlink.Deliver
		if err := json.Unmarshal(body, &d); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		if hold := h.hold; hold > 0 && slices.ContainsFunc(d.Events, func(ev bizlink.Event) bool { return ev.Kind == "UPLINK" }) {
			h.mu.Unlock()
			time.Sleep(hold)
			h.mu.Lock()
		}
		if h.fail != nil && h.fail(d.Events) {
			h.refused++
			h.mu.Unlock()
			http.Error(w, "not now", http.StatusInternalServerError)
			return
		}
		h.evs = append(h.evs, d.Events...)
		h.mu.Unlock()
		res := make([]map[string]any, len(d.Events))
		for i := range res {
			res[i] = map[string]any{"code": 0}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"results": res})
	default:
		http.NotFound(w, r)
	}
}

func (h *hookServer) url() string { return h.srv.URL + "/plato" }

func (h *hookServer) events(kind, did string) []bizlink.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []bizlink.Event
	for _, ev := range h.evs {
		if ev.Kind == kind && (did == "" || ev.DID == did) {
			out = append(out, ev)
		}
	}
	return out
}

func (h *hookServer) set(f func(h *hookServer)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

// webhookApp makes the demo app's business the webhook endpoints.
func webhookApp(urls ...string) func(*config.Config) {
	return func(cfg *config.Config) {
		a := cfg.Apps["demo"]
		a.Business, a.Businesses, a.WebhookSecret = "", urls, webhookSecret
		cfg.Apps["demo"] = a
	}
}

func TestWebhookDeliversSignedUplinksAndEvents(t *testing.T) {
	hook := startHook(t)
	p, _ := startAll(t, func(c *config.Config) {
		webhookApp(hook.url())(c)
		c.State.Business.Timeout = 2 * time.Second // the late answer below is later than this
	})
	alice := dial(t, p, "alice")
	poll.Within(t, 10*time.Second, "the webhook to get alice's CONNECTED", func() bool {
		return len(hook.events("CONNECTED", "alice")) == 1
	})
	if ev := hook.events("CONNECTED", "alice")[0]; ev.AppID != "demo" || ev.UID != "u-alice" || ev.ConnID != int64(alice.ConnID()) || ev.GatewayID == "" {
		t.Fatalf("CONNECTED: %+v", ev)
	}

	t.Run("an uplink is ACKed after the webhook answered", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := range 5 {
			if err := alice.Send(ctx, fmt.Appendf(nil, "hello %d", i)); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		ups := hook.events("UPLINK", "alice")
		if len(ups) != 5 {
			t.Fatalf("the webhook had %d uplinks when the 5 ACKs came, want 5", len(ups))
		}
		for i, ev := range ups {
			if got, _ := base64.StdEncoding.DecodeString(ev.Payload); string(got) != fmt.Sprintf("hello %d", i) || ev.Seq <= 0 {
				t.Fatalf("uplink %d: %+v (payload %q)", i, ev, got)
			}
		}
	})

	t.Run("a non-2xx answer leaves the uplink unACKed: the device gets 1301", func(t *testing.T) {
		hook.set(func(h *hookServer) { h.fail = func([]bizlink.Event) bool { return true } })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := alice.Send(ctx, []byte("refused by a 500"))
		if code, _ := protocol.CodeOf(err); code != protocol.CodeBusinessUnavailable {
			t.Fatalf("send: %v, want code %d", err, protocol.CodeBusinessUnavailable)
		}
		hook.set(func(h *hookServer) { h.fail = nil })
		if err := alice.Send(ctx, []byte("accepted again")); err != nil {
			t.Fatalf("send after the webhook recovered: %v", err)
		}
	})

	t.Run("an answer later than state.business.timeout leaves the uplink unACKed: the device gets 1302", func(t *testing.T) {
		hook.set(func(h *hookServer) { h.hold = 5 * time.Second })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := alice.Send(ctx, []byte("answered too late"))
		if code, _ := protocol.CodeOf(err); code != protocol.CodeBusinessTimeout {
			t.Fatalf("send: %v, want code %d", err, protocol.CodeBusinessTimeout)
		}
		hook.set(func(h *hookServer) { h.hold = 0 })
		if err := alice.Send(ctx, []byte("on time again")); err != nil {
			t.Fatalf("send after the webhook answered in time again: %v", err)
		}
	})

	t.Run("an event whose delivery failed is retried until it gets through", func(t *testing.T) {
		// The first three deliveries carrying bob's DISCONNECTED fail.
		hook.set(func(h *hookServer) {
			n := 0
			h.fail = func(evs []bizlink.Event) bool {
				for _, ev := range evs {
					if ev.Kind == "DISCONNECTED" && ev.DID == "bob" {
						n++
						return n <= 3
					}
				}
				return false
			}
		})
		bob := dial(t, p, "bob")
		bob.Close()
		poll.Within(t, 30*time.Second, "bob's DISCONNECTED to get through on a retry", func() bool {
			return len(hook.events("DISCONNECTED", "bob")) == 1
		})
		hook.set(func(h *hookServer) {
			if h.refused < 3 {
				t.Errorf("the webhook refused %d deliveries, want at least 3 before the retry got through", h.refused)
			}
			if h.bad != 0 {
				t.Errorf("%d requests did not verify", h.bad)
			}
		})
	})
}

func TestWebhookEndpointsShareLoadAndFailOver(t *testing.T) {
	a, b := startHook(t), startHook(t)
	p, _ := startAll(t, webhookApp(a.url(), b.url()))
	shareAndFailOver(t, p,
		func() (int, int) { return len(a.events("UPLINK", "")), len(b.events("UPLINK", "")) },
		a.srv.Close)
}

// TestKitexEndpointsShareLoadAndFailOver: the same with two Kitex business servers.
func TestKitexEndpointsShareLoadAndFailOver(t *testing.T) {
	a, stopA := testkit.ServeBusiness(t)
	b, stopB := testkit.ServeBusiness(t)
	t.Cleanup(stopB)
	p, _ := startAll(t, func(cfg *config.Config) {
		d := cfg.Apps["demo"]
		d.Business, d.Businesses = "", []string{a.Addr, b.Addr}
		cfg.Apps["demo"] = d
	})
	shareAndFailOver(t, p,
		func() (int, int) {
			return len(a.Events(api.EventKind_UPLINK, "")), len(b.Events(api.EventKind_UPLINK, ""))
		},
		stopA)
}

// shareAndFailOver has 4 devices send 40 uplinks, checks both endpoints got some, kills the first
// and checks the next 40 are all ACKed, by the second.
func shareAndFailOver(t *testing.T, p *platform.Platform, counts func() (int, int), kill func()) {
	t.Helper()
	devs := make([]*client.Client, 4)
	for i := range devs {
		devs[i] = dial(t, p, fmt.Sprintf("d%d", i))
	}
	send := func(round int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		errs := make(chan error, len(devs)*10)
		for i, d := range devs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 10 {
					if err := d.Send(ctx, fmt.Appendf(nil, "r%d d%d m%d", round, i, j)); err != nil {
						errs <- fmt.Errorf("d%d message %d: %w", i, j, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	send(0)
	na, nb := counts()
	if na+nb != 40 || na == 0 || nb == 0 {
		t.Fatalf("uplinks: %d at the first endpoint, %d at the second; want 40 shared by both", na, nb)
	}
	kill()
	send(1)
	if _, got := counts(); got != nb+40 {
		t.Fatalf("after the first endpoint died the second got %d more uplinks, want all 40", got-nb)
	}
	if got, _ := counts(); got != na {
		t.Fatalf("the dead endpoint recorded %d more uplinks", got-na)
	}
}

// TestWebhookAuthenticatesDevices: ipconf asks a webhook business who a device is
// (apps.<app>.auth.callback), and the uid it answers is the one its uplinks carry.
func TestWebhookAuthenticatesDevices(t *testing.T) {
	hook := startHook(t)
	p, _ := startAll(t, func(c *config.Config) {
		c.Apps["cb"] = config.App{Keys: map[string]string{"k": "cb-key-of-16-bytes"}, Business: hook.url(),
			WebhookSecret: webhookSecret, Auth: config.AppAuth{Callback: true}}
	})
	c, err := connectAs(t, p, "cb", "dev-1", "", "session-of-dev-1")
	if err != nil {
		t.Fatalf("a device with a session the webhook knows: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Send(ctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if ups := hook.events("UPLINK", "dev-1"); len(ups) != 1 || ups[0].UID != "user-of-dev-1" || ups[0].AppID != "cb" {
		t.Fatalf("uplinks %+v, want one of uid user-of-dev-1, app cb", ups)
	}
	_, err = client.FetchEndpoints(ctx, nil, "http://"+p.IPConf.Addr(), "cb", "dev-2", "session-of-dev-1")
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != 2042 {
		t.Fatalf("a session the webhook refuses: %v, want code 2042", err)
	}
}
