package stage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
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
// panicking, into as many replies as it has or with an error.
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
		var hdr [frameHeader]byte
		r := bytes.NewReader(data)
		for {
			off := len(data) - r.Len()
			b, err := readFrame(r, limit, &hdr, nil)
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
