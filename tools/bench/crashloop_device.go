package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

// The crashloop scenario's devices: a few, in this process, each sending uplinks open loop at its
// share of the rate and keeping, for every answer, when its uplink was sent, when the UplinkAck
// came, and its code. That is what the kills are measured against.

// clAnswer is one answered uplink; times are nanoseconds of the fleet's clock.
type clAnswer struct {
	sent, acked int64
	code        protocol.Code
}

type clFleet struct {
	start   time.Time
	devs    []*clDevice
	readers sync.WaitGroup

	mu      sync.Mutex
	answers []clAnswer // in the order they came
	ended   []string   // why connections ended before the bench closed them

	sent    atomic.Uint64
	skipped atomic.Uint64 // sends left out: too many unanswered on the connection
}

type clDevice struct {
	f   *clFleet
	did string
	nc  net.Conn
	br  *bufio.Reader

	mu      sync.Mutex // guards writes to nc and the fields below
	seq     uint64
	pending map[uint64]int64 // seq -> sent
	wbuf    []byte
	closing bool
}

func (f *clFleet) now() int64 { return int64(time.Since(f.start)) }

// at is the fleet clock's reading for t.
func (f *clFleet) at(t time.Time) int64 { return int64(t.Sub(f.start)) }

// connectCrashloop logs n devices of app in through the gateway at gw, with tokens minted with
// secret, and starts their readers.
func connectCrashloop(ctx context.Context, gw, app, secret, runID string, n int) (*clFleet, error) {
	signer, err := token.NewSigner([]byte(secret), tokenTTL)
	if err != nil {
		return nil, err
	}
	f := &clFleet{start: time.Now()}
	for i := range n {
		did := fmt.Sprintf("%s-%d", runID, i)
		tok, _ := signer.Issue(app, did, did, time.Now(), time.Time{})
		nc, br, _, err := dialLogin(ctx, nil, gw, &protocol.Login{AppID: app, DID: did, UID: did, Token: tok, Platform: "plato-bench/1"})
		if err != nil {
			f.close()
			return nil, fmt.Errorf("device %d: %w", i, err)
		}
		d := &clDevice{f: f, did: did, nc: nc, br: br, pending: map[uint64]int64{}}
		f.devs = append(f.devs, d)
		f.readers.Add(1)
		go d.readLoop()
	}
	return f, nil
}

// run sends uplinks at rate per second in total until ctx ends.
func (f *clFleet) run(ctx context.Context, rate float64, sink string) {
	every := time.Duration(float64(len(f.devs)) / rate * float64(time.Second))
	var wg sync.WaitGroup
	for i, d := range f.devs {
		wg.Go(func() {
			// Spread the devices' sends over the interval, so the fleet samples time evenly.
			select {
			case <-ctx.Done():
				return
			case <-time.After(every * time.Duration(i) / time.Duration(len(f.devs))):
			}
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				d.send(sink)
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	wg.Wait()
}

func (d *clDevice) send(sink string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return
	}
	if len(d.pending) >= openLoopOutstanding {
		d.f.skipped.Add(1)
		return
	}
	d.seq++
	body := fmt.Appendf(nil, `{"to":%q,"text":"%d"}`, sink, d.seq)
	d.wbuf = protocol.AppendFrame(d.wbuf[:0], protocol.SigUplink, 0, d.seq, body)
	d.pending[d.seq] = d.f.now()
	_ = d.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := d.nc.Write(d.wbuf); err != nil {
		delete(d.pending, d.seq)
		return
	}
	d.f.sent.Add(1)
}

func (d *clDevice) readLoop() {
	defer d.f.readers.Done()
	var buf []byte
	for {
		fr, nbuf, err := protocol.ReadFrame(d.br, protocol.DefaultMaxBody, buf)
		buf = nbuf
		if err != nil {
			d.ended("read: " + errClass(err))
			return
		}
		switch fr.Signal {
		case protocol.SigUplinkAck:
			var ack protocol.Ack
			if err := ack.Decode(fr.Body); err != nil {
				d.ended("a malformed UplinkAck")
				return
			}
			now := d.f.now()
			d.mu.Lock()
			sent, ok := d.pending[fr.Seq]
			delete(d.pending, fr.Seq)
			d.mu.Unlock()
			if ok {
				d.f.mu.Lock()
				d.f.answers = append(d.f.answers, clAnswer{sent: sent, acked: now, code: ack.Code})
				d.f.mu.Unlock()
			}
		case protocol.SigClose:
			var c protocol.Close
			_ = c.Decode(fr.Body)
			d.ended(fmt.Sprintf("Close %d", c.Code))
			return
		}
	}
}

func (d *clDevice) ended(why string) {
	d.mu.Lock()
	closing := d.closing
	d.mu.Unlock()
	if closing {
		return
	}
	d.f.mu.Lock()
	d.f.ended = append(d.f.ended, d.did+": "+why)
	d.f.mu.Unlock()
}

// unanswered counts the uplinks still waiting for their UplinkAck.
func (f *clFleet) unanswered() uint64 {
	n := 0
	for _, d := range f.devs {
		d.mu.Lock()
		n += len(d.pending)
		d.mu.Unlock()
	}
	return uint64(n)
}

// snapshot returns the answers so far.
func (f *clFleet) snapshot() []clAnswer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]clAnswer(nil), f.answers...)
}

// okAfter reports whether an uplink sent at or after t (fleet clock) was ACKed with code 0, and
// when the first such ACK came.
func (f *clFleet) okAfter(t int64) (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	first, found := int64(0), false
	for i := len(f.answers) - 1; i >= 0; i-- {
		a := f.answers[i]
		if a.acked < t {
			break // answers come in order: none earlier can be after t
		}
		if a.sent >= t && a.code == protocol.CodeOK && (!found || a.acked < first) {
			first, found = a.acked, true
		}
	}
	return first, found
}

// close says goodbye and waits for the readers.
func (f *clFleet) close() {
	for _, d := range f.devs {
		d.mu.Lock()
		d.closing = true
		_, _ = d.nc.Write(protocol.AppendFrame(nil, protocol.SigClose, 0, 0, (&protocol.Close{Code: protocol.CodeClientClose}).Append(nil)))
		d.nc.Close()
		d.mu.Unlock()
	}
	f.readers.Wait()
}
