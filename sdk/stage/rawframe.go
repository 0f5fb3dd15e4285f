package stage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// The data socket (rawdata.go) carries the Process stream's two messages, an encoded Batch from
// the host and an encoded Results from the plugin (wire_batch.go, wire_results.go), each as one
// frame: a 4-byte little-endian length, then that many bytes. The plugin is untrusted input to
// the host, so every length is checked against maxFrame before anything is allocated.

const (
	frameHeader = 4
	// maxFrame bounds one frame either way: a Batch or a Results. A batch is at most a lane's
	// batch size of device messages (each at most the gateway's max body), far below this; a
	// larger length is a broken or hostile peer, not a big batch.
	maxFrame = 64 << 20
	// maxHelloFrame bounds the plugin's first frame, which carries only the secret.
	maxHelloFrame = 64
)

// frameError is a frame the peer should never have sent: the connection cannot be trusted past it.
type frameError struct{ msg string }

func (e *frameError) Error() string { return e.msg }

// isFrameError says whether err is a broken frame (as opposed to a closed or failing socket).
func isFrameError(err error) bool {
	var fe *frameError
	return errors.As(err, &fe)
}

// readFrame reads one frame of at most limit bytes from r into a buffer from pool (nil: a new
// slice, the caller's to keep). io.EOF means the peer closed between frames; a frame cut short is
// io.ErrUnexpectedEOF.
func readFrame(r io.Reader, limit int, hdr *[frameHeader]byte, pool *framePool) ([]byte, error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if uint64(n) > uint64(limit) {
		return nil, &frameError{msg: fmt.Sprintf("frame of %d bytes, more than the limit of %d", n, limit)}
	}
	var b []byte
	if pool != nil {
		b = pool.get(int(n))[:n]
	} else {
		b = make([]byte, n)
	}
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// frameReader reads frames as readFrame does, but a read that fails part-way through a frame (a
// deadline) keeps what it read, and the next call goes on from there: the host's callers read the
// data socket with deadlines of their own (stream_mux_lead.go). Frames are new slices, the
// caller's to keep.
type frameReader struct {
	r     io.Reader
	limit int
	hdr   [frameHeader]byte
	hn    int    // header bytes read
	body  []byte // the frame being read, once its header is
	bn    int    // body bytes read
}

func (fr *frameReader) next() ([]byte, error) {
	for fr.hn < frameHeader {
		n, err := fr.r.Read(fr.hdr[fr.hn:])
		fr.hn += n
		if fr.hn == frameHeader {
			break
		}
		if err != nil {
			if errors.Is(err, io.EOF) && fr.hn > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	if fr.body == nil {
		n := binary.LittleEndian.Uint32(fr.hdr[:])
		if uint64(n) > uint64(fr.limit) {
			return nil, &frameError{msg: fmt.Sprintf("frame of %d bytes, more than the limit of %d", n, fr.limit)}
		}
		fr.body = make([]byte, n)
	}
	for fr.bn < len(fr.body) {
		n, err := fr.r.Read(fr.body[fr.bn:])
		fr.bn += n
		if fr.bn == len(fr.body) {
			break
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	b := fr.body
	fr.hn, fr.body, fr.bn = 0, nil, 0
	return b, nil
}

// beginFrame starts a frame in buf (its length is ignored): the header's room, for the message to
// be appended after it; endFrame then fills the header in. A frame so built goes out in one write.
func beginFrame(buf []byte) []byte { return append(buf[:0], 0, 0, 0, 0) }

func endFrame(b []byte) []byte {
	binary.LittleEndian.PutUint32(b, uint32(len(b)-frameHeader))
	return b
}

// maxPooledFrame is the largest buffer a framePool keeps: a rare huge batch is left to the GC
// rather than held for ever.
const maxPooledFrame = 1 << 20

// framePool recycles the buffers of frames once written or read and done with, so that a busy
// stage does not make a batch's worth of garbage per batch on either side.
type framePool struct{ p sync.Pool }

// get returns an empty buffer of capacity n at least.
func (fp *framePool) get(n int) []byte {
	if v, ok := fp.p.Get().(*[]byte); ok && cap(*v) >= n {
		return (*v)[:0]
	}
	return make([]byte, 0, max(n, 512))
}

func (fp *framePool) put(b []byte) {
	if cap(b) == 0 || cap(b) > maxPooledFrame {
		return
	}
	fp.p.Put(&b)
}

// writeFrame writes b as one frame with a single writev; hdr is the caller's scratch header.
func writeFrame(w io.Writer, b []byte, hdr *[frameHeader]byte) error {
	if len(b) > maxFrame {
		return fmt.Errorf("frame of %d bytes, more than the limit of %d", len(b), maxFrame)
	}
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(b)))
	bufs := net.Buffers{hdr[:], b}
	_, err := bufs.WriteTo(w)
	return err
}
