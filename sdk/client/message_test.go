package client

import "testing"

func TestWindowForgetsOldest(t *testing.T) {
	w := newWindow(3)
	for _, id := range []uint64{1, 2, 3, 3, 4} {
		w.add(id)
	}
	for id, want := range map[uint64]bool{1: false, 2: true, 3: true, 4: true, 5: false} {
		if w.has(id) != want {
			t.Errorf("has(%d) = %v, want %v", id, !want, want)
		}
	}
	if len(w.set) != 3 {
		t.Fatalf("window holds %d ids, want 3", len(w.set))
	}
}
