package ipconf

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/registry"
)

var t0 = time.Unix(1_790_000_000, 0)

// gw is a gateway reporting remaining bandwidth rem (bytes/s) and conns connections.
func gw(id string, rem float64, conns int64) registry.Node {
	return registry.Node{
		ID: id, Role: registry.RoleGateway, Endpoint: "127.0.0.1:" + id,
		Load: registry.Load{
			Conns:                conns,
			BandwidthBytesPerSec: rem + 3e6,
			BytesInPerSec:        1e6,
			BytesOutPerSec:       2e6,
		},
	}
}

func ids(eps []Endpoint) []string {
	out := make([]string, len(eps))
	for i, e := range eps {
		out[i] = e.ID
	}
	return out
}

func rankAll(s *Scorer, now time.Time) []Endpoint {
	return s.Rank(now, 1000, nil)
}

func TestScorerWindowAverage(t *testing.T) {
	s := NewScorer(5*time.Second, 5*time.Second)
	s.Observe(gw("a", 1e9, 10), t0)
	s.Observe(gw("a", 2e9, 20), t0.Add(time.Second))
	s.Observe(gw("a", 3e9, 30), t0.Add(2*time.Second))
	got := rankAll(s, t0.Add(2*time.Second))
	if len(got) != 1 {
		t.Fatalf("got %d endpoints", len(got))
	}
	if got[0].DynamicScore != 2 || got[0].StaticScore != 20 || got[0].Addr != "127.0.0.1:a" {
		t.Errorf("got %+v, want dynamic 2 (GB), static 20", got[0])
	}
}

func TestScorerDropsSamplesOutsideWindow(t *testing.T) {
	s := NewScorer(5*time.Second, 5*time.Second)
	s.Observe(gw("a", 9e9, 90), t0)
	s.Observe(gw("a", 1e9, 10), t0.Add(4900*time.Millisecond))
	if got := rankAll(s, t0.Add(5*time.Second))[0]; got.DynamicScore != 5 || got.StaticScore != 50 {
		t.Errorf("inside the window: got %+v, want the average of both samples", got)
	}
	// Five seconds after the first sample it has left the window.
	s.Observe(gw("a", 2e9, 20), t0.Add(5*time.Second))
	if got := rankAll(s, t0.Add(5*time.Second))[0]; got.DynamicScore != 1.5 || got.StaticScore != 15 {
		t.Errorf("after the window moved: got %+v, want dynamic 1.5, static 15", got)
	}
	// A gateway silent for longer than the window starts over.
	s.Observe(gw("a", 7e9, 70), t0.Add(time.Minute))
	if got := rankAll(s, t0.Add(time.Minute))[0]; got.DynamicScore != 7 || got.StaticScore != 70 {
		t.Errorf("after a long gap: got %+v, want only the new sample", got)
	}
}

func TestScorerBoundsSamples(t *testing.T) {
	s := NewScorer(5*time.Second, 5*time.Second)
	for i := range 10 * maxSamples {
		s.Observe(gw("a", 1e9, int64(i)), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(s.samples[0]); n != maxSamples {
		t.Fatalf("window holds %d samples, want %d", n, maxSamples)
	}
	// The newest maxSamples are kept: conns 576..639, average 607.5.
	if got := rankAll(s, t0.Add(time.Second))[0].StaticScore; got != 607.5 {
		t.Errorf("static = %v, want 607.5", got)
	}
}

func TestScorerRoundsToTwoDecimalGB(t *testing.T) {
	for _, tc := range []struct {
		rem  float64
		want float64
	}{
		{1_234_000_000, 1.23},
		{1_236_000_000, 1.24},
		{125_000_000, 0.13}, // a 1 Gbit/s NIC, idle: 0.125 rounds half away from zero
		{4_999_999, 0},
		{5_000_001, 0.01},
		{-20_000_000, -0.02}, // traffic above the configured capacity
	} {
		s := NewScorer(0, 0)
		s.Observe(gw("a", tc.rem, 0), t0)
		if got := rankAll(s, t0)[0].DynamicScore; got != tc.want {
			t.Errorf("remaining %v bytes/s: dynamic = %v, want %v", tc.rem, got, tc.want)
		}
	}
}

func TestScorerOrdering(t *testing.T) {
	s := NewScorer(0, 0)
	s.Observe(gw("low-bw", 0.5e9, 1), t0)
	s.Observe(gw("high-bw-busy", 2e9, 900), t0)
	// Within rounding these two have the same headroom; fewer connections wins.
	s.Observe(gw("mid-busy", 1.231e9, 500), t0)
	s.Observe(gw("mid-idle", 1.229e9, 5), t0)
	// Identical scores: ID decides.
	s.Observe(gw("tie-b", 1e9, 7), t0)
	s.Observe(gw("tie-a", 1e9, 7), t0)
	want := []string{"high-bw-busy", "mid-idle", "mid-busy", "tie-a", "tie-b", "low-bw"}
	if got := ids(rankAll(s, t0)); !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
}

// An overloaded gateway ranks after every other, whatever its headroom, until it reports it is not.
func TestScorerRanksOverloadedGatewaysLast(t *testing.T) {
	s := NewScorer(0, 0)
	busy := gw("best-but-overloaded", 5e9, 1)
	busy.Load.Overloaded = true
	s.Observe(busy, t0)
	s.Observe(gw("worse", 1e9, 100), t0)
	got := rankAll(s, t0)
	if !slices.Equal(ids(got), []string{"worse", "best-but-overloaded"}) || !got[1].Overloaded {
		t.Fatalf("ranking %+v, want the overloaded gateway last and marked", got)
	}
	busy.Load.Overloaded = false
	s.Observe(busy, t0.Add(time.Second))
	if got := ids(rankAll(s, t0.Add(time.Second))); got[0] != "best-but-overloaded" {
		t.Fatalf("ranking %v after the overload ended, want it first again", got)
	}
}

func TestScorerStaleness(t *testing.T) {
	s := NewScorer(5*time.Second, 3*time.Second)
	s.Observe(gw("old", 9e9, 0), t0)
	s.Observe(gw("new", 1e9, 0), t0.Add(2*time.Second))
	if got := ids(rankAll(s, t0.Add(3*time.Second))); !slices.Equal(got, []string{"old", "new"}) {
		t.Errorf("at +3s: %v", got)
	}
	if got := ids(rankAll(s, t0.Add(3*time.Second+time.Nanosecond))); !slices.Equal(got, []string{"new"}) {
		t.Errorf("at +3s+1ns: %v, want old left out", got)
	}
	if got := rankAll(s, t0.Add(time.Hour)); len(got) != 0 {
		t.Errorf("an hour later: %v, want nothing", ids(got))
	}
	if n := s.Prune(t0.Add(time.Second)); n != 1 || s.Len() != 1 {
		t.Errorf("Prune removed %d, %d left; want 1, 1", n, s.Len())
	}
}

func TestScorerRemove(t *testing.T) {
	s := NewScorer(0, 0)
	for i := range 5 {
		s.Observe(gw(fmt.Sprint(i), float64(i)*1e9, 0), t0)
	}
	s.Remove("4")
	s.Remove("0")
	s.Remove("nope")
	noEndpoint := gw("2", 1e9, 0)
	noEndpoint.Endpoint = ""
	s.Observe(noEndpoint, t0)
	if got := ids(rankAll(s, t0)); !slices.Equal(got, []string{"3", "1"}) {
		t.Errorf("after removals: %v, want [3 1]", got)
	}
	// The index still points at the right entries after the swaps.
	s.Observe(gw("1", 8e9, 0), t0)
	if got := ids(rankAll(s, t0)); !slices.Equal(got, []string{"1", "3"}) {
		t.Errorf("after refreshing 1: %v, want [1 3]", got)
	}
}

func TestScorerTopK(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := NewScorer(0, 0)
	var all []Endpoint
	for i := range 200 {
		// Few distinct values so that ties on both scores are common.
		n := gw(fmt.Sprintf("gw-%03d", i), float64(rng.IntN(5))*1e9, int64(rng.IntN(4)))
		s.Observe(n, t0)
		all = append(all, Endpoint{ID: n.ID, Addr: n.Endpoint, DynamicScore: float64(n.Load.BandwidthBytesPerSec-3e6) / 1e9, StaticScore: float64(n.Load.Conns)})
	}
	slices.SortFunc(all, func(a, b Endpoint) int {
		if better(&a, &b) {
			return -1
		}
		if better(&b, &a) {
			return 1
		}
		return 0
	})
	for _, limit := range []int{1, 8, 199, 200, 500} {
		got := s.Rank(t0, limit, make([]Endpoint, 0, 8))
		want := all[:min(limit, len(all))]
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: got %v, want %v", limit, ids(got), ids(want))
		}
	}
	if got := s.Rank(t0, 0, nil); len(got) != 0 {
		t.Errorf("limit 0 returned %d", len(got))
	}
}

func TestScorerRankDoesNotAllocate(t *testing.T) {
	s := NewScorer(0, 0)
	for i := range 100 {
		s.Observe(gw(fmt.Sprint(i), float64(i)*1e7, int64(i)), t0)
	}
	dst := make([]Endpoint, 0, config.DefaultMaxEndpoints)
	if n := testing.AllocsPerRun(100, func() { dst = s.Rank(t0, config.DefaultMaxEndpoints, dst) }); n != 0 {
		t.Errorf("Rank allocates %v times per call", n)
	}
}

// BenchmarkRank1000 is one /ip/list ranking over a thousand live gateways.
func BenchmarkRank1000(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	s := NewScorer(0, 0)
	for i := range 1000 {
		n := gw(fmt.Sprintf("gw-%04d", i), rng.Float64()*1.25e8, int64(rng.IntN(100_000)))
		for k := range 5 { // a full window
			s.Observe(n, t0.Add(time.Duration(k)*time.Second))
		}
	}
	now := t0.Add(4 * time.Second)
	b.ReportAllocs()
	for b.Loop() {
		dst := s.Rank(now, config.DefaultMaxEndpoints, make([]Endpoint, 0, config.DefaultMaxEndpoints))
		if len(dst) != config.DefaultMaxEndpoints {
			b.Fatal(len(dst))
		}
	}
}

// BenchmarkObserve is the cost of one load report arriving from the registry.
func BenchmarkObserve(b *testing.B) {
	s := NewScorer(0, 0)
	for i := range 1000 {
		s.Observe(gw(fmt.Sprintf("gw-%04d", i), 1e8, 10), t0)
	}
	n := gw("gw-0500", 1e8, 10)
	at := t0
	b.ReportAllocs()
	for b.Loop() {
		at = at.Add(time.Second)
		s.Observe(n, at)
	}
}

// A draining gateway is moving its devices away: ipconf stops handing it out at its first report
// that says so, and hands it out again once it no longer drains.
func TestScorerLeavesDrainingGatewaysOut(t *testing.T) {
	s := NewScorer(0, 0)
	s.Observe(gw("a", 5e9, 1), t0)
	s.Observe(gw("b", 1e9, 100), t0)
	draining := gw("a", 5e9, 1)
	draining.Load.Draining = true
	s.Observe(draining, t0.Add(time.Second))
	if got := ids(rankAll(s, t0.Add(time.Second))); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("ranking %v while a drains, want [b]", got)
	}
	s.Observe(gw("a", 5e9, 1), t0.Add(2*time.Second))
	if got := ids(rankAll(s, t0.Add(2*time.Second))); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("ranking %v after the drain was called off, want [a b]", got)
	}
}
