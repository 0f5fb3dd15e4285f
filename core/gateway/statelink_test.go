package gateway

import (
	"fmt"
	"testing"
)

// TestPickSpreadsDidsAndIsStable checks the rendezvous pick: dids with a common prefix spread
// evenly over state servers with similar IDs, the same did always gets the same one, and removing a
// state server moves only the dids it had.
func TestPickSpreadsDidsAndIsStable(t *testing.T) {
	links := func(ids ...string) []*stateLink {
		var s []*stateLink
		for _, id := range ids {
			s = append(s, &stateLink{id: id})
		}
		return s
	}
	three := links("state-vm-1234", "state-vm-1235", "state-2")
	const n = 30000
	count := map[string]int{}
	picked := make([]string, n)
	for i := range n {
		did := fmt.Sprintf("dev-%d", i)
		picked[i] = pick(three, did).id
		count[picked[i]]++
		if again := pick(three, did).id; again != picked[i] {
			t.Fatalf("%s picked %s, then %s", did, picked[i], again)
		}
	}
	for id, c := range count {
		if c < n/3*8/10 || c > n/3*12/10 {
			t.Errorf("%s got %d of %d dids, want about %d: %v", id, c, n, n/3, count)
		}
	}
	two := links("state-vm-1234", "state-2")
	for i := range n {
		if picked[i] == "state-vm-1235" {
			continue
		}
		if got := pick(two, fmt.Sprintf("dev-%d", i)).id; got != picked[i] {
			t.Fatalf("dev-%d moved from %s to %s when another state server left", i, picked[i], got)
		}
	}
}
