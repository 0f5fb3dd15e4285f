package gateway

import (
	"encoding/binary"
	"errors"

	"github.com/gobwas/ws"
)

// WebSocket frame headers (RFC 6455 §5.2) read from and written into netpoll's buffers in place.
// gobwas/ws's ReadHeader and WriteHeader work on an io.Reader and io.Writer and allocate a buffer
// per call; these do the same on a byte slice, with gobwas/ws's types, and the fuzz test holds them
// to gobwas/ws's results.

// errWSLengthMSB is a 64-bit payload length with its top bit set, which RFC 6455 forbids.
var errWSLengthMSB = errors.New("frame header: the most significant bit of a 64-bit length must be 0")

// wsHeaderLen is the length of the header whose first two bytes are b: 2 to 14.
func wsHeaderLen(b []byte) int {
	n := 2
	if b[1]&0x80 != 0 {
		n += 4
	}
	switch b[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	return n
}

// parseWSHeader parses the frame header at the start of b, which holds at least wsHeaderLen(b)
// bytes, and returns it with its length.
func parseWSHeader(b []byte) (ws.Header, int, error) {
	var h ws.Header
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n := 2
	switch l := b[1] & 0x7f; l {
	case 126:
		h.Length = int64(binary.BigEndian.Uint16(b[2:4]))
		n = 4
	case 127:
		if b[2]&0x80 != 0 {
			return h, 0, errWSLengthMSB
		}
		h.Length = int64(binary.BigEndian.Uint64(b[2:10]))
		n = 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		copy(h.Mask[:], b[n:n+4])
		n += 4
	}
	return h, n, nil
}

// wsServerHeaderLen is the header length of an unmasked frame of n payload bytes.
func wsServerHeaderLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xffff:
		return 4
	}
	return 10
}

// putWSServerHeader writes the header of a whole, unmasked frame of n payload bytes (servers do
// not mask) into b, which holds wsServerHeaderLen(n) bytes.
func putWSServerHeader(b []byte, op ws.OpCode, n int) {
	b[0] = 0x80 | byte(op)
	switch {
	case n < 126:
		b[1] = byte(n)
	case n <= 0xffff:
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:4], uint16(n))
	default:
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:10], uint64(n))
	}
}
