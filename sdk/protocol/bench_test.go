package protocol

import (
	"bytes"
	"testing"
)

// The per-frame cost of the codec, which every message pays at the gateway and the client.

func BenchmarkAppendUplinkFrame(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 128)
	buf := make([]byte, 0, HeaderLen+len(payload))
	b.ReportAllocs()
	b.SetBytes(int64(HeaderLen + len(payload)))
	for i := 0; b.Loop(); i++ {
		buf = AppendFrame(buf[:0], SigUplink, 0, uint64(i), payload)
	}
}

func BenchmarkParseHeader(b *testing.B) {
	frame := AppendFrame(nil, SigUplink, 0, 42, make([]byte, 128))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHeader(frame, DefaultMaxBody); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoginDecode(b *testing.B) {
	body := (&Login{AppID: "demo", DID: "device-0001", UID: "user-0001", Token: string(bytes.Repeat([]byte("t"), 160)), Platform: "ios/17"}).Append(nil)
	b.ReportAllocs()
	var m Login
	for b.Loop() {
		if err := m.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDownlinkEncodeDecode(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 128)
	buf := make([]byte, 0, 8+len(payload))
	b.ReportAllocs()
	var m Downlink
	for i := 0; b.Loop(); i++ {
		buf = (&Downlink{MsgID: uint64(i), Payload: payload}).Append(buf[:0])
		if err := m.Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadFrame(b *testing.B) {
	stream := bytes.Repeat(AppendFrame(nil, SigUplink, 0, 1, make([]byte, 128)), 1024)
	r := bytes.NewReader(stream)
	var buf []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(stream) / 1024))
	for b.Loop() {
		if r.Len() == 0 {
			r.Reset(stream)
		}
		var err error
		if _, buf, err = ReadFrame(r, DefaultMaxBody, buf); err != nil {
			b.Fatal(err)
		}
	}
}
