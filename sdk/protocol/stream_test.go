package protocol_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/platoim/plato/sdk/protocol"
)

func TestReadFrame(t *testing.T) {
	var stream []byte
	stream = protocol.AppendFrame(stream, protocol.SigLogin, 0, 1, (&protocol.Login{AppID: "demo", DID: "d1"}).Append(nil))
	stream = protocol.AppendFrame(stream, protocol.SigHeartbeat, 0, 5, nil)
	stream = protocol.AppendFrame(stream, protocol.SigUplink, 0, 2, []byte("hi"))
	stream = protocol.AppendFrame(stream, protocol.SigDownlink, protocol.FlagRetransmit, 3, (&protocol.Downlink{MsgID: 9, Payload: []byte("x")}).Append(nil))

	want := []struct {
		sig   protocol.Signal
		flags uint16
		seq   uint64
		n     int
	}{
		{protocol.SigLogin, 0, 1, 16},
		{protocol.SigHeartbeat, 0, 5, 0},
		{protocol.SigUplink, 0, 2, 2},
		{protocol.SigDownlink, protocol.FlagRetransmit, 3, 9},
	}
	for _, readers := range []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"one byte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
		{"data+EOF", iotest.DataErrReader},
	} {
		t.Run(readers.name, func(t *testing.T) {
			r := readers.wrap(bytes.NewReader(stream))
			var buf []byte
			for i, w := range want {
				f, nbuf, err := protocol.ReadFrame(r, protocol.DefaultMaxBody, buf)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				buf = nbuf
				if f.Signal != w.sig || f.Flags != w.flags || f.Seq != w.seq || len(f.Body) != w.n || int(f.Length) != w.n {
					t.Fatalf("frame %d = %v, want %+v", i, f, w)
				}
			}
			if _, _, err := protocol.ReadFrame(r, protocol.DefaultMaxBody, buf); err != io.EOF {
				t.Fatalf("after the last frame: %v, want io.EOF", err)
			}
		})
	}
}

func TestReadFrameReusesBuffer(t *testing.T) {
	stream := protocol.AppendFrame(nil, protocol.SigUplink, 0, 1, []byte("abc"))
	buf := make([]byte, 0, 64)
	f, nbuf, err := protocol.ReadFrame(bytes.NewReader(stream), 64, buf)
	if err != nil {
		t.Fatal(err)
	}
	if &nbuf[:1][0] != &buf[:1][0] || &f.Body[0] != &buf[:1][0] {
		t.Fatal("a large enough buffer must be reused for the body")
	}
}

func TestReadFrameTruncated(t *testing.T) {
	full := protocol.AppendFrame(nil, protocol.SigUplink, 0, 1, []byte("payload"))
	for n := 1; n < len(full); n++ {
		_, _, err := protocol.ReadFrame(bytes.NewReader(full[:n]), protocol.DefaultMaxBody, nil)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("stream cut at %d of %d: got %v, want io.ErrUnexpectedEOF", n, len(full), err)
		}
	}
	if _, _, err := protocol.ReadFrame(bytes.NewReader(nil), protocol.DefaultMaxBody, nil); err != io.EOF {
		t.Fatalf("empty stream: got %v, want io.EOF", err)
	}
}

func TestReadFrameOversizeDoesNotReadBody(t *testing.T) {
	stream := protocol.AppendFrame(nil, protocol.SigUplink, 0, 1, make([]byte, 100))
	r := bytes.NewReader(stream)
	_, buf, err := protocol.ReadFrame(r, 99, nil)
	if code, ok := protocol.CodeOf(err); !ok || code != protocol.CodeFrameTooLarge {
		t.Fatalf("got %v, want code %d", err, protocol.CodeFrameTooLarge)
	}
	if read := len(stream) - r.Len(); read != protocol.HeaderLen {
		t.Fatalf("read %d bytes, want only the %d-byte header", read, protocol.HeaderLen)
	}
	if buf != nil {
		t.Fatal("no body buffer may be allocated for a refused frame")
	}
}

func TestReadFrameHeaderErrors(t *testing.T) {
	bad := protocol.AppendFrame(nil, protocol.SigUplink, 0, 1, nil)
	bad[0] = 'X'
	_, _, err := protocol.ReadFrame(bytes.NewReader(bad), protocol.DefaultMaxBody, nil)
	if code, ok := protocol.CodeOf(err); !ok || code != protocol.CodeBadMagic {
		t.Fatalf("got %v, want code %d", err, protocol.CodeBadMagic)
	}
}

func TestReadFrameReaderError(t *testing.T) {
	boom := errors.New("boom")
	full := protocol.AppendFrame(nil, protocol.SigUplink, 0, 1, []byte("payload"))
	r := io.MultiReader(bytes.NewReader(full[:protocol.HeaderLen+2]), iotest.ErrReader(boom))
	if _, _, err := protocol.ReadFrame(r, protocol.DefaultMaxBody, nil); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the reader's error", err)
	}
}
