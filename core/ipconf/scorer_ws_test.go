package ipconf

import (
	"slices"
	"testing"
)

// TestRankWS: WebSocket clients get the same order among the gateways with a WebSocket listener,
// each with its URL as the address; TCP clients still get every gateway's host:port.
func TestRankWS(t *testing.T) {
	s := NewScorer(0, 0)
	for _, n := range []struct {
		id  string
		rem float64
		ws  string
	}{
		{"a", 5e9, "ws://127.0.0.1:1/plato"},
		{"b", 9e9, ""}, // no WebSocket listener
		{"c", 7e9, "wss://c.example.com/plato"},
	} {
		node := gw(n.id, n.rem, 0)
		node.WSEndpoint = n.ws
		s.Observe(node, t0)
	}
	if got := ids(s.Rank(t0, 8, nil)); !slices.Equal(got, []string{"b", "c", "a"}) {
		t.Fatalf("tcp order %v", got)
	}
	ws := s.RankWS(t0, 8, nil)
	if got := ids(ws); !slices.Equal(got, []string{"c", "a"}) {
		t.Fatalf("ws order %v, want c, a (b has no WebSocket listener)", got)
	}
	if ws[0].Addr != "wss://c.example.com/plato" || ws[1].Addr != "ws://127.0.0.1:1/plato" {
		t.Fatalf("ws addresses %+v", ws)
	}
	if got := s.RankWS(t0, 1, nil); len(got) != 1 || got[0].ID != "c" {
		t.Fatalf("ws limit 1: %+v", got)
	}
	// A gateway that stops listening for WebSocket drops out of the ws list at its next report.
	node := gw("c", 7e9, 0)
	s.Observe(node, t0)
	if got := ids(s.RankWS(t0, 8, nil)); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("ws order after c stopped: %v", got)
	}
}
