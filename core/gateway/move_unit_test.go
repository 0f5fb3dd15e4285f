package gateway

import (
	"slices"
	"testing"
	"time"
)

func TestPacerSpacesActionsAtItsRate(t *testing.T) {
	t0 := time.Unix(1_790_000_000, 0)
	p := pacer{rate: 500, start: t0}
	if d := p.due(t0); d != 0 {
		t.Fatalf("first action due in %v, want at once", d)
	}
	p.sent = 1
	if d := p.due(t0); d != 2*time.Millisecond {
		t.Fatalf("second action due in %v, want 2ms at 500/s", d)
	}
	p.sent = 500
	if d := p.due(t0.Add(900 * time.Millisecond)); d != 100*time.Millisecond {
		t.Fatalf("501st action due in %v at +900ms, want 100ms", d)
	}
	// Behind schedule (a slow pass): what is due goes at once, and never more than the rate over
	// the whole run.
	if d := p.due(t0.Add(5 * time.Second)); d != 0 {
		t.Fatalf("due in %v when behind, want at once", d)
	}
}

func TestPacerWaitCounts(t *testing.T) {
	p := pacer{rate: 1000, start: time.Now()}
	for range 20 {
		if err := p.wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if p.sent != 20 {
		t.Fatalf("sent %d, want 20", p.sent)
	}
	// 20 actions at 1000/s cannot all have gone before the 20th was due.
	if el := time.Since(p.start); el < 19*time.Millisecond {
		t.Fatalf("20 actions at 1000/s took %v, want at least 19ms", el)
	}
}

func TestSpreadFillsTheLeastLoadedFirst(t *testing.T) {
	s := spread{peers: []peer{{"a:1", false, 10}, {"b:1", false, 0}, {"c:1", true, 0}}}
	counts := map[string]int{}
	for range 30 {
		ts := s.next()
		if len(ts) != 3 {
			t.Fatalf("targets %v, want all three", ts)
		}
		counts[ts[0]]++
	}
	// b takes 10 to catch up with a, then they share the other 20; the overloaded c gets none.
	if counts["a:1"] != 10 || counts["b:1"] != 20 || counts["c:1"] != 0 {
		t.Fatalf("first choices %v, want a 10, b 20, c 0", counts)
	}
	s = spread{peers: []peer{{"c:1", true, 0}}}
	if ts := s.next(); !slices.Equal(ts, []string{"c:1"}) {
		t.Fatalf("with only an overloaded gateway: %v, want it", ts)
	}
}

func TestComparePeersRanksOverloadedLast(t *testing.T) {
	ps := []peer{{"busy", true, 0}, {"full", false, 90}, {"idle", false, 3}}
	slices.SortStableFunc(ps, comparePeers)
	var got []string
	for _, p := range ps {
		got = append(got, p.endpoint)
	}
	if !slices.Equal(got, []string{"idle", "full", "busy"}) {
		t.Fatalf("order %v", got)
	}
}

func TestPickConnsSelectsLoggedInDevices(t *testing.T) {
	mk := func(app, did string, state uint8, closed bool) *conn {
		return &conn{key: didKey(app, did), state: state, closed: closed}
	}
	conns := []*conn{
		mk("demo", "a", stateLoggedIn, false),
		mk("demo", "b", stateClosing, false),
		mk("demo", "c", stateLoggedIn, true),
		mk("other", "a", stateLoggedIn, false),
		mk("demo", "d", stateLoggedIn, false),
		mk("demo", "e", 0, false), // not logged in yet
	}
	dids := func(cs []*conn) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.appID()+"/"+c.did())
		}
		return out
	}
	if got := dids(pickConns(conns, 0, "", nil, nil)); !slices.Equal(got, []string{"demo/a", "other/a", "demo/d"}) {
		t.Errorf("all: %v", got)
	}
	if got := dids(pickConns(conns, 2, "", nil, nil)); !slices.Equal(got, []string{"demo/a", "other/a"}) {
		t.Errorf("count 2: %v", got)
	}
	if got := dids(pickConns(conns, 0, "", map[string]bool{"a": true, "b": true}, nil)); !slices.Equal(got, []string{"demo/a", "other/a"}) {
		t.Errorf("dids a, b: %v", got)
	}
	if got := dids(pickConns(conns, 0, "other", map[string]bool{"a": true}, nil)); !slices.Equal(got, []string{"other/a"}) {
		t.Errorf("did a of app other: %v", got)
	}
	redirected := func(c *conn) bool { return c.did() == "a" }
	if got := dids(pickConns(conns, 0, "", nil, redirected)); !slices.Equal(got, []string{"demo/d"}) {
		t.Errorf("all but those redirected already: %v", got)
	}
}
