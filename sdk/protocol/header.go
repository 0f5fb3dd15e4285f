package protocol

import (
	"encoding/binary"
	"fmt"
)

const (
	// Magic is the first two bytes of every frame: "PL".
	Magic uint16 = 0x504C
	// Version is the protocol version this package speaks.
	Version uint8 = 1
	// HeaderLen is the size of the fixed header.
	HeaderLen = 20
	// DefaultMaxBody is the largest body a receiver accepts unless configured otherwise.
	DefaultMaxBody = 64 << 10
	// HardMaxBody bounds any configured maximum.
	HardMaxBody = 16 << 20
)

// Flags carried in the header. Receivers ignore bits they do not know.
const (
	// FlagRetransmit marks a downlink that repeats an earlier sequence number.
	FlagRetransmit uint16 = 1 << 0
	// FlagBroadcast marks a session broadcast downlink: it is outside the connection's downlink
	// sequence, its seq is its msg_id, and the device echoes this flag in its DownlinkAck.
	FlagBroadcast uint16 = 1 << 1
)

// Header is the fixed part of a frame.
type Header struct {
	Signal Signal
	Flags  uint16
	Seq    uint64
	// Length is the body length in bytes.
	Length uint32
}

// PutHeader writes h into b, which must be at least HeaderLen bytes long.
func PutHeader(b []byte, h Header) {
	_ = b[HeaderLen-1]
	binary.BigEndian.PutUint16(b[0:2], Magic)
	b[2] = Version
	b[3] = byte(h.Signal)
	binary.BigEndian.PutUint16(b[4:6], h.Flags)
	b[6], b[7] = 0, 0
	binary.BigEndian.PutUint64(b[8:16], h.Seq)
	binary.BigEndian.PutUint32(b[16:20], h.Length)
}

// ParseHeader decodes and checks the fixed header in b (at least HeaderLen bytes). maxBody is the
// largest body the caller accepts, clamped to [0, HardMaxBody]; a larger length is refused before the
// body is read.
func ParseHeader(b []byte, maxBody int) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, errorf(CodeMalformed, "header: %d bytes, need %d", len(b), HeaderLen)
	}
	if m := binary.BigEndian.Uint16(b[0:2]); m != Magic {
		return Header{}, errorf(CodeBadMagic, "header: magic 0x%04x, want 0x%04x", m, Magic)
	}
	if v := b[2]; v != Version {
		return Header{}, errorf(CodeBadVersion, "header: version %d, this server speaks %d", v, Version)
	}
	h := Header{
		Signal: Signal(b[3]),
		Flags:  binary.BigEndian.Uint16(b[4:6]),
		Seq:    binary.BigEndian.Uint64(b[8:16]),
		Length: binary.BigEndian.Uint32(b[16:20]),
	}
	if !h.Signal.Known() {
		return Header{}, errorf(CodeUnknownSignal, "header: unknown signal 0x%02x", b[3])
	}
	// A negative maxBody would otherwise convert to a huge unsigned bound and disable the check.
	maxBody = max(0, min(maxBody, HardMaxBody))
	if uint64(h.Length) > uint64(maxBody) {
		return Header{}, errorf(CodeFrameTooLarge, "header: body of %d bytes exceeds the maximum of %d", h.Length, maxBody)
	}
	return h, nil
}

// AppendFrame appends a whole frame (header and body) to dst and returns the extended slice.
func AppendFrame(dst []byte, sig Signal, flags uint16, seq uint64, body []byte) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, HeaderLen)...)
	PutHeader(dst[n:], Header{Signal: sig, Flags: flags, Seq: seq, Length: uint32(len(body))})
	return append(dst, body...)
}

// Frame is a decoded frame. Body aliases the buffer it was decoded from.
type Frame struct {
	Header
	Body []byte
}

func (f Frame) String() string {
	return fmt.Sprintf("%s seq=%d flags=0x%x len=%d", f.Signal, f.Seq, f.Flags, f.Length)
}
