package bench

import (
	"context"
	"fmt"
	"math"
	"net"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

// The slow-consumers scenario measures what docs/operations.md ("Slow consumers") promises: a
// device that stops reading is closed with 1205 once its unsent bytes stay above
// gateway.slow_consumer.max_unsent_bytes for gateway.slow_consumer.max_stall, and the devices that
// keep reading do not notice. Like failover it starts its own platform (slow_platform.go: NATS
// and the business server in this process, a state server and a gateway as plato processes). Its
// devices are raw sockets in this process (slow_device.go), each setting its receive buffer
// (DeviceRcvbuf) so that what a stalled one absorbs does not depend on how fast it read before.
//
//  1. Every device logs in and reads. The business pushes, at most once, Rate pushes a second
//     over the healthy devices, and StalledRate a second to each device to be stalled, of
//     PushSize bytes, for Warmup: the healthy devices' push-to-receipt latency without stalled
//     devices.
//  2. The stalled devices stop reading, and the pushes go on as before, until the business heard
//     every stalled device DISCONNECTED (the state server keeps nothing for a Resume) or
//     Duration passed: per stalled device, the time from when it stopped reading to that event
//     and its close code, and the healthy devices' latency of the pushes sent meanwhile (with
//     stalled devices).
//  3. The pushes stop; the healthy devices must have received every push accepted for them. The
//     stalled devices read their sockets again, to the end, to show how the gateway closed them.

// Slow-consumers defaults: 1000 devices, 5% of them stalled, each pushed 1 KB every 250 ms.
const (
	DefaultSlowDevices     = 1000
	DefaultStalledPercent  = 5
	DefaultStalledRate     = 4
	DefaultPushSize        = 1024
	DefaultDeviceRcvbuf    = 64 << 10
	DefaultSlowWarmup      = 20 * time.Second
	DefaultSlowMaxDuration = 2 * time.Minute
	// slowHeartbeat is how often every device heartbeats, well within the state server's default
	// timeout, which would otherwise close the stalled devices itself in a long run.
	slowHeartbeat = 20 * time.Second
	// slowAfter is how long the load goes on once every stalled device was closed.
	slowAfter = 5 * time.Second
)

func (o *Options) setSlowDefaults() {
	if o.Devices == 0 {
		o.Devices = DefaultSlowDevices
	}
	if o.Stalled == 0 {
		if o.StalledPercent == 0 {
			o.StalledPercent = DefaultStalledPercent
		}
		o.Stalled = int(math.Round(float64(o.Devices) * o.StalledPercent / 100))
	}
	if o.StalledRate == 0 {
		o.StalledRate = DefaultStalledRate
	}
	if o.PushSize == 0 {
		o.PushSize = DefaultPushSize
	}
	if o.DeviceRcvbuf == 0 {
		o.DeviceRcvbuf = DefaultDeviceRcvbuf
	}
	if o.Rate == 0 {
		o.Rate = float64(o.Devices - o.Stalled)
	}
	if o.Warmup == 0 {
		o.Warmup = DefaultSlowWarmup
	}
	if o.Duration == 0 {
		o.Duration = DefaultSlowMaxDuration
	}
}

// validateSlow checks the slow-consumers options (after defaults).
func (o *Options) validateSlow() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if o.Devices < 2 || o.Devices > 10_000 {
		bad("devices %d: must be 2 to 10000 (they all run in this process)", o.Devices)
	}
	if o.StalledPercent < 0 || o.StalledPercent > 100 {
		bad("stalled %v%%: must be 0 to 100%%", o.StalledPercent)
	}
	if o.Stalled < 1 || o.Stalled >= o.Devices {
		bad("stalled %d: at least one device, and at least one left healthy of %d", o.Stalled, o.Devices)
	}
	if o.StalledRate <= 0 || o.StalledRate > 1000 {
		bad("stalled rate %v: must be above 0 and at most 1000 pushes per second per stalled device", o.StalledRate)
	}
	if o.Rate <= 0 || o.Rate > 100_000 {
		bad("rate %v: must be above 0 and at most 100000 pushes per second to the healthy devices", o.Rate)
	}
	if total := o.Rate + float64(o.Stalled)*o.StalledRate; total > 100_000 {
		bad("%.0f pushes per second in all: at most 100000", total)
	}
	if o.PushSize < payloadLen || o.PushSize > 60_000 {
		bad("size %d: must be %d to 60000 bytes", o.PushSize, payloadLen)
	}
	if o.DeviceRcvbuf != -1 && (o.DeviceRcvbuf < 1024 || o.DeviceRcvbuf > 64<<20) {
		bad("device rcvbuf %d: must be 1024 to 67108864 bytes, or -1 for the kernel's", o.DeviceRcvbuf)
	}
	if o.MaxUnsent < 0 || o.MaxStall < 0 || o.SendBuffer < 0 {
		bad("max unsent, max stall and send buffer must not be negative (0: Plato's defaults)")
	}
	if o.SendBuffer > 0 && o.SendBuffer < 4096 {
		bad("send buffer %d: at least 4096 bytes (0: Plato's default)", o.SendBuffer)
	}
	if o.Warmup < time.Second || o.Warmup > MaxDuration {
		bad("warmup %v: must be 1s to %v (the latency without stalled devices is measured then)", o.Warmup, MaxDuration)
	}
	if o.Duration < time.Second || o.Duration > MaxDuration {
		bad("duration %v: must be 1s to %v", o.Duration, MaxDuration)
	}
	if o.Window != 0 {
		bad("slow-consumers is an open loop at --rate and --stalled-rate: --window does not apply")
	}
	if o.Baseline || o.Business != "" || len(o.Gateways) > 0 {
		bad("slow-consumers starts its own platform and business server: --baseline, --business and --gateway do not apply")
	}
	if o.Concurrency < 1 || o.Concurrency > 10_000 {
		bad("concurrency %d: must be 1 to 10000", o.Concurrency)
	}
	if o.Drain < 0 || o.Drain > time.Minute {
		bad("drain %v: must be 0 to 1m", o.Drain)
	}
	if !config.ValidAppID(o.AppID) {
		bad("app ID %q: must be a valid app ID (lower case letters, digits, - and _)", o.AppID)
	}
	if o.PlatoCommand == nil {
		errs = append(errs, errNoPlatoCommand)
	}
	return errs
}

// SlowFigures are the slow-consumers scenario's account.
type SlowFigures struct {
	Conditions SlowConditions `json:"conditions"`
	// Stalled devices stopped reading; Cut were closed (the business heard DISCONNECTED), by the
	// code it heard in CutCodes; NotCut were not closed within the duration. The gateway closes
	// them with 1205 (Gateway.Closed1205); the business may hear 1211 instead when a push the
	// state server sent meanwhile found the connection gone before the close event arrived.
	Stalled  int            `json:"stalled"`
	Cut      int            `json:"cut"`
	CutCodes map[string]int `json:"cut_codes"`
	NotCut   int            `json:"not_cut"`
	// TimeToCut is, over the stalled devices closed, from when each stopped reading to the
	// business hearing it was DISCONNECTED. It includes filling the device's own receive buffer,
	// which the gateway cannot see: AboveThreshold starts when what the server's side held for
	// the device (pushed to it, minus what it read and what waits in its receive queue, sampled
	// every 20 ms) went above max_unsent_bytes for good, which is what the gateway bounds.
	TimeToCut      Quantiles `json:"time_to_cut"`
	AboveThreshold Quantiles `json:"above_threshold_to_cut"`
	// ServerSideKB and DeviceHeldKB are, over the same devices, at the last sample before the
	// close: what was pushed to each and is not in the device (held by the gateway's kernel and
	// queue, on its way from the state server, or, once its queue was full, dropped with the
	// connection), and what waited in the device's receive queue.
	ServerSideKB QuantilesKB `json:"server_side_kb"`
	DeviceHeldKB QuantilesKB `json:"device_held_kb"`
	// StalledSaw is how the stalled devices found their socket when they read it again: a Close
	// 1205 frame, or just the end of the stream.
	StalledSaw StalledSaw    `json:"stalled_devices_saw"`
	Healthy    SlowHealthy   `json:"healthy"`
	Gateway    SlowGateway   `json:"gateway"`
	Pushes     SlowPushStats `json:"pushes"`
}

// SlowConditions are what produced the figures.
type SlowConditions struct {
	Devices                int     `json:"devices"`
	Stalled                int     `json:"stalled"`
	PushSize               int     `json:"push_size"`
	StalledPushesPerSec    float64 `json:"stalled_pushes_per_sec_each"`
	StalledBytesPerSec     float64 `json:"stalled_bytes_per_sec_each"`
	HealthyPushesPerSec    float64 `json:"healthy_pushes_per_sec_total"`
	DeviceRcvbuf           int     `json:"device_rcvbuf"`
	MaxUnsentBytes         int     `json:"max_unsent_bytes"`
	MaxStallMs             float64 `json:"max_stall_ms"`
	SocketSendBuffer       int     `json:"socket_send_buffer"`
	WriteQueueBytes        int     `json:"write_queue_bytes"`
	WarmupS                float64 `json:"warmup_s"`
	MaxDurationS           float64 `json:"max_duration_s"`
	ReconnectWindowS       float64 `json:"reconnect_window_s"`
	KernelSocketSendBuffer float64 `json:"kernel_socket_send_buffer"`
}

// QuantilesKB of a set of byte counts, in KB.
type QuantilesKB struct {
	P50 float64 `json:"p50"`
	Max float64 `json:"max"`
}

// StalledSaw counts how the stalled devices' sockets ended.
type StalledSaw struct {
	Close1205 int `json:"close_1205"`
	EndOnly   int `json:"end_of_stream_only"`
	StillOpen int `json:"still_open"`
}

// SlowHealthy are the healthy devices' figures: every push accepted for them must arrive
// (Lost 0), none may be disconnected, and their latency is compared without and with stalled
// devices.
type SlowHealthy struct {
	Devices      int     `json:"devices"`
	Accepted     uint64  `json:"accepted"`
	Received     uint64  `json:"received"`
	Lost         uint64  `json:"lost"`
	Disconnected int     `json:"disconnected"`
	Without      Latency `json:"without_stalled_us"`
	With         Latency `json:"with_stalled_us"`
	// After is the latency of the pushes sent once every stalled device was closed (for 5 s).
	After Latency `json:"after_stalled_us"`
	// P99Ratio and P50Ratio divide the latency with stalled devices by the latency without.
	P99Ratio float64 `json:"p99_ratio"`
	P50Ratio float64 `json:"p50_ratio"`
	// WithCount is how many pushes the "with" figures are of.
	WithCount    uint64 `json:"with_count"`
	WithoutCount uint64 `json:"without_count"`
	AfterCount   uint64 `json:"after_count"`
}

// SlowGateway are the gateway's own counters (its /metrics) at the end: slow consumers by reason,
// and the send buffer the kernel gave its device sockets.
type SlowGateway struct {
	SlowConsumers    float64 `json:"slow_consumers"`
	Stalled          float64 `json:"stalled"`
	QueueFull        float64 `json:"queue_full"`
	WriteTimeout     float64 `json:"write_timeout"`
	Closed1205       float64 `json:"closed_1205"`
	SocketSendBuffer float64 `json:"socket_send_buffer_bytes"`
}

// SlowPushStats count the business's push calls: pushed, accepted for an online device, skipped
// (the open loop found every call slot busy), failed (the call itself failed).
type SlowPushStats struct {
	Pushed   uint64 `json:"pushed"`
	Accepted uint64 `json:"accepted"`
	Skipped  uint64 `json:"skipped"`
	Failed   uint64 `json:"failed"`
}

// runSlow runs the slow-consumers scenario; o is defaulted and valid.
func runSlow(ctx context.Context, o Options) (*Summary, error) {
	loadBefore := loadAverage()
	var notes []string
	note := func(format string, a ...any) { notes = append(notes, fmt.Sprintf(format, a...)) }
	pl, err := startSlowPlatform(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("starting the platform: %w", err)
	}
	defer pl.stop()

	devs, connected, failures, err := connectSlowDevices(ctx, pl, o)
	defer func() {
		for _, d := range devs {
			d.goodbye()
		}
	}()
	if err != nil {
		return nil, err
	}
	run := &slowRun{stop: make(chan struct{}), resume: make(chan struct{}), without: NewRecorder(), with: NewRecorder(), after: NewRecorder()}
	var healthy, stalled []*slowDevice
	for _, d := range devs {
		if d.stalled {
			stalled = append(stalled, d)
		} else {
			healthy = append(healthy, d)
		}
		go d.read(run)
	}
	resumed := sync.OnceFunc(func() { close(run.resume) })
	defer resumed()

	kp, err := newKitexPusher(pl.stateAdr, o.AppID, pl.appKey)
	if err != nil {
		return nil, err
	}
	sp := &slowPusher{p: kp, size: o.PushSize, sem: make(chan struct{}, pushConcurrency)}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var load sync.WaitGroup
	load.Add(3)
	go func() {
		defer load.Done()
		sp.pace(loadCtx, o.Rate, func(k uint64) {
			d := healthy[k%uint64(len(healthy))]
			sp.push(loadCtx, d, k/uint64(len(healthy))+1)
		})
	}()
	cut := make([]bool, len(stalled))
	var cutMu sync.Mutex
	go func() {
		defer load.Done()
		sp.pace(loadCtx, o.StalledRate*float64(len(stalled)), func(k uint64) {
			i := int(k % uint64(len(stalled)))
			cutMu.Lock()
			gone := cut[i]
			cutMu.Unlock()
			if gone {
				return
			}
			if !sp.push(loadCtx, stalled[i], k/uint64(len(stalled))+1) {
				cutMu.Lock()
				cut[i] = true
				cutMu.Unlock()
			}
		})
	}()
	go func() {
		// Each device heartbeats once per slowHeartbeat, spread evenly: a burst of a thousand
		// heartbeats would show in whichever phase it fell.
		defer load.Done()
		const slots = 200
		t := time.NewTicker(slowHeartbeat / slots)
		defer t.Stop()
		for k := 0; ; k++ {
			select {
			case <-loadCtx.Done():
				return
			case <-t.C:
				for i := k % slots; i < len(devs); i += slots {
					devs[i].heartbeat()
				}
			}
		}
	}()

	cpuPids := []int{pl.state.cmd.Process.Pid, pl.gw.cmd.Process.Pid}
	cpu0 := cpuSample(cpuPids)
	start := time.Now()
	if !sleepCtx(ctx, o.Warmup) {
		return nil, ctx.Err()
	}

	// The stalled devices stop reading.
	stopAt := time.Now()
	run.stopWall.Store(stopAt.UnixNano())
	close(run.stop)
	deadline := stopAt.Add(o.Duration)
	limit := int64(orDefault(o.MaxUnsent, config.DefaultSlowMaxUnsent))
	cutAt := make([]time.Time, len(stalled))
	codes := make([]int32, len(stalled))
	above := make([]time.Time, len(stalled))                                   // since when the gateway's side held more than limit
	held, inDevice := make([]int64, len(stalled)), make([]int64, len(stalled)) // at the last sample
	for {
		left := 0
		now := time.Now()
		for i, d := range stalled {
			if !cutAt[i].IsZero() {
				continue
			}
			if at, code, ok := pl.biz.disconnected(d.did); ok {
				cutAt[i], codes[i] = at, code
				continue
			}
			left++
			if h, in, ok := d.gatewaySide(); ok {
				held[i], inDevice[i] = h, in
				switch {
				case h <= limit:
					above[i] = time.Time{}
				case above[i].IsZero():
					above[i] = now
				}
			}
		}
		if left == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	allCut := time.Now()
	run.allCutWall.Store(allCut.UnixNano())
	// The same load a little longer, with the stalled devices gone: whether what they did to the
	// others outlasts them.
	if !sleepCtx(ctx, slowAfter) {
		return nil, ctx.Err()
	}
	measured := time.Since(start)
	cpu1 := cpuSample(cpuPids)
	stopLoad()
	load.Wait()

	// Every push accepted for a healthy device must arrive.
	var accepted uint64
	drainBy := time.Now().Add(o.Drain)
	for {
		var recv uint64
		accepted, recv = 0, 0
		for _, d := range healthy {
			accepted += d.accepted.Load()
			recv += d.received.Load()
		}
		if recv >= accepted || time.Now().After(drainBy) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	// How the stalled devices find their sockets.
	resumed()
	for _, d := range stalled {
		select {
		case <-d.done:
		case <-time.After(25 * time.Second):
		}
	}

	sf := &SlowFigures{Stalled: len(stalled), Pushes: SlowPushStats{
		Pushed: sp.pushed.Load(), Accepted: sp.accepted.Load(), Skipped: sp.skipped.Load(), Failed: sp.failed.Load(),
	}}
	var toCut, aboveToCut []int64
	var gwHeld, devHeld []uint64
	sf.CutCodes = map[string]int{}
	for i := range stalled {
		if cutAt[i].IsZero() {
			sf.NotCut++
		} else {
			sf.Cut++
			sf.CutCodes[fmt.Sprint(codes[i])]++
			toCut = append(toCut, int64(cutAt[i].Sub(time.Unix(0, stalled[i].stoppedAt.Load()))))
			if !above[i].IsZero() {
				aboveToCut = append(aboveToCut, int64(cutAt[i].Sub(above[i])))
			}
			gwHeld, devHeld = append(gwHeld, uint64(max(held[i], 0))), append(devHeld, uint64(inDevice[i]))
		}
		d := stalled[i]
		switch {
		case protocol.Code(d.closeCode.Load()) == protocol.CodeSlowConsumer:
			sf.StalledSaw.Close1205++
		case d.ended.Load():
			sf.StalledSaw.EndOnly++
		default:
			sf.StalledSaw.StillOpen++
		}
	}
	sf.TimeToCut, sf.AboveThreshold = quantilesMs(toCut), quantilesMs(aboveToCut)
	sf.ServerSideKB, sf.DeviceHeldKB = quantilesKB(gwHeld), quantilesKB(devHeld)

	h := &sf.Healthy
	h.Devices = len(healthy)
	for _, d := range healthy {
		h.Received += d.received.Load()
		if _, _, ok := pl.biz.disconnected(d.did); ok {
			h.Disconnected++
		}
	}
	h.Accepted = accepted
	if accepted > h.Received {
		h.Lost = accepted - h.Received
	}
	wo, wi, af := run.without.Snapshot(), run.with.Snapshot(), run.after.Snapshot()
	h.Without, h.With, h.After = latencyOf(wo), latencyOf(wi), latencyOf(af)
	h.WithoutCount, h.WithCount, h.AfterCount = wo.Count(), wi.Count(), af.Count()
	if h.Without.P99 > 0 && h.With.P99 > 0 {
		h.P99Ratio = round3(h.With.P99 / h.Without.P99)
	}
	if h.Without.P50 > 0 && h.With.P50 > 0 {
		h.P50Ratio = round3(h.With.P50 / h.Without.P50)
	}

	sf.Gateway = SlowGateway{
		SlowConsumers:    pl.gatewayMetric("plato_gateway_slow_consumers_total"),
		Stalled:          pl.gatewayMetric("plato_gateway_slow_consumers_total", `reason="stalled"`),
		QueueFull:        pl.gatewayMetric("plato_gateway_slow_consumers_total", `reason="queue_full"`),
		WriteTimeout:     pl.gatewayMetric("plato_gateway_slow_consumers_total", `reason="write_timeout"`),
		Closed1205:       pl.gatewayMetric("plato_gateway_connections_closed_total", `reason="1205"`),
		SocketSendBuffer: pl.gatewayMetric("plato_gateway_socket_send_buffer_bytes"),
	}
	sf.Conditions = SlowConditions{
		Devices: o.Devices, Stalled: len(stalled), PushSize: o.PushSize, StalledPushesPerSec: o.StalledRate,
		StalledBytesPerSec: o.StalledRate * float64(o.PushSize), HealthyPushesPerSec: o.Rate, DeviceRcvbuf: o.DeviceRcvbuf,
		MaxUnsentBytes: orDefault(o.MaxUnsent, config.DefaultSlowMaxUnsent), SocketSendBuffer: orDefault(o.SendBuffer, config.DefaultSocketSendBuffer),
		MaxStallMs:      float64(cmp0(o.MaxStall, config.DefaultSlowMaxStall).Milliseconds()),
		WriteQueueBytes: config.DefaultWriteQueueBytes, WarmupS: o.Warmup.Seconds(), MaxDurationS: o.Duration.Seconds(),
		KernelSocketSendBuffer: sf.Gateway.SocketSendBuffer,
	}

	s := &Summary{Scenario: o.Scenario, Devices: o.Devices, Duration: round3(measured.Seconds()), Mode: "open", Rate: o.Rate, SlowConsumers: sf}
	f := &s.Figures
	f.Connected, f.ConnectFailures = connected, failures
	f.Sent, f.Acked, f.Lost = h.Accepted, h.Received, h.Lost
	f.Skipped = sf.Pushes.Skipped
	f.Latency, f.hist = h.With, wi
	if secs := measured.Seconds(); secs > 0 {
		f.ServerCPU = round3(cpuSince(cpu0, cpu1) / secs)
	}
	s.LoadAverage = &LoadAverage{Before: loadBefore, After: loadAverage()}
	notes = append(notes, slowNotes(sf, o)...)
	note("cores busy during the run: state server and gateway %.2f, of %d on this machine (the devices, the business server and NATS run in the bench's own process, not counted); load average before %s, after %s (/proc/loadavg: 1, 5, 15 minutes)",
		f.ServerCPU, runtime.NumCPU(), loadBefore, s.LoadAverage.After)
	s.Notes = notes
	return s, nil
}

// connectSlowDevices logs every device in, o.Concurrency at a time; the first o.Stalled are the
// ones that will stop reading. It fails unless every device logged in: the figures count them.
func connectSlowDevices(ctx context.Context, pl *slowPlatform, o Options) (devs []*slowDevice, connected int, failures map[string]int, err error) {
	signer, err := token.NewSigner([]byte(pl.tokenSecret), tokenTTL)
	if err != nil {
		return nil, 0, nil, err
	}
	dialer := net.Dialer{Control: rcvbufControl(max(o.DeviceRcvbuf, 0))}
	slots := make([]*slowDevice, o.Devices)
	errs := make([]error, o.Devices)
	sem := make(chan struct{}, min(o.Concurrency, 200))
	var wg sync.WaitGroup
	for i := range o.Devices {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			did := fmt.Sprintf("slow-%d", i)
			tok, _ := signer.Issue(o.AppID, did, did, time.Now(), time.Time{})
			nc, br, _, err := dialLoginWith(ctx, dialer, pl.gwAddr, &protocol.Login{AppID: o.AppID, DID: did, UID: did, Token: tok, Platform: "plato-bench/1"})
			if err != nil {
				errs[i] = err
				return
			}
			slots[i] = &slowDevice{idx: i, did: did, stalled: i < o.Stalled, nc: nc, br: br, done: make(chan struct{})}
		}()
	}
	wg.Wait()
	for i, d := range slots {
		if d != nil {
			devs = append(devs, d)
			continue
		}
		if failures == nil {
			failures = map[string]int{}
		}
		failures[errs[i].Error()]++
	}
	if len(devs) != o.Devices {
		return devs, len(devs), failures, fmt.Errorf("%d of %d devices did not log in: %v", o.Devices-len(devs), o.Devices, failures)
	}
	return devs, len(devs), nil, nil
}

func slowNotes(sf *SlowFigures, o Options) []string {
	c := sf.Conditions
	out := []string{
		fmt.Sprintf("the bench ran its own platform: NATS (embedded) and its business server in this process, a state server (state.reconnect_window 0: the business hears DISCONNECTED with the close code at once) and a gateway as plato processes, all on 127.0.0.1, with gateway.slow_consumer.max_unsent_bytes %d, max_stall %v, gateway.socket_send_buffer %d (the kernel gave %.0f)",
			c.MaxUnsentBytes, time.Duration(c.MaxStallMs)*time.Millisecond, c.SocketSendBuffer, c.KernelSocketSendBuffer),
		fmt.Sprintf("%d of %d devices stopped reading after a %v warm-up; the business pushed each of them %g pushes/s of %d bytes (%.0f KB/s) before and after, and %g pushes/s over the %d others, at most once, one did per call; time to cut runs from when a device stopped reading to the business hearing it DISCONNECTED",
			c.Stalled, c.Devices, o.Warmup, c.StalledPushesPerSec, c.PushSize, c.StalledBytesPerSec/1000, c.HealthyPushesPerSec, sf.Healthy.Devices),
	}
	if o.DeviceRcvbuf > 0 {
		out = append(out, fmt.Sprintf("every device set SO_RCVBUF %d before connecting (the kernel doubles it): what a stalled device absorbs before anything stays unsent on the gateway's side is its own receive buffer, which on loopback would otherwise have autotuned up to net.ipv4.tcp_rmem's maximum while it read", o.DeviceRcvbuf))
	}
	if sf.NotCut > 0 {
		out = append(out, fmt.Sprintf("%d stalled devices were not closed within %v", sf.NotCut, o.Duration))
	}
	if n := sf.Cut - sf.CutCodes["1205"]; n > 0 {
		out = append(out, fmt.Sprintf("the business heard %d of the closed devices DISCONNECTED with another code than 1205 (%v; the gateway closed %.0f with 1205): 1211 when a push found the connection gone at the gateway before the state server had its close event", n, sf.CutCodes, sf.Gateway.Closed1205))
	}
	if h := sf.Healthy; h.Lost > 0 || h.Disconnected > 0 {
		out = append(out, fmt.Sprintf("healthy devices: %d pushes accepted for them never arrived, %d were disconnected", h.Lost, h.Disconnected))
	}
	if sf.Pushes.Skipped > 0 {
		out = append(out, fmt.Sprintf("%d pushes were skipped: the open loop found all %d push calls in flight", sf.Pushes.Skipped, pushConcurrency))
	}
	return out
}

// quantilesKB are the nearest-rank median and the maximum of byte counts, in KB.
func quantilesKB(v []uint64) QuantilesKB {
	if len(v) == 0 {
		return QuantilesKB{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	kb := func(b uint64) float64 { return round3(float64(b) / 1000) }
	return QuantilesKB{P50: kb(s[(len(s)+1)/2-1]), Max: kb(s[len(s)-1])}
}

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func cmp0(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}
