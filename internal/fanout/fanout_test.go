package fanout_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/platoim/plato/internal/fanout"
	"github.com/platoim/plato/sdk/delivery"
)

func TestRoundTrip(t *testing.T) {
	for _, m := range []fanout.Message{
		{AppID: "demo", Session: "room-1", MsgID: 42, QoS: delivery.AtMostOnce, Payload: []byte("hello")},
		{AppID: "a", Session: "s", MsgID: 1<<64 - 1, QoS: delivery.AtLeastOnce, Payload: []byte{}},
		{AppID: strings.Repeat("a", fanout.MaxString), Session: strings.Repeat("é", fanout.MaxString/2), QoS: delivery.AtLeastOnce, Payload: bytes.Repeat([]byte{7}, 70000)},
	} {
		if err := m.Validate(); err != nil {
			t.Fatalf("Validate(%q/%q): %v", m.AppID[:1], m.Session[:1], err)
		}
		prefix := []byte("prefix")
		enc := m.Append(prefix)
		if !bytes.HasPrefix(enc, []byte("prefix")) {
			t.Fatal("Append did not keep dst")
		}
		var got fanout.Message
		if err := got.Decode(enc[len(prefix):]); err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("decoded %+v, want %+v", got, m)
		}
	}
}

func TestDecodePayloadAliasesInput(t *testing.T) {
	m := fanout.Message{AppID: "demo", Session: "s", MsgID: 1, QoS: delivery.AtMostOnce, Payload: []byte("abc")}
	enc := m.Append(nil)
	var got fanout.Message
	if err := got.Decode(enc); err != nil {
		t.Fatal(err)
	}
	enc[len(enc)-1] = 'X'
	if string(got.Payload) != "abX" {
		t.Fatalf("payload %q does not alias the input", got.Payload)
	}
	// Appending to the payload must never write into the input after it.
	if cap(got.Payload) != len(got.Payload) {
		t.Fatalf("payload capacity %d reaches past its length %d", cap(got.Payload), len(got.Payload))
	}
}

func TestDecodeErrors(t *testing.T) {
	valid := (&fanout.Message{AppID: "demo", Session: "room", MsgID: 9, QoS: delivery.AtLeastOnce, Payload: []byte("hi")}).Append(nil)
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(valid)) }
	// Offsets in valid: version 0, qos 1, msg_id 2-9, app len 10-11, "demo" 12-15, session len 16-17,
	// "room" 18-21, payload len 22-25, "hi" 26-27.
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, fanout.ErrTruncated},
		{"version 0", with(func(b []byte) []byte { b[0] = 0; return b }), fanout.ErrVersion},
		{"version 2", with(func(b []byte) []byte { b[0] = 2; return b }), fanout.ErrVersion},
		{"header only", valid[:10], fanout.ErrTruncated},
		{"cut in app ID", valid[:14], fanout.ErrTruncated},
		{"cut in payload", valid[:len(valid)-1], fanout.ErrTruncated},
		{"trailing byte", append(bytes.Clone(valid), 0), fanout.ErrInvalid},
		{"qos 0", with(func(b []byte) []byte { b[1] = 0; return b }), fanout.ErrInvalid},
		{"qos 3", with(func(b []byte) []byte { b[1] = 3; return b }), fanout.ErrInvalid},
		{"app ID too long", with(func(b []byte) []byte { binary.BigEndian.PutUint16(b[10:], fanout.MaxString+1); return b }), fanout.ErrTooLarge},
		{"session too long", with(func(b []byte) []byte { binary.BigEndian.PutUint16(b[16:], 0xFFFF); return b }), fanout.ErrTooLarge},
		{"payload too long", with(func(b []byte) []byte { binary.BigEndian.PutUint32(b[22:], 0xFFFFFFFF); return b }), fanout.ErrTooLarge},
		{"payload length lies", with(func(b []byte) []byte { binary.BigEndian.PutUint32(b[22:], 1000); return b }), fanout.ErrTruncated},
		{"empty app ID", (&fanout.Message{Session: "s", QoS: 1}).Append(nil), fanout.ErrInvalid},
		{"empty session", (&fanout.Message{AppID: "a", QoS: 1}).Append(nil), fanout.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var m fanout.Message
			err := m.Decode(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestValidateRefusesWhatDecodeWould(t *testing.T) {
	for _, m := range []fanout.Message{
		{AppID: "a", Session: "s", QoS: 0},
		{AppID: "", Session: "s", QoS: 1},
		{AppID: strings.Repeat("a", fanout.MaxString+1), Session: "s", QoS: 1},
		{AppID: "a", Session: strings.Repeat("s", fanout.MaxString+1), QoS: 2},
	} {
		if m.Validate() == nil {
			t.Errorf("Validate accepted %d-byte app ID, %d-byte session, qos %d", len(m.AppID), len(m.Session), m.QoS)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	enc := (&fanout.Message{AppID: "demo", Session: "room-1", MsgID: 42, QoS: 2, Payload: make([]byte, 256)}).Append(nil)
	b.ReportAllocs()
	for b.Loop() {
		var m fanout.Message
		if err := m.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
