package bench

import "testing"

func TestSendRingCountsLossAndDuplicates(t *testing.T) {
	var r sendRing
	for i := int64(1); i <= 10; i++ {
		if seq, ok := r.add(i*100, 16); !ok || seq != uint64(i) {
			t.Fatalf("add %d: seq %d ok %v", i, seq, ok)
		}
	}
	var first, dup, unknown int
	for _, seq := range []uint64{2, 1, 3, 3, 7, 5, 4, 0, 11, 2} { // out of order, 3 and 2 twice, 0 and 11 never sent
		at, a := r.answer(seq)
		switch a {
		case answerFirst:
			first++
			if at != int64(seq)*100 {
				t.Fatalf("seq %d sent at %d, want %d", seq, at, seq*100)
			}
		case answerDuplicate:
			dup++
		case answerUnknown:
			unknown++
		}
	}
	if first != 6 || dup != 2 || unknown != 2 {
		t.Fatalf("first %d dup %d unknown %d, want 6 2 2", first, dup, unknown)
	}
	if r.sent() != 10 || r.outstanding() != 4 { // 6, 8, 9, 10 were never answered: lost
		t.Fatalf("sent %d outstanding %d, want 10 and 4", r.sent(), r.outstanding())
	}
}

func TestSendRingBoundsOutstanding(t *testing.T) {
	var r sendRing
	for i := 0; i < 8; i++ {
		if _, ok := r.add(1, 8); !ok {
			t.Fatalf("add %d refused below the limit", i)
		}
	}
	if _, ok := r.add(1, 8); ok {
		t.Fatal("a ninth outstanding uplink was accepted with a limit of 8")
	}
	if _, a := r.answer(1); a != answerFirst {
		t.Fatal("seq 1 not pending")
	}
	seq, ok := r.add(1, 8)
	if !ok || seq != 9 {
		t.Fatalf("after an ACK: seq %d ok %v, want 9", seq, ok)
	}
	// Seq 9 reuses the slot of seq 1: an old ACK of 1 is a duplicate, not 9's answer.
	if _, a := r.answer(1); a != answerDuplicate {
		t.Fatalf("a repeated ACK of seq 1 classified %v", a)
	}
	if r.outstanding() != 8 {
		t.Fatalf("outstanding %d, want 8", r.outstanding())
	}
	// A limit that is not a power of two rounds up.
	var w sendRing
	for i := 0; i < 4; i++ {
		if _, ok := w.add(1, 3); !ok {
			t.Fatalf("add %d refused with limit 3 (rounded to 4)", i)
		}
	}
}

func TestSeenSetCountsDuplicates(t *testing.T) {
	var s seenSet
	var firsts, dups, bad int
	for _, n := range []uint64{1, 2, 2, 5, 200_000, 1, 0, maxSeen + 1} {
		first, ok := s.mark(n)
		switch {
		case !ok:
			bad++
		case first:
			firsts++
		default:
			dups++
		}
	}
	if firsts != 4 || dups != 2 || bad != 2 || s.distinct() != 4 {
		t.Fatalf("firsts %d dups %d bad %d distinct %d, want 4 2 2 4", firsts, dups, bad, s.distinct())
	}
}
