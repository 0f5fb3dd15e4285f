package protocol

import (
	"encoding/binary"
	"unicode/utf8"
)

// Body layouts. Strings are a u16 length then UTF-8 bytes; a payload is the rest of the body.
// Decoders ignore bytes after the last field they know, so later versions may append fields.

// MaxString is the longest string field.
const MaxString = 4096

// Login is the body of SigLogin.
type Login struct {
	AppID string
	DID   string
	UID   string
	Token string
	// Platform is free text describing the client ("ios/17.1", "plato-go/1"), for logs.
	Platform string
}

// LoginAck is the body of SigLoginAck; its header echoes the Login's sequence number.
type LoginAck struct {
	Code   Code
	ConnID uint64
	// HeartbeatMs is how often the device should send a Heartbeat when it has nothing else to send.
	HeartbeatMs uint32
	Message     string
}

// Ack is the body of SigUplinkAck: the result of the uplink whose sequence number the header echoes.
type Ack struct {
	Code    Code
	Message string
}

// Downlink is the body of SigDownlink.
type Downlink struct {
	// MsgID identifies the message across retransmissions and devices.
	MsgID   uint64
	Payload []byte
}

// Close is the body of SigClose.
type Close struct {
	Code    Code
	Message string
}

// Redirect is the body of SigRedirect.
type Redirect struct {
	Code Code
	// Endpoints are "host:port" gateway addresses, best first.
	Endpoints []string
	// Token, when not empty, replaces the device's token for the new endpoint.
	Token string
}

// Resume is the body of SigResume.
type Resume struct {
	AppID        string
	DID          string
	UID          string
	Token        string
	PrevConnID   uint64
	LastDownlink uint64
}

// ResumeAck is the body of SigResumeAck.
type ResumeAck struct {
	Code        Code
	ConnID      uint64
	HeartbeatMs uint32
	Message     string
}

// Append encodes the body after dst.
func (m *Login) Append(dst []byte) []byte {
	dst = appendString(dst, m.AppID)
	dst = appendString(dst, m.DID)
	dst = appendString(dst, m.UID)
	dst = appendString(dst, m.Token)
	return appendString(dst, m.Platform)
}

// Decode parses b into m.
func (m *Login) Decode(b []byte) error {
	d := decoder{b: b}
	m.AppID = d.string()
	m.DID = d.string()
	m.UID = d.string()
	m.Token = d.string()
	m.Platform = d.string()
	return d.done("Login")
}

func (m *LoginAck) Append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Code))
	dst = binary.BigEndian.AppendUint64(dst, m.ConnID)
	dst = binary.BigEndian.AppendUint32(dst, m.HeartbeatMs)
	return appendString(dst, m.Message)
}

func (m *LoginAck) Decode(b []byte) error {
	d := decoder{b: b}
	m.Code = Code(d.u16())
	m.ConnID = d.u64()
	m.HeartbeatMs = d.u32()
	m.Message = d.string()
	return d.done("LoginAck")
}

func (m *Ack) Append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Code))
	return appendString(dst, m.Message)
}

func (m *Ack) Decode(b []byte) error {
	d := decoder{b: b}
	m.Code = Code(d.u16())
	m.Message = d.string()
	return d.done("Ack")
}

func (m *Downlink) Append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, m.MsgID)
	return append(dst, m.Payload...)
}

// Decode parses b into m; Payload aliases b.
func (m *Downlink) Decode(b []byte) error {
	d := decoder{b: b}
	m.MsgID = d.u64()
	if err := d.done("Downlink"); err != nil {
		return err
	}
	m.Payload = b[8:]
	return nil
}

func (m *Close) Append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Code))
	return appendString(dst, m.Message)
}

func (m *Close) Decode(b []byte) error {
	d := decoder{b: b}
	m.Code = Code(d.u16())
	m.Message = d.string()
	return d.done("Close")
}

func (m *Redirect) Append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Code))
	n := min(len(m.Endpoints), 255)
	dst = append(dst, byte(n))
	for _, e := range m.Endpoints[:n] {
		dst = appendString(dst, e)
	}
	return appendString(dst, m.Token)
}

func (m *Redirect) Decode(b []byte) error {
	d := decoder{b: b}
	m.Code = Code(d.u16())
	n := int(d.u8())
	m.Endpoints = nil
	for i := 0; i < n && d.err == nil; i++ {
		m.Endpoints = append(m.Endpoints, d.string())
	}
	m.Token = d.string()
	return d.done("Redirect")
}

func (m *Resume) Append(dst []byte) []byte {
	dst = appendString(dst, m.AppID)
	dst = appendString(dst, m.DID)
	dst = appendString(dst, m.UID)
	dst = appendString(dst, m.Token)
	dst = binary.BigEndian.AppendUint64(dst, m.PrevConnID)
	return binary.BigEndian.AppendUint64(dst, m.LastDownlink)
}

func (m *Resume) Decode(b []byte) error {
	d := decoder{b: b}
	m.AppID = d.string()
	m.DID = d.string()
	m.UID = d.string()
	m.Token = d.string()
	m.PrevConnID = d.u64()
	m.LastDownlink = d.u64()
	return d.done("Resume")
}

func (m *ResumeAck) Append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Code))
	dst = binary.BigEndian.AppendUint64(dst, m.ConnID)
	dst = binary.BigEndian.AppendUint32(dst, m.HeartbeatMs)
	return appendString(dst, m.Message)
}

func (m *ResumeAck) Decode(b []byte) error {
	d := decoder{b: b}
	m.Code = Code(d.u16())
	m.ConnID = d.u64()
	m.HeartbeatMs = d.u32()
	m.Message = d.string()
	return d.done("ResumeAck")
}

func appendString(dst []byte, s string) []byte {
	if len(s) > MaxString {
		// Cut on a rune boundary so the field stays valid UTF-8.
		n := MaxString
		for n > MaxString-utf8.UTFMax && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// decoder reads fields in order and remembers the first error, so a body decodes in straight-line code.
type decoder struct {
	b   []byte
	err error
	off int
}

func (d *decoder) need(n int) bool {
	if d.err != nil {
		return false
	}
	if len(d.b)-d.off < n {
		d.err = errorf(CodeMalformed, "truncated at byte %d: need %d more, have %d", d.off, n, len(d.b)-d.off)
		return false
	}
	return true
}

func (d *decoder) u8() uint8 {
	if !d.need(1) {
		return 0
	}
	v := d.b[d.off]
	d.off++
	return v
}

func (d *decoder) u16() uint16 {
	if !d.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(d.b[d.off:])
	d.off += 2
	return v
}

func (d *decoder) u32() uint32 {
	if !d.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v
}

func (d *decoder) u64() uint64 {
	if !d.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

func (d *decoder) string() string {
	n := int(d.u16())
	if n > MaxString && d.err == nil {
		d.err = errorf(CodeMalformed, "string at byte %d is %d bytes, the maximum is %d", d.off-2, n, MaxString)
	}
	if !d.need(n) {
		return ""
	}
	s := string(d.b[d.off : d.off+n])
	d.off += n
	return s
}

func (d *decoder) done(what string) error {
	if d.err != nil {
		return &Error{Code: CodeMalformed, Msg: what + ": " + d.err.(*Error).Msg}
	}
	return nil
}
