package ipconf

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/internal/natsd/natsdtest"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/testkit"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// registryOn opens a registry on its own NATS connection to url, as one process would.
func registryOn(t *testing.T, url, name string) *registry.NATS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, js, err := registry.Connect(ctx, url, name, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	reg, err := registry.NewNATS(ctx, js, registry.NATSConfig{Bucket: "ipconf_outage", TTL: 3 * time.Second, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	return reg
}

// keepGateway keeps a gateway registered, every 200ms, as a live gateway does every second.
func keepGateway(t *testing.T, reg registry.Registry, n registry.Node) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stopped, err := registry.Keep(ctx, reg, 200*time.Millisecond, func() registry.Node { return n }, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-stopped })
}

// sortedIDs are the endpoints' gateway IDs in order.
func sortedIDs(eps []Endpoint) []string {
	out := ids(eps)
	slices.Sort(out)
	return out
}

func health(t *testing.T, s *Server) string {
	t.Helper()
	resp, err := client.Get("http://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct{ Registry string }
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h.Registry
}

// TestListWhileNATSRestarts stops the lone NATS server, whose registry bucket is in memory, and
// starts it again on the same address. While it is away ipconf keeps answering with the gateways
// it last knew, marked stale, although nobody reports; once it is back, the gateways register
// again, answers are fresh, and a gateway that arrives after the restart is handed out. An ipconf
// told to keep no stale list (keep_stale 0) answers 503 meanwhile instead.
func TestListWhileNATSRestarts(t *testing.T) {
	srv := natsdtest.Standalone(t, quiet)
	fleet := registryOn(t, srv.URL(), "gateways")
	keepGateway(t, fleet, gateway("gw-1", "127.0.0.1:9001", 5e9, 10))
	keepGateway(t, fleet, gateway("gw-2", "127.0.0.1:9002", 4e9, 10))
	s := startServer(t, Config{StaleAfter: time.Second}, registryOn(t, srv.URL(), "ipconf"))
	strict := startServer(t, Config{StaleAfter: time.Second, KeepStale: -1}, registryOn(t, srv.URL(), "ipconf-strict"))
	const q = "/ip/list?app_id=demo&did=d1"
	for _, srv := range []*Server{s, strict} {
		poll.Within(t, 20*time.Second, "both gateways handed out", func() bool {
			r := get(t, srv, q)
			return r.status == http.StatusOK && slices.Equal(sortedIDs(r.list.Endpoints), []string{"gw-1", "gw-2"}) && !r.list.Stale
		})
	}

	srv.Stop()
	stopped := time.Now()
	poll.Within(t, 20*time.Second, "ipconf to know the registry is away", func() bool { return health(t, s) == "stale" })
	// Three times StaleAfter without a report: every gateway would be left out but for the
	// stale view.
	for time.Since(stopped) < 3*time.Second {
		r := get(t, s, q)
		if r.status != http.StatusOK || !r.list.Stale || !slices.Equal(sortedIDs(r.list.Endpoints), []string{"gw-1", "gw-2"}) {
			t.Fatalf("answer %v after NATS went away: %d %s", time.Since(stopped).Round(time.Millisecond), r.status, r.raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
	poll.Within(t, 20*time.Second, "the strict ipconf to answer 503", func() bool {
		r := get(t, strict, q)
		return r.status == http.StatusServiceUnavailable && r.err.Error.Code == protocol.CodeNoGateway &&
			strings.Contains(r.err.Error.Message, "registry has been unreachable")
	})

	srv.Start()
	back := time.Now()
	poll.Within(t, 20*time.Second, "fresh answers after NATS came back", func() bool {
		r := get(t, s, q)
		if r.status != http.StatusOK || !slices.Equal(sortedIDs(r.list.Endpoints), []string{"gw-1", "gw-2"}) {
			t.Fatalf("answer %v after NATS came back: %d %s", time.Since(back).Round(time.Millisecond), r.status, r.raw)
		}
		return !r.list.Stale
	})
	t.Logf("fresh answers %v after NATS came back", time.Since(back).Round(time.Millisecond))
	if h := health(t, s); h != "current" {
		t.Errorf("healthz registry %q after the outage", h)
	}
	keepGateway(t, fleet, gateway("gw-3", "127.0.0.1:9003", 3e9, 10))
	for _, srv := range []*Server{s, strict} {
		poll.Within(t, 20*time.Second, "the new gateway handed out", func() bool {
			r := get(t, srv, q)
			return r.status == http.StatusOK && slices.Equal(sortedIDs(r.list.Endpoints), []string{"gw-1", "gw-2", "gw-3"}) && !r.list.Stale
		})
	}
	if n := s.staleAnswers.Load(); n == 0 {
		t.Error("no stale answer counted")
	}
}

// rankTime's rule, without a registry: gateways are judged against the last time ipconf heard
// from the registry; once it is known to be away, for KeepStale; then against now.
func TestRankTime(t *testing.T) {
	now := time.Unix(1_790_000_000, 0)
	heard := now.Add(-time.Minute)
	for _, tc := range []struct {
		name       string
		keep       time.Duration
		staleSince time.Time // zero: the registry is current
		heard      time.Time
		want       time.Time
		wantStale  bool
	}{
		{"current, heard just now", time.Minute, time.Time{}, now, now, false},
		{"current, every report stopped a minute ago", time.Minute, time.Time{}, heard, heard, false},
		{"current, clock behind the last event", time.Minute, time.Time{}, now.Add(time.Second), now, false},
		{"stale within keep_stale", 5 * time.Minute, now.Add(-4 * time.Minute), heard, heard, true},
		{"stale past keep_stale", 5 * time.Minute, now.Add(-6 * time.Minute), heard, now, true},
		{"stale, keep_stale 0", -1, now.Add(-time.Second), heard, now, true},
	} {
		s := &Server{cfg: Config{KeepStale: tc.keep}}
		s.heardAt.Store(tc.heard.UnixNano())
		if !tc.staleSince.IsZero() {
			s.staleSince.Store(tc.staleSince.UnixNano())
		}
		got, stale := s.rankTime(now)
		if !got.Equal(tc.want) || stale != tc.wantStale {
			t.Errorf("%s: rankTime = %v, %v; want %v, %v", tc.name, got, stale, tc.want, tc.wantStale)
		}
	}
}

// TestOneGatewayBackDoesNotHideTheOthers: after an outage of the registry, the first gateway to
// register again must not make the others, not registered again yet, look gone: until the view is
// current again they are ranked as when the registry was last heard from.
func TestOneGatewayBackDoesNotHideTheOthers(t *testing.T) {
	s := &Server{cfg: Config{KeepStale: time.Minute}, scorer: NewScorer(DefaultWindow, 50*time.Millisecond), log: testkit.Logger(t)}
	events := make(chan registry.Event)
	done := make(chan struct{})
	go func() { defer close(done); s.consume(t.Context(), events, nil) }()
	gw := func(id, ep string) registry.Node {
		return registry.Node{ID: id, Role: registry.RoleGateway, Endpoint: ep, UpdatedAt: time.Now()}
	}
	listed := func() []string {
		at, _ := s.rankTime(time.Now())
		return sortedIDs(s.scorer.Rank(at, 8, nil))
	}
	events <- registry.Event{Type: registry.EventPut, Node: gw("gw-1", "127.0.0.1:1")}
	events <- registry.Event{Type: registry.EventStale, At: time.Now()}
	time.Sleep(200 * time.Millisecond) // well past stale_after: gw-1 has not reported since
	events <- registry.Event{Type: registry.EventPut, Node: gw("gw-2", "127.0.0.1:2")}
	events <- registry.Event{Type: registry.EventDelete, Node: registry.Node{ID: "nobody"}} // taken once gw-2's put is handled
	if got := listed(); !slices.Equal(got, []string{"gw-1", "gw-2"}) {
		t.Fatalf("while the registry view is rebuilt: %v, want gw-1 (not re-registered yet) and gw-2", got)
	}
	events <- registry.Event{Type: registry.EventPut, Node: gw("gw-1", "127.0.0.1:1")}
	events <- registry.Event{Type: registry.EventFresh, At: time.Now()}
	events <- registry.Event{Type: registry.EventDelete, Node: registry.Node{ID: "nobody"}} // taken once the fresh is handled
	if got := listed(); !slices.Equal(got, []string{"gw-1", "gw-2"}) {
		t.Fatalf("once current again: %v", got)
	}
	close(events)
	<-done
}
