package protocol

import (
	"fmt"
	"io"
)

// ReadFrame reads one frame from r. The header is checked, including the body length against
// maxBody, before any body byte is read. buf is reused for the body when large enough; the returned
// Frame's Body aliases it.
func ReadFrame(r io.Reader, maxBody int, buf []byte) (Frame, []byte, error) {
	var hb [HeaderLen]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return Frame{}, buf, err
	}
	h, err := ParseHeader(hb[:], maxBody)
	if err != nil {
		return Frame{}, buf, err
	}
	if cap(buf) < int(h.Length) {
		buf = make([]byte, h.Length)
	}
	body := buf[:h.Length]
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, buf, fmt.Errorf("reading %s body: %w", h.Signal, err)
	}
	return Frame{Header: h, Body: body}, buf, nil
}
