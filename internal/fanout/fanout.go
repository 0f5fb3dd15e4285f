// Package fanout is the message a state server publishes on NATS to broadcast one downlink to every
// member of a session: it is published once, every gateway receives it (a plain subscription, not a
// queue group) and writes it to the members it holds, so a session of 100k devices costs the state
// server one publish rather than 100k pushes.
//
// The encoding is versioned and bounded because a gateway decodes whatever arrives on the subject:
//
//	version  u8   (1)
//	qos      u8   (1 at most once, 2 at least once)
//	msg_id   u64  big endian
//	app_id   u16 length + bytes (1..MaxString)
//	session  u16 length + bytes (1..MaxString)
//	payload  u32 length + bytes (0..MaxPayload)
//
// and nothing after the payload.
package fanout

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/platoim/plato/sdk/delivery"
	"github.com/platoim/plato/sdk/protocol"
)

// Subject is the one NATS subject of session broadcasts; the app ID is inside the message, so a
// gateway needs one subscription whatever apps it serves.
const Subject = "plato.broadcast"

// Version is the encoding Append writes and Decode accepts.
const Version uint8 = 1

// Limits a Message must respect. Strings share the device protocol's bound; the payload must fit a
// Downlink body (msg_id + payload) of the largest frame any receiver may accept.
const (
	MaxString  = protocol.MaxString
	MaxPayload = protocol.HardMaxBody - 8
)

// fixedLen is version, qos and msg_id; minLen adds the three length prefixes.
const (
	fixedLen = 1 + 1 + 8
	minLen   = fixedLen + 2 + 2 + 4
)

// Errors Decode and Validate wrap, so a receiver can count them by kind.
var (
	ErrVersion   = errors.New("unknown broadcast version")
	ErrTruncated = errors.New("truncated broadcast")
	ErrTooLarge  = errors.New("broadcast field too large")
	ErrInvalid   = errors.New("invalid broadcast")
)

// Message is one session broadcast.
type Message struct {
	AppID   string
	Session string
	// MsgID identifies the message; devices see it as the Downlink's msg_id and as the frame's seq.
	MsgID uint64
	// QoS is delivery.AtMostOnce (written once; devices' ACKs stop at the gateway) or
	// delivery.AtLeastOnce (an ACK per device, which the gateway forwards to the state server).
	QoS     delivery.QoS
	Payload []byte
}

// Validate reports whether m can be encoded and decoded again; publishers call it before Append,
// which encodes whatever it is given.
func (m *Message) Validate() error {
	switch {
	case m.QoS != delivery.AtMostOnce && m.QoS != delivery.AtLeastOnce:
		return fmt.Errorf("fanout: %w: qos %d (want %d or %d)", ErrInvalid, m.QoS, delivery.AtMostOnce, delivery.AtLeastOnce)
	case m.AppID == "":
		return fmt.Errorf("fanout: %w: empty app ID", ErrInvalid)
	case m.Session == "":
		return fmt.Errorf("fanout: %w: empty session", ErrInvalid)
	case len(m.AppID) > MaxString:
		return fmt.Errorf("fanout: %w: app ID of %d bytes, the maximum is %d", ErrTooLarge, len(m.AppID), MaxString)
	case len(m.Session) > MaxString:
		return fmt.Errorf("fanout: %w: session of %d bytes, the maximum is %d", ErrTooLarge, len(m.Session), MaxString)
	case len(m.Payload) > MaxPayload:
		return fmt.Errorf("fanout: %w: payload of %d bytes, the maximum is %d", ErrTooLarge, len(m.Payload), MaxPayload)
	}
	return nil
}

// Append encodes m after dst. The lengths are written as given: call Validate first.
func (m *Message) Append(dst []byte) []byte {
	dst = append(dst, Version, uint8(m.QoS))
	dst = binary.BigEndian.AppendUint64(dst, m.MsgID)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.AppID)))
	dst = append(dst, m.AppID...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Session)))
	dst = append(dst, m.Session...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(m.Payload)))
	return append(dst, m.Payload...)
}

// Decode parses b into m and validates it. Payload aliases b; the strings are copies.
func (m *Message) Decode(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("fanout: %w: empty message", ErrTruncated)
	}
	if b[0] != Version {
		return fmt.Errorf("fanout: %w %d (this server speaks %d)", ErrVersion, b[0], Version)
	}
	if len(b) < minLen {
		return fmt.Errorf("fanout: %w: %d bytes, the minimum is %d", ErrTruncated, len(b), minLen)
	}
	d := decoder{b: b, off: fixedLen}
	app := d.string("app ID")
	session := d.string("session")
	payload := d.bytes()
	if d.err != nil {
		return d.err
	}
	if d.off != len(b) {
		return fmt.Errorf("fanout: %w: %d bytes after the payload", ErrInvalid, len(b)-d.off)
	}
	*m = Message{
		AppID: app, Session: session, MsgID: binary.BigEndian.Uint64(b[2:10]), QoS: delivery.QoS(b[1]), Payload: payload,
	}
	return m.Validate()
}

// decoder reads length-prefixed fields, keeping the first error.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) need(n int, what string) bool {
	if d.err != nil {
		return false
	}
	if len(d.b)-d.off < n {
		d.err = fmt.Errorf("fanout: %w: %s needs %d bytes at offset %d, %d left", ErrTruncated, what, n, d.off, len(d.b)-d.off)
		return false
	}
	return true
}

func (d *decoder) string(what string) string {
	if !d.need(2, what+" length") {
		return ""
	}
	n := int(binary.BigEndian.Uint16(d.b[d.off:]))
	d.off += 2
	if n > MaxString {
		// Refused before reading, so an oversized length never makes us look further.
		d.err = fmt.Errorf("fanout: %w: %s of %d bytes, the maximum is %d", ErrTooLarge, what, n, MaxString)
		return ""
	}
	if !d.need(n, what) {
		return ""
	}
	s := string(d.b[d.off : d.off+n])
	d.off += n
	return s
}

func (d *decoder) bytes() []byte {
	if !d.need(4, "payload length") {
		return nil
	}
	n := uint64(binary.BigEndian.Uint32(d.b[d.off:]))
	d.off += 4
	if n > MaxPayload {
		d.err = fmt.Errorf("fanout: %w: payload of %d bytes, the maximum is %d", ErrTooLarge, n, MaxPayload)
		return nil
	}
	if !d.need(int(n), "payload") {
		return nil
	}
	p := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return p
}
