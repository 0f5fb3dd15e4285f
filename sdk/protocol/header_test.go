package protocol_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/platoim/plato/sdk/protocol"
)

// frameHeader builds a raw header so tests can corrupt single fields.
func frameHeader(sig protocol.Signal, flags uint16, seq uint64, length uint32) []byte {
	b := make([]byte, protocol.HeaderLen)
	protocol.PutHeader(b, protocol.Header{Signal: sig, Flags: flags, Seq: seq, Length: length})
	return b
}

func TestHeaderRoundTrip(t *testing.T) {
	for sig := protocol.SigLogin; sig <= protocol.SigResumeAck; sig++ {
		want := protocol.Header{Signal: sig, Flags: protocol.FlagRetransmit | 0x8000, Seq: 1<<63 + uint64(sig), Length: 17}
		got, err := protocol.ParseHeader(frameHeader(want.Signal, want.Flags, want.Seq, want.Length), protocol.DefaultMaxBody)
		if err != nil {
			t.Fatalf("%s: %v", sig, err)
		}
		if got != want {
			t.Fatalf("%s: got %+v, want %+v", sig, got, want)
		}
	}
}

func TestHeaderLayout(t *testing.T) {
	got := frameHeader(protocol.SigUplink, protocol.FlagRetransmit, 0x0102030405060708, 0x0A0B0C0D)
	want := []byte{'P', 'L', 1, 0x05, 0x00, 0x01, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x0A, 0x0B, 0x0C, 0x0D}
	if !bytes.Equal(got, want) {
		t.Fatalf("header bytes\n got % x\nwant % x", got, want)
	}
}

func TestParseHeaderReservedIgnored(t *testing.T) {
	b := frameHeader(protocol.SigHeartbeat, 0, 9, 0)
	b[6], b[7] = 0xFF, 0xEE
	h, err := protocol.ParseHeader(b, protocol.DefaultMaxBody)
	if err != nil || h.Seq != 9 || h.Signal != protocol.SigHeartbeat {
		t.Fatalf("got %+v, %v; reserved bytes must be ignored", h, err)
	}
}

func TestParseHeaderErrors(t *testing.T) {
	valid := func() []byte { return frameHeader(protocol.SigUplink, 0, 1, 10) }
	tests := []struct {
		name    string
		header  func() []byte
		maxBody int
		code    protocol.Code
	}{
		{"short", func() []byte { return valid()[:protocol.HeaderLen-1] }, 100, protocol.CodeMalformed},
		{"empty", func() []byte { return nil }, 100, protocol.CodeMalformed},
		{"bad magic", func() []byte { b := valid(); b[0] = 'X'; return b }, 100, protocol.CodeBadMagic},
		{"bad magic second byte", func() []byte { b := valid(); b[1] = 'l'; return b }, 100, protocol.CodeBadMagic},
		{"version 0", func() []byte { b := valid(); b[2] = 0; return b }, 100, protocol.CodeBadVersion},
		{"version 2", func() []byte { b := valid(); b[2] = 2; return b }, 100, protocol.CodeBadVersion},
		{"signal 0", func() []byte { b := valid(); b[3] = 0; return b }, 100, protocol.CodeUnknownSignal},
		{"signal 0x0D", func() []byte { b := valid(); b[3] = 0x0D; return b }, 100, protocol.CodeUnknownSignal},
		{"signal 0xFF", func() []byte { b := valid(); b[3] = 0xFF; return b }, 100, protocol.CodeUnknownSignal},
		{"length over max", valid, 9, protocol.CodeFrameTooLarge},
		{"length over max zero", valid, 0, protocol.CodeFrameTooLarge},
		{"negative max", valid, -1, protocol.CodeFrameTooLarge},
		{"max length", func() []byte { return frameHeader(protocol.SigUplink, 0, 1, 0xFFFFFFFF) }, 1 << 40, protocol.CodeFrameTooLarge},
		{"over hard max", func() []byte { return frameHeader(protocol.SigUplink, 0, 1, protocol.HardMaxBody+1) }, 1 << 30, protocol.CodeFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := protocol.ParseHeader(tt.header(), tt.maxBody)
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				t.Fatalf("got %v (%T), want *protocol.Error", err, err)
			}
			if pe.Code != tt.code {
				t.Fatalf("got code %d (%v), want %d", pe.Code, err, tt.code)
			}
		})
	}
}

func TestParseHeaderLengthAtMax(t *testing.T) {
	if _, err := protocol.ParseHeader(frameHeader(protocol.SigUplink, 0, 1, 10), 10); err != nil {
		t.Fatalf("length equal to the maximum must pass: %v", err)
	}
}

func TestAppendFrame(t *testing.T) {
	prefix := []byte("xyz")
	got := protocol.AppendFrame(prefix, protocol.SigUplink, 0, 2, []byte("hi"))
	want := append([]byte("xyz"), frameHeader(protocol.SigUplink, 0, 2, 2)...)
	want = append(want, "hi"...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}

func TestSignals(t *testing.T) {
	fromDevice := map[protocol.Signal]bool{
		protocol.SigLogin: true, protocol.SigHeartbeat: true, protocol.SigUplink: true,
		protocol.SigDownlinkAck: true, protocol.SigClose: true, protocol.SigResume: true,
	}
	for s := 0; s < 256; s++ {
		sig := protocol.Signal(s)
		if known := s >= 1 && s <= 0x0C; sig.Known() != known {
			t.Errorf("%s.Known() = %v", sig, sig.Known())
		}
		if sig.FromDevice() != fromDevice[sig] {
			t.Errorf("%s.FromDevice() = %v", sig, sig.FromDevice())
		}
		if sig.String() == "" {
			t.Errorf("signal %d has no name", s)
		}
	}
}

func TestCodes(t *testing.T) {
	err := error(&protocol.Error{Code: protocol.CodeReplaced, Msg: "by conn 7"})
	if got := err.Error(); got != "plato 1203: replaced by a newer login: by conn 7" {
		t.Fatalf("Error() = %q", got)
	}
	if c, ok := protocol.CodeOf(errors.Join(errors.New("x"), err)); !ok || c != protocol.CodeReplaced {
		t.Fatalf("CodeOf = %d, %v", c, ok)
	}
	if _, ok := protocol.CodeOf(errors.New("plain")); ok {
		t.Fatal("CodeOf found a code in a plain error")
	}
	if got := protocol.Code(2042).String(); got != "business error 2042" {
		t.Fatalf("business code = %q", got)
	}
}
