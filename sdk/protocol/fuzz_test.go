package protocol_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/platoim/plato/sdk/protocol"
)

// The seed corpus in testdata/fuzz/<FuzzName>/ runs with plain `go test`; the f.Add seeds below
// only make sure each fuzzer starts from a valid input even if that directory is lost.

// FuzzParseHeader checks ParseHeader against an independent reading of the header rules.
func FuzzParseHeader(f *testing.F) {
	f.Add(frameHeader(protocol.SigLogin, 0, 1, 19), protocol.DefaultMaxBody)
	f.Fuzz(func(t *testing.T, b []byte, maxBody int) {
		h, err := protocol.ParseHeader(b, maxBody)
		limit := uint64(max(0, min(maxBody, protocol.HardMaxBody)))
		var want protocol.Code
		switch {
		case len(b) < protocol.HeaderLen:
			want = protocol.CodeMalformed
		case b[0] != 'P' || b[1] != 'L':
			want = protocol.CodeBadMagic
		case b[2] != protocol.Version:
			want = protocol.CodeBadVersion
		case b[3] < 1 || b[3] > 0x0C:
			want = protocol.CodeUnknownSignal
		case uint64(binary.BigEndian.Uint32(b[16:20])) > limit:
			want = protocol.CodeFrameTooLarge
		}
		if want != protocol.CodeOK {
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != want {
				t.Fatalf("ParseHeader(% x, %d) = %v, want code %d", b, maxBody, err, want)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseHeader(% x, %d) = %v, want success", b, maxBody, err)
		}
		// Everything but the reserved bytes must survive a re-encode.
		again := make([]byte, protocol.HeaderLen)
		protocol.PutHeader(again, h)
		copy(again[6:8], b[6:8])
		if !bytes.Equal(again, b[:protocol.HeaderLen]) {
			t.Fatalf("re-encoded header % x, input % x", again, b[:protocol.HeaderLen])
		}
	})
}

// FuzzBodies feeds the same bytes to every body decoder. Decoding must never panic, and whatever
// decodes must re-encode to exactly the bytes it consumed and decode again to the same value.
func FuzzBodies(f *testing.F) {
	for _, s := range bodySamples {
		f.Add(s.in.Append(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, k := range bodyKinds {
			v := k.new()
			if err := v.Decode(b); err != nil {
				if code, ok := protocol.CodeOf(err); !ok || code != protocol.CodeMalformed {
					t.Fatalf("%s.Decode: %v, want a CodeMalformed *Error", k.name, err)
				}
				continue
			}
			enc := v.Append(nil)
			if !bytes.HasPrefix(b, enc) {
				t.Fatalf("%s: re-encoded % x is not a prefix of input % x", k.name, enc, b)
			}
			w := k.new()
			if err := w.Decode(enc); err != nil {
				t.Fatalf("%s: re-decode: %v", k.name, err)
			}
			if !reflect.DeepEqual(v, w) {
				t.Fatalf("%s: re-decoded %+v, first decoded %+v", k.name, w, v)
			}
		}
	})
}

// FuzzReadFrame reads a stream delivered in random chunk sizes, the way a socket does, and checks that
// the chunking never changes the frames read, that no body larger than the maximum is ever read, and
// that a refused header consumes exactly the header.
func FuzzReadFrame(f *testing.F) {
	var stream []byte
	stream = protocol.AppendFrame(stream, protocol.SigLogin, 0, 1, (&protocol.Login{AppID: "demo", DID: "d1", UID: "u1", Token: "t"}).Append(nil))
	stream = protocol.AppendFrame(stream, protocol.SigUplink, 0, 2, []byte("hi"))
	f.Add(stream, uint64(1), uint16(64))
	f.Fuzz(func(t *testing.T, stream []byte, seed uint64, maxBody uint16) {
		whole := readAll(t, bytes.NewReader(stream), int(maxBody))
		cr := &chunkReader{data: stream, rng: rand.New(rand.NewPCG(seed, seed>>32))}
		chunked := readAll(t, cr, int(maxBody))
		if !reflect.DeepEqual(whole, chunked) {
			t.Fatalf("chunked read differs\nwhole   %+v\nchunked %+v", whole, chunked)
		}
	})
}

type readResult struct {
	Frames   []protocol.Frame
	Err      string
	Consumed int
}

// readAll reads frames until an error and checks each one against the input it came from.
func readAll(t *testing.T, r io.Reader, maxBody int) readResult {
	cr := &countingReader{r: r}
	var res readResult
	var buf []byte
	for {
		start := cr.n
		f, nbuf, err := protocol.ReadFrame(cr, maxBody, buf)
		buf = nbuf
		if err != nil {
			if _, ok := protocol.CodeOf(err); ok && cr.n-start != protocol.HeaderLen {
				t.Fatalf("a refused header consumed %d bytes, want %d", cr.n-start, protocol.HeaderLen)
			}
			if _, ok := protocol.CodeOf(err); !ok && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unexpected error type: %v", err)
			}
			if errors.Is(err, io.EOF) && cr.n != start {
				t.Fatalf("io.EOF after consuming %d bytes of a frame", cr.n-start)
			}
			res.Err, res.Consumed = err.Error(), cr.n
			return res
		}
		if len(f.Body) > maxBody || int(f.Length) != len(f.Body) || cr.n-start != protocol.HeaderLen+len(f.Body) {
			t.Fatalf("frame %v: body %d bytes, max %d, consumed %d", f, len(f.Body), maxBody, cr.n-start)
		}
		f.Body = bytes.Clone(f.Body) // buf is reused by the next read
		res.Frames = append(res.Frames, f)
	}
}

// chunkReader returns its data in random pieces of 1 to 32 bytes.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), 1+c.rng.IntN(32))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
