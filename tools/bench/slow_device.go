package bench

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
)

// slowDevice is one device of the slow-consumers scenario: a logged-in socket read by one
// goroutine, which counts the pushes it gets and, for a healthy device, records their latency.
// A stalled device's reader stops reading when the run says so and parks until it is told to
// read again, at the end, to see how its socket ended.
type slowDevice struct {
	idx     int
	did     string
	stalled bool
	nc      net.Conn
	br      *bufio.Reader
	wmu     sync.Mutex // heartbeat writes

	received atomic.Uint64
	accepted atomic.Uint64 // pushes the state server accepted for it
	// frameBytes are the Downlink frames of those pushes, headers included; readBytes the frames
	// the reader took, and socketRead, once a stalled device parked, every byte it took off the
	// socket (readBytes plus what its buffered reader holds). The difference with what waits in
	// its receive queue is what the gateway's side holds for it.
	frameBytes atomic.Uint64
	readBytes  atomic.Uint64
	socketRead atomic.Uint64
	stoppedAt  atomic.Int64 // Unix ns when a stalled device stopped reading
	// How the socket ended: a Close frame's code, and whether the stream ended (EOF, reset).
	closeCode atomic.Int32
	ended     atomic.Bool
	done      chan struct{}
}

// slowRun is what the devices' readers share.
type slowRun struct {
	stop   chan struct{} // closed: the stalled devices stop reading
	resume chan struct{} // closed: they read again, to the end
	// Healthy devices' push-to-receipt latency, by when the push was sent: before stop (without
	// stalled devices), between stop and the last stalled device's close (with), or after it
	// (after, once they are all gone).
	without, with, after *Recorder
	stopWall             atomic.Int64 // Unix ns of stop
	allCutWall           atomic.Int64 // Unix ns when every stalled device was closed (0: not yet)
}

func (r *slowRun) record(sentWall, now int64) {
	stop := r.stopWall.Load()
	switch {
	case stop == 0 || sentWall < stop:
		r.without.Record(now - sentWall)
	case r.allCutWall.Load() == 0 || sentWall < r.allCutWall.Load():
		r.with.Record(now - sentWall)
	default:
		r.after.Record(now - sentWall)
	}
}

// read reads the device's socket until it ends.
func (d *slowDevice) read(r *slowRun) {
	defer close(d.done)
	for {
		if d.stalled {
			select {
			case <-r.stop:
				d.socketRead.Store(d.readBytes.Load() + uint64(d.br.Buffered()))
				d.stoppedAt.Store(time.Now().UnixNano())
				<-r.resume
				d.drain()
				return
			default:
			}
		}
		f, _, err := protocol.ReadFrame(d.br, protocol.HardMaxBody, nil)
		if err != nil {
			d.ended.Store(true)
			return
		}
		d.readBytes.Add(uint64(protocol.HeaderLen + len(f.Body)))
		if !d.frame(f, r) {
			return
		}
	}
}

// frame accounts one frame; false when it ends the connection.
func (d *slowDevice) frame(f protocol.Frame, r *slowRun) bool {
	switch f.Signal {
	case protocol.SigDownlink:
		now := time.Now().UnixNano()
		var dl protocol.Downlink
		if dl.Decode(f.Body) != nil || len(dl.Payload) < payloadLen {
			return true
		}
		p, ok := parsePayload(dl.Payload[:payloadLen])
		if !ok || int(p.idx) != d.idx {
			return true
		}
		d.received.Add(1)
		if !d.stalled {
			r.record(p.sentWall, now)
		}
	case protocol.SigClose:
		var c protocol.Close
		if c.Decode(f.Body) == nil {
			d.closeCode.Store(int32(c.Code))
		}
		return false
	}
	return true
}

// drain reads a stalled device's socket again, to its end, within 20 s: what was on its way, then
// the gateway's Close 1205 if it had room for it, then the end of the stream.
func (d *slowDevice) drain() {
	_ = d.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		f, _, err := protocol.ReadFrame(d.br, protocol.HardMaxBody, nil)
		if err != nil {
			if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
				d.ended.Store(true)
			}
			return
		}
		if f.Signal == protocol.SigClose {
			var c protocol.Close
			if c.Decode(f.Body) == nil {
				d.closeCode.Store(int32(c.Code))
			}
		}
	}
}

// gatewaySide is what the gateway's side holds for a stalled device that parked: pushed to it and
// neither taken off its socket nor waiting in its receive queue (the kernel's send queue and the
// gateway's, and what is on the wire, nothing on loopback). ok is false before it parked, or when
// its receive queue cannot be read.
func (d *slowDevice) gatewaySide() (held, inDevice int64, ok bool) {
	if d.stoppedAt.Load() == 0 {
		return 0, 0, false
	}
	inq, ok := recvQueue(d.nc)
	if !ok {
		return 0, 0, false
	}
	return int64(d.frameBytes.Load()) - int64(d.socketRead.Load()) - int64(inq), int64(inq), true
}

// heartbeat sends a Heartbeat, as any device does while connected (the state server closes a
// silent one after state.heartbeat_timeout).
func (d *slowDevice) heartbeat() {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	_ = d.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = d.nc.Write(protocol.AppendFrame(nil, protocol.SigHeartbeat, 0, 0, nil))
}

// goodbye closes the socket.
func (d *slowDevice) goodbye() {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	_ = d.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = d.nc.Write(protocol.AppendFrame(nil, protocol.SigClose, 0, 0, (&protocol.Close{Code: protocol.CodeClientClose}).Append(nil)))
	_ = d.nc.Close()
}

// slowPusher is the business: at-most-once pushes through Plato's Push, one did per call, paced.
type slowPusher struct {
	p    *kitexPusher
	size int
	sem  chan struct{}

	pushed, accepted, skipped, failed atomic.Uint64
}

// push sends one push to d, whose payload carries its index, number n and the send time, padded to
// size. ok is false when the state server no longer has d's connection (or the call failed).
func (s *slowPusher) push(ctx context.Context, d *slowDevice, n uint64) (ok bool) {
	payload := make([]byte, max(s.size, payloadLen))
	appendPayload(payload[:0], benchPayload{kind: kindDirect, idx: uint32(d.idx), n: n, sentWall: time.Now().UnixNano()})
	s.pushed.Add(1)
	resp, err := s.p.cli.Push(ctx, &api.PushRequest{Caller: s.p.caller, Dids: []string{d.did}, Payload: payload, Qos: api.QoS_AT_MOST_ONCE})
	if err != nil || len(resp.Targets) != 1 {
		if ctx.Err() == nil { // not a call the end of the run cut short
			s.failed.Add(1)
		}
		return false
	}
	if st := resp.Targets[0].Status; st != api.PushStatus_SENT {
		return false
	}
	s.accepted.Add(1)
	d.accepted.Add(1)
	d.frameBytes.Add(uint64(protocol.HeaderLen + 8 + len(payload))) // header, msg ID, payload
	return true
}

// pace calls fire(k) for k = 0, 1, 2... at start + k/rate until ctx ends, each on its own goroutine
// and at most cap(s.sem) at once: a push that finds none free is skipped and counted, an open loop
// never queues. It returns when ctx ends and every call it started has returned.
func (s *slowPusher) pace(ctx context.Context, rate float64, fire func(k uint64)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	step := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(max(time.Millisecond, min(step, 10*time.Millisecond)))
	defer tick.Stop()
	start := time.Now()
	var k uint64
	for {
		due := uint64(time.Since(start) / step)
		for ; k <= due; k++ {
			select {
			case s.sem <- struct{}{}:
				wg.Add(1)
				go func(k uint64) {
					defer wg.Done()
					defer func() { <-s.sem }()
					fire(k)
				}(k)
			default:
				s.skipped.Add(1)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
