package bench

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

// fleet is one worker's share of the devices and everything it counts. Counters are atomics so
// every connection's reader updates them without a lock; the maps of reasons, rarely touched, take
// mu.
type fleet struct {
	spec    WorkerSpec
	out     *reportWriter
	local   *net.TCPAddr // source address of every connection, or nil
	epoch   time.Time    // the fleet clock's zero; now() is nanoseconds since
	devMu   sync.Mutex
	devices []*device // the logged-in ones; only appended to, during the connect phase
	readers sync.WaitGroup
	drivers sync.WaitGroup // load goroutines of the measured phase
	pusher  pusher         // downlink scenario only

	closing atomic.Bool  // goodbye time: drops are no longer counted
	running atomic.Bool  // the measured phase is on: closed loops keep sending
	start   atomic.Int64 // fleet clock at the start of the measured phase

	sent, acked, refused, dup, unexpected, skipped atomic.Uint64
	inFlight                                       atomic.Int64 // uplinks sent and not answered
	pushed                                         atomic.Uint64
	hbSent, hbAck, other, retransmits              atomic.Uint64
	latency                                        *Recorder
	perSec, sentPerSec                             []atomic.Uint64
	rounds                                         []roundAgg

	mu    sync.Mutex
	codes map[string]int
	drops map[string]int
}

type roundAgg struct {
	received atomic.Uint64
	last     atomic.Int64
}

func newFleet(spec WorkerSpec, out *reportWriter) *fleet {
	// Seconds of the measured phase and the drain, plus slack for rounding.
	secs := int((spec.Duration+spec.Drain)/time.Second) + 3
	f := &fleet{
		spec: spec, out: out, epoch: time.Now(), latency: NewRecorder(),
		perSec: make([]atomic.Uint64, secs), sentPerSec: make([]atomic.Uint64, secs),
		codes: map[string]int{}, drops: map[string]int{},
	}
	if spec.Scenario == ScenarioBroadcast {
		f.rounds = make([]roundAgg, maxRounds(spec.Duration, spec.Interval)+1)
	}
	if spec.SourceIP != "" {
		f.local = &net.TCPAddr{IP: net.ParseIP(spec.SourceIP)}
	}
	return f
}

// maxRounds is how many broadcast rounds start within d at one per interval (the first at 0).
func maxRounds(d, interval time.Duration) int {
	if interval <= 0 {
		interval = DefaultInterval
	}
	return int(d/interval) + 1
}

// now is the fleet's monotonic clock in nanoseconds.
func (f *fleet) now() int64 { return int64(time.Since(f.epoch)) }

// closedLoop reports whether an answer should trigger the next send.
func (f *fleet) closedLoop() bool {
	return f.running.Load() && f.spec.Rate == 0 && f.spec.Window > 0 && f.spec.Scenario == ScenarioUplink
}

// secOf is the index of the measured phase's second that fleet time t falls in.
func (f *fleet) secOf(t int64) int {
	s := int((t - f.start.Load()) / int64(time.Second))
	return max(0, min(s, len(f.perSec)-1))
}

func (f *fleet) countSent(t int64) { f.sentPerSec[f.secOf(t)].Add(1) }
func (f *fleet) countDone(t int64) { f.perSec[f.secOf(t)].Add(1) }

func (f *fleet) countCode(what string) {
	f.mu.Lock()
	f.codes[what]++
	f.mu.Unlock()
}

func (f *fleet) countDrop(reason string) {
	f.mu.Lock()
	f.drops[reason]++
	f.mu.Unlock()
}

// uplinkAnswer accounts one UplinkAck received at fleet time now for an uplink sent at at.
func (f *fleet) uplinkAnswer(now, at int64, a answer, code protocol.Code) {
	switch a {
	case answerFirst:
		f.inFlight.Add(-1)
		if code == 0 {
			f.acked.Add(1)
			f.latency.Record(now - at)
			f.countDone(now)
		} else {
			f.refused.Add(1)
			f.countCode("uplink ack " + strconv.Itoa(int(code)))
		}
	case answerDuplicate:
		f.dup.Add(1)
	case answerUnknown:
		f.unexpected.Add(1)
	}
}

// downlink accounts one Downlink payload received by d.
func (f *fleet) downlink(d *device, payload []byte) {
	p, ok := parsePayload(payload)
	if !ok {
		f.other.Add(1) // not ours: the demo's "bench-sink is offline" note, say
		return
	}
	now := f.now()
	lat := time.Now().UnixNano() - p.sentWall
	switch p.kind {
	case kindDirect:
		if p.idx != uint32(d.idx) {
			f.unexpected.Add(1) // pushed to another device: misrouted
			return
		}
		first, ok := d.seen.mark(p.n)
		switch {
		case !ok:
			f.unexpected.Add(1)
		case first:
			f.acked.Add(1)
			f.latency.Record(lat)
			f.countDone(now)
			select {
			case d.dlWake <- struct{}{}:
			default:
			}
		default:
			f.dup.Add(1)
		}
	case kindBroadcast:
		first, ok := d.rounds.mark(p.n)
		switch {
		case !ok || int(p.n) >= len(f.rounds):
			f.unexpected.Add(1)
		case first:
			f.acked.Add(1)
			f.latency.Record(lat)
			f.countDone(now)
			r := &f.rounds[p.n]
			r.received.Add(1)
			for {
				m := r.last.Load()
				if lat <= m || r.last.CompareAndSwap(m, lat) {
					break
				}
			}
		default:
			f.dup.Add(1)
		}
	}
}

// snapshot is the devices logged in so far.
func (f *fleet) snapshot() []*device {
	f.devMu.Lock()
	defer f.devMu.Unlock()
	return f.devices[:len(f.devices):len(f.devices)]
}

// connected counts the devices still up.
func (f *fleet) connected() int {
	n := 0
	for _, d := range f.snapshot() {
		if d.up.Load() {
			n++
		}
	}
	return n
}
