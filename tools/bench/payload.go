package bench

import (
	"encoding/binary"
	"time"
)

// Downlink payloads the bench pushes carry what the receiving device needs to account for them:
//
//	"PLB1" | kind u8 | device index u32 | number u64 | sent at u64 (wall-clock Unix ns)
//
// The send time is wall clock because the pusher and the device may be different processes on this
// machine; they share the system clock. number is the device's message number (direct) or the
// round (broadcast), what the seenSets count duplicates by.
const (
	payloadMagic = "PLB1"
	payloadLen   = 4 + 1 + 4 + 8 + 8

	kindDirect    = 1
	kindBroadcast = 2
	// broadcastIdx is the device index of a broadcast payload: every device accepts it.
	broadcastIdx = ^uint32(0)
)

type benchPayload struct {
	kind     byte
	idx      uint32
	n        uint64
	sentWall int64
}

func appendPayload(dst []byte, p benchPayload) []byte {
	dst = append(dst, payloadMagic...)
	dst = append(dst, p.kind)
	dst = binary.BigEndian.AppendUint32(dst, p.idx)
	dst = binary.BigEndian.AppendUint64(dst, p.n)
	return binary.BigEndian.AppendUint64(dst, uint64(p.sentWall))
}

func newPayload(kind byte, idx uint32, n uint64) []byte {
	return appendPayload(make([]byte, 0, payloadLen), benchPayload{kind: kind, idx: idx, n: n, sentWall: time.Now().UnixNano()})
}

func parsePayload(b []byte) (benchPayload, bool) {
	if len(b) != payloadLen || string(b[:4]) != payloadMagic {
		return benchPayload{}, false
	}
	p := benchPayload{
		kind:     b[4],
		idx:      binary.BigEndian.Uint32(b[5:9]),
		n:        binary.BigEndian.Uint64(b[9:17]),
		sentWall: int64(binary.BigEndian.Uint64(b[17:25])),
	}
	return p, p.kind == kindDirect || p.kind == kindBroadcast
}
