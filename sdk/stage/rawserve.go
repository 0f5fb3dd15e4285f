package stage

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// inlineLimit is how long the data socket's reader runs a batch itself before another goroutine
// takes over the reading, so that a slow batch holds up the batches behind it by this much at
// most.
const inlineLimit = time.Millisecond

// rawReader reads the batches of one data socket (plugin side). A batch with more frames
// already behind it runs on a goroutine of its own, as on the Process stream, so the batches of
// busy lanes run concurrently. The last one read, usually the only one when a caller waits for
// each batch, runs in the reader's goroutine: handing it to a fresh goroutine made the Go
// scheduler wake a second thread for every batch, which then spun looking for work and parked
// again, about a third of the plugin's CPU per round trip (docs/adr/0011-stage-data-socket.md).
// Concurrency is kept by takeover, one timer for the socket: armed while a batch runs inline, it
// starts loop on a new goroutine when the batch takes longer than inlineLimit, and the goroutine
// of the slow batch leaves when it is done.
type rawReader struct {
	s        *server
	ctx      context.Context
	cancel   context.CancelFunc
	out      *rawSender
	r        *bufio.Reader
	hdr      [frameHeader]byte
	takeover *time.Timer // calls takeOver; stopped but while a batch runs inline
	// armed is set while the reader runs a batch inline: the reader's role goes to whichever of
	// the batch's end and takeover clears it first.
	armed atomic.Bool
}

// takeOver is takeover's function: the batch running inline is slow, go on reading here.
func (rr *rawReader) takeOver() {
	if rr.armed.CompareAndSwap(true, false) {
		rr.loop()
	}
}

// loop reads and runs batches until the socket closes. One goroutine at a time runs it.
func (rr *rawReader) loop() {
	for {
		b, err := readFrame(rr.r, maxFrame, &rr.hdr, &rr.out.batches)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				rr.s.log.Error("data socket from the host broken", "error", err)
			}
			rr.cancel() // before the close: batches still running then see why their send failed
			rr.out.close()
			return
		}
		if rr.r.Buffered() > 0 {
			go rr.s.runBatch(rr.ctx, b, rr.out)
			continue
		}
		rr.armed.Store(true)
		rr.takeover.Reset(inlineLimit)
		rr.s.runBatch(rr.ctx, b, rr.out)
		if !rr.armed.CompareAndSwap(true, false) {
			return // taken over: loop goes on in another goroutine
		}
		rr.takeover.Stop()
	}
}
