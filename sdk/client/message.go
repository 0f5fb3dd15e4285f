package client

// Message is one downlink.
type Message struct {
	// Seq is the connection's downlink sequence number (from 1); a retransmission repeats it. For a
	// Broadcast it is the MsgID.
	Seq uint64
	// MsgID identifies the message across retransmissions and reconnects.
	MsgID uint64
	// Payload is the business message; it belongs to the receiver.
	Payload []byte
	// Retransmit is set when the server sent this message before without seeing its ACK. Such a
	// message is delivered only if its MsgID was not among the last dedupeWindow delivered.
	Retransmit bool
	// Broadcast is set on a session message fanned out by the gateway, outside the connection's
	// downlink sequence. Like a retransmission, it is delivered only if its MsgID is new.
	Broadcast bool
}

// dedupeWindow is how many recent MsgIDs are remembered to drop retransmitted duplicates: retransmits
// follow the original within seconds, so a small window catches them at a fixed memory cost.
const dedupeWindow = 1024

// window remembers the last n message IDs. It is used by the reader goroutine only.
type window struct {
	ids  []uint64
	next int
	set  map[uint64]struct{}
}

func newWindow(n int) *window {
	return &window{ids: make([]uint64, 0, n), set: make(map[uint64]struct{}, n)}
}

func (w *window) has(id uint64) bool {
	_, ok := w.set[id]
	return ok
}

func (w *window) add(id uint64) {
	if w.has(id) {
		return
	}
	if len(w.ids) < cap(w.ids) {
		w.ids = append(w.ids, id)
	} else {
		delete(w.set, w.ids[w.next])
		w.ids[w.next] = id
		w.next = (w.next + 1) % len(w.ids)
	}
	w.set[id] = struct{}{}
}
