package bench

// Loss and duplicate accounting. Both trackers rely on the bench numbering what it sends 1, 2, 3...
// per connection (uplink seqs) or per device (downlink message numbers), so "sent before" is just
// "not above the last number sent", and memory is bounded by what is outstanding, not by the run.

// answer classifies an uplink ACK.
type answer int

const (
	answerFirst     answer = iota // the first ACK of a pending uplink: its latency counts
	answerDuplicate               // an ACK of an uplink already answered
	answerUnknown                 // an ACK of a seq this connection never sent
)

// sendRing remembers when each unanswered uplink of one connection was sent. Slot seq&mask holds
// seq while it is pending; a slot is never reused while pending (add grows the ring or refuses), so
// an ACK for a sent seq whose slot does not hold it was answered before: a duplicate.
// Not safe for concurrent use: the connection's mutex guards it.
type sendRing struct {
	slots   []ringSlot
	last    uint64 // the highest seq sent; the next is last+1
	pending int
}

type ringSlot struct {
	seq uint64 // 0: free
	at  int64  // when it was sent, nanoseconds on the worker's monotonic clock
}

// add assigns the next seq to an uplink sent at at. It grows the ring up to maxSlots rounded up to
// a power of two; when the slot is still taken at that size it refuses (ok false), and the caller
// does not send: the connection has that many uplinks outstanding.
func (r *sendRing) add(at int64, maxSlots int) (seq uint64, ok bool) {
	maxSlots = ceilPow2(maxSlots)
	seq = r.last + 1
	if len(r.slots) == 0 {
		r.slots = make([]ringSlot, min(4, maxSlots))
	}
	for r.slots[seq&uint64(len(r.slots)-1)].seq != 0 {
		if len(r.slots)*2 > maxSlots {
			return 0, false
		}
		r.grow()
	}
	r.slots[seq&uint64(len(r.slots)-1)] = ringSlot{seq: seq, at: at}
	r.last = seq
	r.pending++
	return seq, true
}

func ceilPow2(n int) int {
	p := 1
	for p < n {
		p *= 2
	}
	return p
}

func (r *sendRing) grow() {
	old := r.slots
	r.slots = make([]ringSlot, 2*len(old))
	mask := uint64(len(r.slots) - 1)
	for _, s := range old {
		if s.seq != 0 {
			r.slots[s.seq&mask] = s
		}
	}
}

// answer records an ACK for seq and, for the first one, returns when that uplink was sent.
func (r *sendRing) answer(seq uint64) (at int64, a answer) {
	if seq == 0 || seq > r.last {
		return 0, answerUnknown
	}
	i := seq & uint64(len(r.slots)-1)
	if r.slots[i].seq != seq {
		return 0, answerDuplicate
	}
	at = r.slots[i].at
	r.slots[i] = ringSlot{}
	r.pending--
	return at, answerFirst
}

// outstanding is how many sent uplinks have no ACK yet: at the end of a run, the lost ones.
func (r *sendRing) outstanding() int { return r.pending }

// sent is how many uplinks were sent.
func (r *sendRing) sent() uint64 { return r.last }

// maxSeen bounds a seenSet, so a corrupted number cannot make a device allocate gigabytes.
const maxSeen = 1 << 26

// seenSet remembers which message numbers (1, 2, 3...) a device received, one bit each, to tell a
// first delivery from a duplicate (a retransmission, or a bug). Not safe for concurrent use: only
// the connection's reader touches it.
type seenSet struct {
	bits  []uint64
	count uint64 // distinct numbers seen
}

// mark records n and reports whether it is new (first) or was seen before; numbers outside
// 1..maxSeen are neither (ok false).
func (s *seenSet) mark(n uint64) (first, ok bool) {
	if n == 0 || n > maxSeen {
		return false, false
	}
	w, b := n/64, n%64
	if int(w) >= len(s.bits) {
		nb := make([]uint64, max(int(w)+1, 2*len(s.bits)))
		copy(nb, s.bits)
		s.bits = nb
	}
	if s.bits[w]&(1<<b) != 0 {
		return false, true
	}
	s.bits[w] |= 1 << b
	s.count++
	return true, true
}

// distinct is how many different numbers were marked.
func (s *seenSet) distinct() uint64 { return s.count }
