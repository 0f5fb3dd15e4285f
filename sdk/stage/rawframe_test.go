package stage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"
)

func frameOf(b []byte) []byte {
	return append(binary.LittleEndian.AppendUint32(nil, uint32(len(b))), b...)
}

func TestReadFrame(t *testing.T) {
	var hdr [frameHeader]byte
	results := encodeResults(7, []Reply{{}, RejectWith(3, "no")})
	stream := append(frameOf(results), frameOf(nil)...)
	r := bytes.NewReader(stream)
	if b, err := readFrame(r, maxFrame, &hdr, nil); err != nil || !bytes.Equal(b, results) {
		t.Fatalf("first frame: %x %v", b, err)
	}
	if b, err := readFrame(r, maxFrame, &hdr, nil); err != nil || len(b) != 0 {
		t.Fatalf("empty frame: %x %v", b, err)
	}
	if _, err := readFrame(r, maxFrame, &hdr, nil); err != io.EOF {
		t.Fatalf("end: %v, want io.EOF", err)
	}
	if _, err := readFrame(bytes.NewReader(frameOf(results)[:5]), maxFrame, &hdr, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut frame: %v", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{1, 0}), maxFrame, &hdr, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut header: %v", err)
	}
	_, err := readFrame(bytes.NewReader(frameOf(make([]byte, 65))), maxHelloFrame, &hdr, nil)
	if !isFrameError(err) || err.Error() != "frame of 65 bytes, more than the limit of 64" {
		t.Fatalf("oversized: %v", err)
	}
	var w bytes.Buffer
	if err := writeFrame(&w, results, &hdr); err != nil || !bytes.Equal(w.Bytes(), frameOf(results)) {
		t.Fatalf("writeFrame: %x %v", w.Bytes(), err)
	}
}

// FuzzReadFrames feeds what a hostile plugin could write on the data socket through the host's
// reading of it (rawConn.recv without the socket): a frame is never longer than the limit, a
// frame error is exactly a header over the limit, and a Results that peeks fine decodes without
// panicking, into as many replies as it has or with an error. The same bytes read a few at a
// time, with a deadline expiring between every two reads (a caller reading its own result,
// stream_mux_lead.go), give the same frames.
func FuzzReadFrames(f *testing.F) {
	ok := encodeResults(1, []Reply{{}, RejectWith(1, "x"), Rewrite([]byte("p"))})
	f.Add(frameOf(ok))
	f.Add(append(frameOf(ok), frameOf(encodeFailure(2, "boom"))...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3})
	f.Add([]byte{3, 0, 0, 0, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{10, 0})
	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		fr := frameReader{r: r, limit: limit}
		chopped := frameReader{r: &choppyReader{data: data}, limit: limit}
		for {
			off := len(data) - r.Len()
			b, err := fr.next()
			c, cerr := chopped.next()
			for errors.Is(cerr, os.ErrDeadlineExceeded) {
				c, cerr = chopped.next()
			}
			if !bytes.Equal(b, c) || (err == nil) != (cerr == nil) || isFrameError(err) != isFrameError(cerr) {
				t.Fatalf("at %d: read whole %x %v, in pieces %x %v", off, b, err, c, cerr)
			}
			if err != nil {
				over := off+frameHeader <= len(data) && binary.LittleEndian.Uint32(data[off:]) > limit
				if isFrameError(err) != over {
					t.Fatalf("frame error %v at %d, header over the limit: %v", err, off, over)
				}
				return
			}
			if len(b) > limit {
				t.Fatalf("a frame of %d bytes passed the limit", len(b))
			}
			if _, _, err := peekResults(b); err != nil {
				return // the host cuts the plugin off here
			}
			for _, n := range []int{0, 1, 3} {
				_ = decodeResults(b, make([]Reply, n))
			}
		}
	})
}

// choppyReader reads data at most 3 bytes at a time, every other read failing with a deadline.
type choppyReader struct {
	data []byte
	n    int
}

func (c *choppyReader) Read(p []byte) (int, error) {
	c.n++
	if c.n%2 == 1 {
		return 0, os.ErrDeadlineExceeded
	}
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), 3)], c.data)
	c.data = c.data[k:]
	return k, nil
}
