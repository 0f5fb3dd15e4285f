package bench

import (
	"bufio"
	"context"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

// The devices of the failover scenario, as a worker runs them (role roleFailover). Unlike the
// other scenarios' devices they behave as an app does when things go wrong: an uplink answered
// 1210 (its state server was lost with it) is sent again at once under a new seq, as
// docs/protocol.md §8.1 advises, and a connection that ends is logged in again after a short
// pause. Both are counted, so a run shows whether a device had to do either.
//
// Uplinks carry a payload ID per device (1, 2, 3... across its connections; a resend keeps it), in
// the form the bench's business server reads back ({"to":"<sink>","text":"<id>"}), so the parent
// can check that every ID a device saw ACKed reached the business.
//
// Times are on the fleet's monotonic clock; the kill and restart instants come from the parent as
// wall-clock times ahead of the event ("kill <unix ns>", "restart <unix ns>"), converted once.

// Failover phases: load before the kill, between the kill and the restart, after the restart.
const (
	phaseWarmup = iota
	phaseAfterKill
	phaseAfterRestart
	numPhases
)

var phaseNames = [numPhases]string{"warmup", "after_kill", "after_restart"}

// Worker commands of the failover role, besides "start" and "stop".
const (
	cmdKill    = "kill"    // kill <unix ns>: the state server dies at that instant
	cmdRestart = "restart" // restart <unix ns>: it is started again from that instant
)

// FailoverWorkerResult is what a failover worker measured, per device where the parent needs to
// split by state server or compare with its business server.
type FailoverWorkerResult struct {
	// First is the global index of the first device; slices below are indexed from it.
	First int `json:"first"`
	// Recovered is, per device, the time from the kill until the first UplinkAck 0 of an uplink
	// it sent after the kill (the first one, or its resend after a 1210, or a later one when that
	// one stays unanswered), in ns; -1 when none came.
	Recovered []int64 `json:"recovered_ns"`
	// FirstTry is, per device, the time from the kill until it sent its first uplink after it,
	// in ns; -1 when it sent none.
	FirstTry []int64 `json:"first_try_ns"`
	// Acked are, per device, the uplink IDs answered with code 0, as ranges lo1,hi1,lo2,hi2...
	Acked [][]uint64 `json:"acked"`
	// Absent are the indexes of devices that never logged in.
	Absent []int `json:"absent,omitempty"`
	// Relogins counts, by device index, the devices that had to log in again.
	Relogins map[int]int `json:"relogins,omitempty"`
	// Phases are the counts of each phase (warmup, after_kill, after_restart).
	Phases [numPhases]PhaseCounts `json:"phases"`
	// Unanswered are uplinks still without an answer after the drain, on a live connection.
	Unanswered uint64 `json:"unanswered"`
	// Pushes the devices received: Delivered counts accepted pushes that arrived (once each),
	// Duplicates further copies, Retransmitted copies flagged as retransmits, Unsolicited arrivals
	// of pushes whose call failed (outcome unknown to the business, but they got there).
	Delivered     uint64 `json:"delivered"`
	Duplicates    uint64 `json:"duplicates"`
	Retransmitted uint64 `json:"retransmitted"`
	Unsolicited   uint64 `json:"unsolicited"`
	// Foreign are downlinks that were not this run's pushes to that device.
	Foreign uint64 `json:"foreign"`
	// Missing are accepted pushes that had not arrived after the drain: the business must be
	// told they were not delivered (UNDELIVERED), or they are lost.
	Missing []MissingPush `json:"missing,omitempty"`
	// Heartbeats sent and answered.
	HeartbeatSent uint64 `json:"heartbeat_sent"`
	HeartbeatAck  uint64 `json:"heartbeat_ack"`
	// Latency is frame sent to UplinkAck 0, over the whole run.
	Latency *Histogram `json:"latency"`
	// Gap is, per device, the time between its last answer (UplinkAck 0 or push) before the kill
	// and its first after it, in ns; -1 when it had none on either side.
	Gap []int64 `json:"gap_ns"`
	// MaxWaitBefore and MaxWaitAfter are the longest an uplink waited for its UplinkAck 0, acked
	// before the kill and after it, in ns.
	MaxWaitBefore int64 `json:"max_wait_before_ns"`
	MaxWaitAfter  int64 `json:"max_wait_after_ns"`
	// MaxWaitAt is when the longest wait after the kill ended, from the kill, in ns.
	MaxWaitAt int64 `json:"max_wait_at_ns"`
	// Connected is how many devices were logged in at the end.
	Connected  int     `json:"connected"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// PhaseCounts are one phase's events, as the devices saw them.
type PhaseCounts struct {
	Sent  uint64 `json:"sent"`  // uplink frames written (resends included)
	Acked uint64 `json:"acked"` // UplinkAck 0
	// Resent counts uplinks sent again after an UplinkAck 1210.
	Resent uint64 `json:"resent"`
	// Codes counts non-zero UplinkAck codes ("uplink ack 1210").
	Codes map[string]int `json:"codes,omitempty"`
	// Unknown are uplinks pending on a connection that ended: no answer will come.
	Unknown uint64 `json:"unknown"`
	// Skipped are sends the device could not make: it was logging in again, or had too many
	// uplinks outstanding.
	Skipped uint64 `json:"skipped"`
	// Dropped counts connections that ended, by reason; Relogins the logins that followed.
	Dropped  map[string]int `json:"dropped,omitempty"`
	Relogins int            `json:"relogins"`
	// Pushes: calls made, targets accepted (SENT, QUEUED, ACKED), and the others by status or error.
	Pushed       uint64         `json:"pushed"`
	PushAccepted uint64         `json:"push_accepted"`
	PushRefused  map[string]int `json:"push_refused,omitempty"`
	PushSkipped  uint64         `json:"push_skipped"`
}

// MissingPush is an accepted push that did not arrive.
type MissingPush struct {
	DID   string `json:"did"`
	MsgID int64  `json:"msg_id"`
}

// foFleet is one worker's failover devices.
type foFleet struct {
	spec   WorkerSpec
	out    *reportWriter
	local  *net.TCPAddr
	epoch  time.Time
	signer *token.Signer
	ctx    context.Context // the worker's: logins again and pushes run on it

	devices []*foDevice // index k is device First+k; nil until it logs in
	devMu   sync.Mutex
	readers sync.WaitGroup
	drivers sync.WaitGroup // pacers
	pushes  sync.WaitGroup // push calls in flight
	relogs  sync.WaitGroup // logins again in flight

	running atomic.Bool
	closing atomic.Bool
	// killAt and restartAt are fleet-clock instants (0: not armed).
	killAt, restartAt atomic.Int64
	// maxWaitBefore and maxWaitAfter are the longest waits for an UplinkAck 0 (notePause).
	maxWaitBefore, maxWaitAfter atomic.Int64
	// maxWaitAt is when the longest wait after the kill ended, from the kill (ns).
	maxWaitAt     atomic.Int64
	recovered     atomic.Int64
	inFlight      atomic.Int64 // uplinks sent and not answered
	hbSent, hbAck atomic.Uint64
	latency       *Recorder

	// Uplinks sent and ACKed (code 0) by phase.
	sent, acked [numPhases]atomic.Uint64

	mu                                 sync.Mutex // guards phases and the counts below
	phases                             [numPhases]PhaseCounts
	duplicates, retransmitted, foreign uint64
}

// foDevice is one device. mu guards everything but idx and did; the connection's reader
// goroutine, the pacers and the pushers all take it.
type foDevice struct {
	f   *foFleet
	idx int
	did string

	mu      sync.Mutex
	nc      net.Conn
	gen     int // connection number: a reader of an older one must not end this one
	up      bool
	hb      time.Duration
	last    int64 // fleet clock of the last write
	seq     uint64
	hbSeq   uint64
	nextID  uint64
	pending []pendingUp
	acked   seenSet
	wbuf    []byte
	pbuf    []byte
	// After the kill: when the first uplink went out, and when an uplink first sent after the
	// kill was ACKed (fleet clock; 0: not yet).
	firstTry, recoveredAt int64
	// lastAnswer is when the device last got an answer (UplinkAck 0, or a push); gap is the
	// time between the last before the kill and the first after it (0: not yet).
	lastAnswer, gap int64
	relogins        int
	// Pushes: the next number, those accepted, and what arrived.
	dlNext   uint64
	accepted []acceptedPush
	seen     seenSet
}

type pendingUp struct {
	seq, id uint64
	first   int64 // when this ID was first sent
	at      int64 // when this seq was sent
}

type acceptedPush struct {
	n     uint64
	msgID int64
}

func newFoFleet(ctx context.Context, spec WorkerSpec, out *reportWriter) (*foFleet, error) {
	signer, err := token.NewSigner([]byte(spec.TokenSecret), tokenTTL)
	if err != nil {
		return nil, err
	}
	f := &foFleet{spec: spec, out: out, epoch: time.Now(), signer: signer, ctx: ctx, latency: NewRecorder(), devices: make([]*foDevice, spec.Count)}
	if spec.SourceIP != "" {
		f.local = &net.TCPAddr{IP: net.ParseIP(spec.SourceIP)}
	}
	return f, nil
}

func (f *foFleet) now() int64 { return int64(time.Since(f.epoch)) }

// fromWall converts a wall-clock instant (unix ns) to the fleet clock.
func (f *foFleet) fromWall(unixNano int64) int64 {
	return f.now() + unixNano - time.Now().UnixNano()
}

// phaseAt is the phase fleet instant t falls in.
func (f *foFleet) phaseAt(t int64) int {
	return phaseOf(t, f.killAt.Load(), f.restartAt.Load())
}

// phaseOf places t against the kill and restart instants (0: not armed yet).
func phaseOf(t, kill, restart int64) int {
	switch {
	case kill == 0 || t < kill:
		return phaseWarmup
	case restart == 0 || t < restart:
		return phaseAfterKill
	}
	return phaseAfterRestart
}

func (f *foFleet) count(t int64, fn func(p *PhaseCounts)) {
	f.mu.Lock()
	fn(&f.phases[f.phaseAt(t)])
	f.mu.Unlock()
}

func incr(m *map[string]int, k string) {
	if *m == nil {
		*m = map[string]int{}
	}
	(*m)[k]++
}

func (f *foFleet) token(did string) string {
	tok, _ := f.signer.Issue(f.spec.AppID, did, did, time.Now(), time.Time{})
	return tok
}

func (f *foFleet) snapshot() []*foDevice {
	f.devMu.Lock()
	defer f.devMu.Unlock()
	out := make([]*foDevice, 0, len(f.devices))
	for _, d := range f.devices {
		if d != nil {
			out = append(out, d)
		}
	}
	return out
}

// connectAll logs every device in, Concurrency at a time, until ctx ends.
func (f *foFleet) connectAll(ctx context.Context) *ConnectResult {
	res := &ConnectResult{Attempted: f.spec.Count, Failures: map[string]int{}, RSSBefore: selfRSS(), Start: time.Now().UnixNano()}
	lat := NewRecorder()
	var mu sync.Mutex
	sem := make(chan struct{}, f.spec.Concurrency)
	var wg sync.WaitGroup
	for k := range f.spec.Count {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			res.Failures["connect budget exhausted before dialing"]++
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			idx := f.spec.First + k
			d := &foDevice{f: f, idx: idx, did: didOf(f.spec.RunID, idx)}
			t0 := time.Now()
			if err := d.login(ctx); err != nil {
				mu.Lock()
				res.Failures[err.Error()]++
				mu.Unlock()
				return
			}
			lat.Record(int64(time.Since(t0)))
			mu.Lock()
			res.End = max(res.End, time.Now().UnixNano())
			mu.Unlock()
			f.devMu.Lock()
			f.devices[k] = d
			f.devMu.Unlock()
		}()
	}
	wg.Wait()
	res.Connected = len(f.snapshot())
	res.Latency = lat.Snapshot()
	res.RSSAfter = selfRSS()
	if res.End == 0 {
		res.End = time.Now().UnixNano()
	}
	if len(res.Failures) == 0 {
		res.Failures = nil
	}
	return res
}

// login dials and logs in, and starts the connection's reader.
func (d *foDevice) login(ctx context.Context) error {
	f := d.f
	login := &protocol.Login{AppID: f.spec.AppID, DID: d.did, UID: d.did, Token: f.token(d.did), Platform: "plato-bench/1"}
	nc, br, ack, err := dialLogin(ctx, f.local, f.spec.Endpoints[d.idx%len(f.spec.Endpoints)], login)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.nc, d.up, d.seq = nc, true, 0
	d.gen++
	gen := d.gen
	d.hb = time.Duration(ack.HeartbeatMs) * time.Millisecond
	if d.hb <= 0 {
		d.hb = 30 * time.Second
	}
	if f.spec.Heartbeat > 0 {
		d.hb = f.spec.Heartbeat
	}
	d.last = f.now()
	d.mu.Unlock()
	f.readers.Add(1)
	go d.readLoop(nc, br, gen)
	return nil
}

// writeLocked writes one frame; a failed write ends the connection. d.mu is held.
func (d *foDevice) writeLocked(sig protocol.Signal, flags uint16, seq uint64, body []byte) bool {
	if !d.up {
		return false
	}
	d.wbuf = protocol.AppendFrame(d.wbuf[:0], sig, flags, seq, body)
	if _, err := d.nc.Write(d.wbuf); err != nil {
		d.endLocked(d.gen, "write: "+errClass(err))
		return false
	}
	d.last = d.f.now()
	return true
}

// sendUplink sends the device's next uplink (the pacer calls it).
func (d *foDevice) sendUplink() {
	f := d.f
	d.mu.Lock()
	defer d.mu.Unlock()
	now := f.now()
	if !d.up || len(d.pending) >= openLoopOutstanding {
		f.count(now, func(p *PhaseCounts) { p.Skipped++ })
		return
	}
	d.nextID++
	d.sendLocked(now, d.nextID, now)
}

// sendLocked writes uplink id under the next seq; first is when id was first sent. d.mu is held.
func (d *foDevice) sendLocked(now int64, id uint64, first int64) bool {
	f := d.f
	p := append(d.pbuf[:0], `{"to":"`...)
	p = append(p, f.spec.Sink...)
	p = append(p, `","text":"`...)
	p = strconv.AppendUint(p, id, 10)
	d.pbuf = append(p, `"}`...)
	seq := d.seq + 1
	if !d.writeLocked(protocol.SigUplink, 0, seq, d.pbuf) {
		return false
	}
	d.seq = seq
	d.pending = append(d.pending, pendingUp{seq: seq, id: id, first: first, at: now})
	if kill := f.killAt.Load(); kill > 0 && first >= kill && d.firstTry == 0 {
		d.firstTry = now
	}
	f.sent[f.phaseAt(now)].Add(1)
	f.inFlight.Add(1)
	return true
}

// readLoop handles the frames of connection gen until it ends.
func (d *foDevice) readLoop(nc net.Conn, br *bufio.Reader, gen int) {
	defer d.f.readers.Done()
	var buf []byte
	for {
		fr, nbuf, err := protocol.ReadFrame(br, protocol.DefaultMaxBody, buf)
		buf = nbuf
		if err != nil {
			d.end(gen, "read: "+errClass(err))
			return
		}
		if !d.handle(fr, gen) {
			return
		}
	}
}

func (d *foDevice) handle(fr protocol.Frame, gen int) bool {
	f := d.f
	switch fr.Signal {
	case protocol.SigUplinkAck:
		var ack protocol.Ack
		if err := ack.Decode(fr.Body); err != nil {
			d.end(gen, "bad uplink ack")
			return false
		}
		d.answer(fr.Seq, gen, ack.Code)
	case protocol.SigHeartbeatAck:
		f.hbAck.Add(1)
	case protocol.SigDownlink:
		var dl protocol.Downlink
		if err := dl.Decode(fr.Body); err != nil {
			d.end(gen, "bad downlink")
			return false
		}
		d.mu.Lock()
		if d.gen == gen {
			d.writeLocked(protocol.SigDownlinkAck, fr.Flags&protocol.FlagBroadcast, fr.Seq, nil)
		}
		d.mu.Unlock()
		d.downlink(fr.Flags, dl.Payload)
	case protocol.SigClose:
		var c protocol.Close
		_ = c.Decode(fr.Body)
		d.end(gen, "close code "+strconv.Itoa(int(c.Code)))
		return false
	}
	return true
}

// answer accounts an UplinkAck for seq on connection gen.
func (d *foDevice) answer(seq uint64, gen int, code protocol.Code) {
	f := d.f
	now := f.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gen != gen {
		return
	}
	i := -1
	for k := range d.pending {
		if d.pending[k].seq == seq {
			i = k
			break
		}
	}
	if i < 0 {
		f.count(now, func(p *PhaseCounts) { incr(&p.Codes, "uplink ack for no pending seq") })
		return
	}
	up := d.pending[i]
	d.pending = append(d.pending[:i], d.pending[i+1:]...)
	f.inFlight.Add(-1)
	switch code {
	case protocol.CodeOK:
		d.acked.mark(up.id)
		f.acked[f.phaseAt(now)].Add(1)
		f.latency.Record(now - up.at)
		if kill := f.killAt.Load(); kill > 0 && up.first >= kill && d.recoveredAt == 0 {
			d.recoveredAt = now
			f.recovered.Add(1)
		}
		d.answeredLocked(now)
		f.notePause(now, now-up.at)
	case protocol.CodeStateLost:
		// Its outcome is unknown: send it again under a new seq, as an app that cares would.
		f.count(now, func(p *PhaseCounts) { incr(&p.Codes, "uplink ack 1210"); p.Resent++ })
		d.sendLocked(now, up.id, up.first)
	default:
		f.count(now, func(p *PhaseCounts) { incr(&p.Codes, "uplink ack "+strconv.Itoa(int(code))) })
	}
}

// notePause keeps the longest an uplink waited for its UplinkAck 0, before the kill and after it.
func (f *foFleet) notePause(now, waited int64) {
	m := &f.maxWaitBefore
	kill := f.killAt.Load()
	if kill > 0 && now >= kill {
		m = &f.maxWaitAfter
	}
	for {
		old := m.Load()
		if waited <= old {
			return
		}
		if m.CompareAndSwap(old, waited) {
			if m == &f.maxWaitAfter {
				f.maxWaitAt.Store(now - kill)
			}
			return
		}
	}
}

// answeredLocked notes an answer at now, and the gap across the kill (the upgrade). d.mu is held.
func (d *foDevice) answeredLocked(now int64) {
	if kill := d.f.killAt.Load(); kill > 0 && now >= kill && d.gap == 0 && d.lastAnswer > 0 && d.lastAnswer < kill {
		d.gap = now - d.lastAnswer
	}
	d.lastAnswer = now
}

// downlink accounts a pushed message.
func (d *foDevice) downlink(flags uint16, payload []byte) {
	f := d.f
	if flags&protocol.FlagRetransmit != 0 {
		f.mu.Lock()
		f.retransmitted++
		f.mu.Unlock()
	}
	p, ok := parsePayload(payload)
	if !ok || p.kind != kindDirect || p.idx != uint32(d.idx) {
		f.mu.Lock()
		f.foreign++
		f.mu.Unlock()
		return
	}
	d.mu.Lock()
	first, _ := d.seen.mark(p.n)
	d.answeredLocked(f.now())
	d.mu.Unlock()
	if !first {
		f.mu.Lock()
		f.duplicates++
		f.mu.Unlock()
	}
}

// end ends connection gen (if it is still the device's).
func (d *foDevice) end(gen int, reason string) {
	d.mu.Lock()
	d.endLocked(gen, reason)
	d.mu.Unlock()
}

// endLocked closes connection gen; unless the fleet is closing, the pending uplinks are counted
// unknown and the device logs in again. d.mu is held.
func (d *foDevice) endLocked(gen int, reason string) {
	f := d.f
	if d.gen != gen || !d.up {
		return
	}
	d.up = false
	d.nc.Close()
	if f.closing.Load() {
		return
	}
	now := f.now()
	n := len(d.pending)
	d.pending = d.pending[:0]
	f.inFlight.Add(-int64(n))
	f.count(now, func(p *PhaseCounts) { p.Unknown += uint64(n); incr(&p.Dropped, reason) })
	f.relogs.Add(1)
	go d.relogin()
}

// relogin logs the device in again, with a growing pause, until it works or the fleet closes.
func (d *foDevice) relogin() {
	f := d.f
	defer f.relogs.Done()
	pause := 50 * time.Millisecond
	for !f.closing.Load() && f.ctx.Err() == nil {
		select {
		case <-time.After(pause):
		case <-f.ctx.Done():
			return
		}
		if f.closing.Load() {
			return
		}
		if err := d.login(f.ctx); err == nil {
			d.mu.Lock()
			d.relogins++
			d.mu.Unlock()
			f.count(f.now(), func(p *PhaseCounts) { p.Relogins++ })
			if f.closing.Load() {
				d.goodbye() // logged in as the fleet said goodbye: this one too
			}
			return
		}
		pause = min(2*pause, time.Second)
	}
}

// heartbeatIfIdle sends a Heartbeat when nothing was written for the heartbeat interval.
func (d *foDevice) heartbeatIfIdle(now int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.up && now-d.last >= int64(d.hb) {
		d.hbSeq++
		if d.writeLocked(protocol.SigHeartbeat, 0, d.hbSeq, nil) {
			d.f.hbSent.Add(1)
		}
	}
}

// goodbye closes the connection with Close 1209.
func (d *foDevice) goodbye() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.writeLocked(protocol.SigClose, 0, 0, (&protocol.Close{Code: protocol.CodeClientClose}).Append(nil)) {
		d.up = false
		d.nc.Close()
	}
}

// pushOne pushes the device's next message, at least once, through the pusher.
func (f *foFleet) pushOne(p *kitexPusher, d *foDevice) {
	d.mu.Lock()
	d.dlNext++
	n := d.dlNext
	d.mu.Unlock()
	now := f.now()
	ctx, cancel := context.WithTimeout(f.ctx, pushTimeout)
	resp, err := p.cli.Push(ctx, &api.PushRequest{Caller: p.caller, Dids: []string{d.did}, Payload: newPayload(kindDirect, uint32(d.idx), n), Qos: api.QoS_AT_LEAST_ONCE})
	cancel()
	why := ""
	switch {
	case err != nil:
		why = "push error: " + rpcErrClass(err)
	case len(resp.Targets) != 1:
		why = "push: no answer for the did"
	default:
		switch st := resp.Targets[0].Status; st {
		case api.PushStatus_SENT, api.PushStatus_QUEUED, api.PushStatus_ACKED:
			d.mu.Lock()
			d.accepted = append(d.accepted, acceptedPush{n: n, msgID: resp.MsgId})
			d.mu.Unlock()
		default:
			why = "push " + st.String()
		}
	}
	f.count(now, func(c *PhaseCounts) {
		c.Pushed++
		if why == "" {
			c.PushAccepted++
		} else {
			incr(&c.PushRefused, why)
		}
	})
}

// settled reports whether nothing is due any more: no uplink waits for its answer and every
// accepted push arrived.
func (f *foFleet) settled() bool {
	if f.inFlight.Load() > 0 {
		return false
	}
	for _, d := range f.snapshot() {
		d.mu.Lock()
		for _, a := range d.accepted {
			if !d.seen.has(a.n) {
				d.mu.Unlock()
				return false
			}
		}
		d.mu.Unlock()
	}
	return true
}

// result collects what the devices measured.
func (f *foFleet) result() *FailoverWorkerResult {
	kill := f.killAt.Load()
	r := &FailoverWorkerResult{
		First: f.spec.First, Recovered: make([]int64, f.spec.Count), FirstTry: make([]int64, f.spec.Count), Gap: make([]int64, f.spec.Count),
		Acked: make([][]uint64, f.spec.Count), Latency: f.latency.Snapshot(),
		HeartbeatSent: f.hbSent.Load(), HeartbeatAck: f.hbAck.Load(),
		MaxWaitBefore: f.maxWaitBefore.Load(), MaxWaitAfter: f.maxWaitAfter.Load(), MaxWaitAt: f.maxWaitAt.Load(),
	}
	f.devMu.Lock()
	devs := append([]*foDevice(nil), f.devices...)
	f.devMu.Unlock()
	for k, d := range devs {
		r.Recovered[k], r.FirstTry[k], r.Gap[k] = -1, -1, -1
		if d == nil {
			r.Absent = append(r.Absent, f.spec.First+k)
			continue
		}
		d.mu.Lock()
		if kill > 0 && d.recoveredAt > 0 {
			r.Recovered[k] = d.recoveredAt - kill
		}
		if kill > 0 && d.firstTry > 0 {
			r.FirstTry[k] = d.firstTry - kill
		}
		if d.gap > 0 {
			r.Gap[k] = d.gap
		}
		r.Acked[k] = d.acked.ranges()
		if d.relogins > 0 {
			if r.Relogins == nil {
				r.Relogins = map[int]int{}
			}
			r.Relogins[d.idx] = d.relogins
		}
		if d.up {
			r.Connected++
			r.Unanswered += uint64(len(d.pending))
		}
		var delivered uint64
		for _, a := range d.accepted {
			if d.seen.has(a.n) {
				delivered++
			} else {
				r.Missing = append(r.Missing, MissingPush{DID: d.did, MsgID: a.msgID})
			}
		}
		r.Delivered += delivered
		r.Unsolicited += d.seen.distinct() - delivered
		d.mu.Unlock()
	}
	f.mu.Lock()
	for i := range numPhases {
		r.Phases[i] = f.phases[i]
		r.Phases[i].Codes = copyCounts(f.phases[i].Codes)
		r.Phases[i].Dropped = copyCounts(f.phases[i].Dropped)
		r.Phases[i].PushRefused = copyCounts(f.phases[i].PushRefused)
		r.Phases[i].Sent = f.sent[i].Load()
		r.Phases[i].Acked = f.acked[i].Load()
	}
	r.Duplicates, r.Retransmitted, r.Foreign = f.duplicates, f.retransmitted, f.foreign
	f.mu.Unlock()
	return r
}

// has reports whether n was marked.
func (s *seenSet) has(n uint64) bool {
	w := n / 64
	return n > 0 && n <= maxSeen && int(w) < len(s.bits) && s.bits[w]&(1<<(n%64)) != 0
}

// ranges lists the marked numbers as ranges lo1,hi1,lo2,hi2... in order.
func (s *seenSet) ranges() []uint64 {
	var out []uint64
	open := false
	for w, word := range s.bits {
		if word == 0 && !open {
			continue
		}
		if word == math.MaxUint64 && open {
			continue
		}
		for b := range uint64(64) {
			n := uint64(w)*64 + b
			set := word&(1<<b) != 0
			switch {
			case set && !open:
				out = append(out, n)
				open = true
			case !set && open:
				out = append(out, n-1)
				open = false
			}
		}
	}
	if open {
		out = append(out, uint64(len(s.bits))*64-1)
	}
	return out
}

// inRanges reports whether n is in ranges lo1,hi1,lo2,hi2...
func inRanges(rs []uint64, n uint64) bool {
	for i := 0; i+1 < len(rs); i += 2 {
		if n >= rs[i] && n <= rs[i+1] {
			return true
		}
	}
	return false
}
