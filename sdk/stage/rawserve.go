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
// takes over the reading, so that a slow batch holds up the batches behind it by about this much
// at most.
const inlineLimit = time.Millisecond

// rawReader reads the batches of one data socket (plugin side). A batch with more frames
// already behind it runs on a goroutine of its own, as on the Process stream, so the batches of
// busy lanes run concurrently. The last one read, usually the only one when a caller waits for
// each batch, runs in the reader's goroutine: handing it to a fresh goroutine made the Go
// scheduler wake a second thread for every batch, which then spun looking for work and parked
// again, about a third of the plugin's CPU per round trip (docs/adr/0011-stage-data-socket.md).
//
// Concurrency is kept by takeover: a timer, ticking while batches run inline, starts loop on a
// new goroutine when it finds the batch running inline has run for inlineLimit, and the
// goroutine of the slow batch leaves when it is done. The timer is not re-armed per batch: adding
// a timer makes the runtime wake an idle thread to watch it, which cost about a third of a lone
// caller's round trip on the plugin's side; it ticks while batches come and stops after a tick
// that saw none.
type rawReader struct {
	s      *server
	ctx    context.Context
	cancel context.CancelFunc
	out    *rawSender
	r      *bufio.Reader
	hdr    [frameHeader]byte

	takeover *time.Timer // calls check
	base     time.Time   // started is measured from it (monotonic)
	// inline is the number of the batch the reader runs inline, 0 when none: the reading role
	// goes to whichever of the batch's end and check clears it first.
	inline  atomic.Uint64
	started atomic.Int64  // when the inline batch began, in ns since base
	batches atomic.Uint64 // inline batches begun, which numbers them
	seen    atomic.Uint64 // batches as check last saw it
	ticking atomic.Bool   // takeover is armed
}

func newRawReader(s *server, c *net.UnixConn) *rawReader {
	ctx, cancel := context.WithCancel(context.Background())
	sio := newSocketIO(c)
	rr := &rawReader{s: s, ctx: ctx, cancel: cancel, out: &rawSender{c: c, w: sio},
		r: bufio.NewReaderSize(sio, 64<<10), base: time.Now()}
	rr.takeover = time.AfterFunc(time.Hour, rr.check)
	rr.takeover.Stop()
	return rr
}

// check is takeover's function: take the reading over from a batch that has run inline for
// inlineLimit, else tick on while batches come.
func (rr *rawReader) check() {
	if n := rr.inline.Load(); n != 0 {
		// started may already be a later batch's, which only makes ran shorter.
		ran := time.Duration(int64(time.Since(rr.base)) - rr.started.Load())
		if ran < inlineLimit {
			rr.takeover.Reset(inlineLimit - ran)
			return
		}
		if rr.inline.CompareAndSwap(n, 0) {
			rr.ticking.Store(false) // the new reader arms it for its first inline batch
			rr.loop()
			return
		}
	}
	if b := rr.batches.Load(); rr.seen.Swap(b) != b {
		rr.takeover.Reset(inlineLimit)
		return
	}
	rr.ticking.Store(false)
	// A batch that began inline between the two loads above saw ticking still set and did not
	// arm the timer: arm it for that batch.
	if rr.inline.Load() != 0 && rr.ticking.CompareAndSwap(false, true) {
		rr.takeover.Reset(inlineLimit)
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
		n := rr.batches.Add(1)
		rr.started.Store(int64(time.Since(rr.base)))
		rr.inline.Store(n)
		if !rr.ticking.Load() && rr.ticking.CompareAndSwap(false, true) {
			rr.takeover.Reset(inlineLimit)
		}
		rr.s.runBatch(rr.ctx, b, rr.out)
		if !rr.inline.CompareAndSwap(n, 0) {
			return // taken over: loop goes on in another goroutine
		}
	}
}
