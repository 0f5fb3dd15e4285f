package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/token"
)

// The nats-restart scenario measures what a NATS restart costs the platform (docs/operations.md,
// "When NATS goes away"): it starts a platform of its own (natsrestart_platform.go: NATS as a
// `plato nats` process with the registry bucket in memory, a state server, gateway gw-1 and
// ipconf as processes), logs devices in through gw-1, which send uplinks all along, and asks
// ipconf for the list every nrPollEvery. Then:
//
//  1. after Warmup, SIGKILLs NATS, and keeps it away for AfterKill;
//  2. starts it again on the same address and directory (the in-memory bucket is gone);
//  3. measures, from the moment the restarted NATS accepts connections ("back"), when ipconf
//     answers fresh (not stale) again and when state-1 and gw-1 are in the bucket again:
//     converged is the later, given up on at AfterRestart;
//  4. then starts a gateway that was not there before, gw-2, and measures, from when it
//     listens, when the state server's view holds it and when ipconf hands it out;
//  5. counts ipconf's answers during the outage and after (200 fresh, 200 stale, 503, other),
//     the devices' uplinks in each phase, and the devices that lost their connection.

// Defaults of the nats-restart scenario.
const (
	DefaultNATSRestartDevices = 100
	DefaultNATSRestartOutage  = 5 * time.Second
	DefaultNATSRestartAfter   = 15 * time.Second
	// nrUplinkEvery is the pause between two uplinks of one device.
	nrUplinkEvery = 500 * time.Millisecond
	// nrPollEvery is how often ipconf, the bucket and the state server's metrics are looked at.
	nrPollEvery = 50 * time.Millisecond
	// nrConvergeGoal is the issue's budget from NATS back to everything re-registered.
	nrConvergeGoal = 5 * time.Second
)

// NATSRestartFigures are what `plato bench nats-restart` measured: the summary's "nats_restart"
// object. Times are in milliseconds from the moment the restarted NATS accepted connections, -1
// when it did not happen within after_restart_s.
type NATSRestartFigures struct {
	Conditions NATSRestartConditions `json:"conditions"`
	// DownMs is from the kill to the restarted NATS accepting connections.
	DownMs float64 `json:"down_ms"`
	// IPConfFreshMs: the first answer that is not stale (and lists gw-1).
	IPConfFreshMs float64 `json:"ipconf_fresh_ms"`
	// NodesReregisteredMs: state-1 and gw-1 in the registry bucket again.
	NodesReregisteredMs float64 `json:"nodes_reregistered_ms"`
	// ConvergedMs is the later of the two: the platform is whole again.
	ConvergedMs float64 `json:"converged_ms"`
	// NewGateway is gw-2, started once the platform converged.
	NewGateway NRNewGateway `json:"new_gateway"`
	// IPConf counts ipconf's answers while NATS was away and after it was back.
	IPConf struct {
		Outage NRAnswers `json:"outage"`
		After  NRAnswers `json:"after_restart"`
	} `json:"ipconf"`
	Devices NRDevices `json:"devices"`
	// BucketCreates sums plato_registry_bucket_creates_total over the role processes that were
	// there before the outage (gw-2 creates the bucket itself if it is first).
	BucketCreates float64 `json:"bucket_creates"`
	Goals         struct {
		// ConvergedWithin5s: converged_ms <= 5000.
		ConvergedWithin5s bool `json:"converged_within_5s"`
		// NewGatewaySeenWithin5s: the new gateway seen by the state server and ipconf within 5 s
		// of listening.
		NewGatewaySeenWithin5s bool `json:"new_gateway_seen_within_5s"`
		// IPConfNever503: no 503 from ipconf during the outage or after.
		IPConfNever503 bool `json:"ipconf_never_503"`
		// DevicesKept: no device lost its connection.
		DevicesKept bool `json:"devices_kept"`
	} `json:"goals"`
}

// NRNewGateway is a gateway started after the restart: when it listened (from back), and when the
// state server's view and ipconf's answers held it (from when it listened, its own start-up
// aside).
type NRNewGateway struct {
	UpMs float64 `json:"up_ms"`
	// SeenByStateMs: plato_registry_nodes{role="gateway"} of the state server is 2.
	SeenByStateMs float64 `json:"seen_by_state_ms"`
	// InIPConfMs: ipconf hands it out, fresh.
	InIPConfMs float64 `json:"in_ipconf_ms"`
}

// NATSRestartConditions are the run's settings.
type NATSRestartConditions struct {
	Devices        int     `json:"devices"`
	UplinkEveryMs  float64 `json:"uplink_every_ms"`
	WarmupS        float64 `json:"warmup_s"`
	OutageS        float64 `json:"outage_s"`
	AfterRestartS  float64 `json:"after_restart_s"`
	RegistryTTLS   float64 `json:"registry_ttl_s"`
	ReportEveryS   float64 `json:"report_interval_s"`
	IPConfStaleS   float64 `json:"ipconf_stale_after_s"`
	NATSKills      int     `json:"nats_kills"`
	PollEveryMs    float64 `json:"poll_every_ms"`
	BucketInMemory bool    `json:"bucket_in_memory"`
}

// NRAnswers count ipconf's answers by kind.
type NRAnswers struct {
	Fresh       int `json:"fresh"`
	Stale       int `json:"stale"`
	Unavailable int `json:"503"`
	Other       int `json:"other"`
}

// NRDevices are the devices' account: uplinks sent and ACKed per phase, and the devices whose
// connection ended before the run did.
type NRDevices struct {
	Connected    int      `json:"connected"`
	Disconnected int      `json:"disconnected"`
	Before       NRPhase  `json:"before"`
	Outage       NRPhase  `json:"outage"`
	After        NRPhase  `json:"after_restart"`
	Errors       []string `json:"errors,omitempty"`
}

// NRPhase counts uplinks sent in one phase and those ACKed.
type NRPhase struct {
	Sent  int64 `json:"sent"`
	Acked int64 `json:"acked"`
}

func (o *Options) setNATSRestartDefaults() {
	if o.Devices == 0 {
		o.Devices = DefaultNATSRestartDevices
	}
	if o.Warmup == 0 {
		o.Warmup = DefaultWarmup
	}
	if o.AfterKill == 0 {
		o.AfterKill = DefaultNATSRestartOutage
	}
	if o.AfterRestart == 0 {
		o.AfterRestart = DefaultNATSRestartAfter
	}
}

// maxNRDevices bounds the devices, which run in this process.
const maxNRDevices = 5000

func (o *Options) validateNATSRestart() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if o.Devices < 1 || o.Devices > maxNRDevices {
		bad("devices %d: must be 1 to %d", o.Devices, maxNRDevices)
	}
	o.validatePhases(bad)
	if o.Duration != 0 || o.Window != 0 || o.Rate != 0 || o.PushRate != 0 {
		bad("nats-restart has three phases and its own load: give --warmup, --after-kill (NATS away) and --after-restart instead of --duration, --window, --rate or --push-rate")
	}
	if o.Baseline || o.Business != "" || len(o.Gateways) > 0 {
		bad("nats-restart starts its own platform and business server: --baseline, --business and --gateway do not apply")
	}
	if !config.ValidAppID(o.AppID) {
		bad("app ID %q: must be a valid app ID (lower case letters, digits, - and _)", o.AppID)
	}
	if o.PlatoCommand == nil {
		errs = append(errs, errors.New("the nats-restart scenario starts NATS and the roles as processes: it needs the plato binary (Options.PlatoCommand)"))
	}
	return errs
}

// runNATSRestart runs the nats-restart scenario; o is defaulted and valid.
func runNATSRestart(ctx context.Context, o Options) (*Summary, error) {
	loadBefore := loadAverage()
	start := time.Now()
	pl, err := startNRPlatform(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("starting the platform: %w", err)
	}
	defer pl.stop()

	// The bench's own look at the bucket: reads only, so that it never re-creates it itself.
	nc, err := nats.Connect(pl.natsURL, nats.Name("plato-bench"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("connecting to the platform's NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}

	devs, err := nrConnect(ctx, pl, o.Devices)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, d := range devs {
			d.c.Close()
		}
	}()
	ph := &nrPhases{}
	lctx, stopLoad := context.WithCancel(ctx)
	var load sync.WaitGroup
	for _, d := range devs {
		load.Add(1)
		go func() { defer load.Done(); d.run(lctx, ph) }()
	}
	ip := &nrPoller{}
	load.Add(1)
	go func() { defer load.Done(); ip.run(lctx, pl, ph) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			stopLoad()
			load.Wait()
		}
	}
	defer stop()

	if !sleepCtx(ctx, o.Warmup) {
		return nil, ctx.Err()
	}
	killed := pl.nats.kill()
	ph.set(phaseOutage)
	if !sleepCtx(ctx, time.Until(killed.Add(o.AfterKill))) {
		return nil, ctx.Err()
	}
	if err := pl.startNATS(ctx); err != nil {
		return nil, fmt.Errorf("restarting NATS: %w", err)
	}
	back := time.Now()
	ph.set(phaseAfter)

	nf := NATSRestartFigures{
		DownMs: ms(back.Sub(killed)), IPConfFreshMs: -1, NodesReregisteredMs: -1, ConvergedMs: -1,
		NewGateway: NRNewGateway{UpMs: -1, SeenByStateMs: -1, InIPConfMs: -1},
	}
	end := back.Add(o.AfterRestart)
	type up struct {
		at  time.Time
		err error
	}
	gwUp := make(chan up, 1)
	var gw2 time.Time // when gw-2 listened
	for time.Now().Before(end) && ctx.Err() == nil {
		since := func(t time.Time) float64 { return ms(time.Since(t)) }
		if nf.NodesReregisteredMs < 0 && nrRegistered(ctx, js, "state.state-1", "gateway.gw-1") {
			nf.NodesReregisteredMs = since(back)
		}
		nf.IPConfFreshMs = ip.fresh(back)
		if nf.ConvergedMs < 0 && nf.IPConfFreshMs >= 0 && nf.NodesReregisteredMs >= 0 {
			nf.ConvergedMs = max(nf.IPConfFreshMs, nf.NodesReregisteredMs)
			// The platform recovered by itself; now a gateway that was not there before.
			go func() {
				err := pl.startGateway(ctx, "gw-2")
				gwUp <- up{time.Now(), err}
			}()
		}
		if nf.ConvergedMs >= 0 && gw2.IsZero() {
			select {
			case u := <-gwUp:
				if u.err != nil {
					return nil, fmt.Errorf("starting gw-2: %w", u.err)
				}
				gw2 = u.at
				nf.NewGateway.UpMs = ms(gw2.Sub(back))
				ip.watchFor("gw-2", gw2)
			default:
			}
		}
		if !gw2.IsZero() {
			if nf.NewGateway.SeenByStateMs < 0 && metric(pl.stateAdmin, `plato_registry_nodes{role="gateway"}`) == 2 {
				nf.NewGateway.SeenByStateMs = since(gw2)
			}
			nf.NewGateway.InIPConfMs = ip.foundMs()
			if nf.NewGateway.SeenByStateMs >= 0 && nf.NewGateway.InIPConfMs >= 0 {
				break
			}
		}
		time.Sleep(nrPollEvery)
	}
	if nf.ConvergedMs >= 0 && gw2.IsZero() {
		// gw-2 is still starting: let it finish before the platform stops.
		select {
		case <-gwUp:
		case <-time.After(procStartTimeout):
		}
	}
	// Some load after convergence, so that the phase after the restart says something.
	sleepCtx(ctx, min(2*time.Second, time.Until(end)))
	stop()
	measured := time.Since(start)

	for _, a := range pl.admins {
		if v := metric(a, "plato_registry_bucket_creates_total"); v > 0 {
			nf.BucketCreates += v
		}
	}
	nf.Conditions = NATSRestartConditions{
		Devices: o.Devices, UplinkEveryMs: ms(nrUplinkEvery), WarmupS: o.Warmup.Seconds(), OutageS: o.AfterKill.Seconds(),
		AfterRestartS: o.AfterRestart.Seconds(), RegistryTTLS: nrRegistryTTL.Seconds(), ReportEveryS: config.DefaultReportInterval.Seconds(),
		IPConfStaleS: config.DefaultStaleAfter.Seconds(), NATSKills: 1, PollEveryMs: ms(nrPollEvery), BucketInMemory: true,
	}
	nf.IPConf.Outage, nf.IPConf.After = ip.counts()
	nf.Devices = nrDeviceFigures(devs)
	nf.Goals.ConvergedWithin5s = nf.ConvergedMs >= 0 && nf.ConvergedMs <= ms(nrConvergeGoal)
	nf.Goals.NewGatewaySeenWithin5s = nf.NewGateway.SeenByStateMs >= 0 && nf.NewGateway.SeenByStateMs <= ms(nrConvergeGoal) &&
		nf.NewGateway.InIPConfMs >= 0 && nf.NewGateway.InIPConfMs <= ms(nrConvergeGoal)
	nf.Goals.IPConfNever503 = nf.IPConf.Outage.Unavailable == 0 && nf.IPConf.After.Unavailable == 0
	nf.Goals.DevicesKept = nf.Devices.Disconnected == 0

	s := &Summary{Scenario: o.Scenario, Devices: o.Devices, Duration: round3(measured.Seconds()), NATSRestart: &nf}
	s.Connected = nf.Devices.Connected
	for _, p := range []NRPhase{nf.Devices.Before, nf.Devices.Outage, nf.Devices.After} {
		s.Sent += uint64(p.Sent)
		s.Acked += uint64(p.Acked)
	}
	s.LoadAverage = &LoadAverage{Before: loadBefore, After: loadAverage()}
	s.Notes = append(s.Notes,
		fmt.Sprintf("NATS (plato nats, registry bucket in memory) SIGKILLed once after %v and started again on the same address %v later; ipconf, the bucket and the state server's metrics looked at every %v", o.Warmup, o.AfterKill, nrPollEvery),
		fmt.Sprintf("load average before %s, after %s (/proc/loadavg: 1, 5, 15 minutes)", s.LoadAverage.Before, s.LoadAverage.After))
	return s, nil
}

func ms(d time.Duration) float64 { return nsToMs(int64(d)) }

// nrRegistered reports whether every key is in the registry bucket.
func nrRegistered(ctx context.Context, js jetstream.JetStream, keys ...string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, config.DefaultRegistryBucket)
	if err != nil {
		return false
	}
	for _, k := range keys {
		if _, err := kv.Get(ctx, k); err != nil {
			return false
		}
	}
	return true
}

// Phases of the run: what an uplink or an answer is counted in.
const (
	phaseBefore int32 = iota // before the kill
	phaseOutage              // NATS away
	phaseAfter               // NATS back
)

// nrPhases is the current phase, set by the run and read by the devices and the poller.
type nrPhases struct{ phase atomic.Int32 }

func (p *nrPhases) set(n int32) { p.phase.Store(n) }
func (p *nrPhases) now() int32  { return p.phase.Load() }

func phaseName(n int32) string { return [...]string{"before", "outage", "after restart"}[n] }

// nrPoller asks ipconf for the list every nrPollEvery and counts the answers.
type nrPoller struct {
	mu            sync.Mutex
	outage, after NRAnswers
	// firstFresh is the first fresh answer after NATS came back that lists gw-1; found the first
	// fresh one listing want at or after wantFrom.
	firstFresh      time.Time
	want            string
	wantFrom, found time.Time
}

func (p *nrPoller) run(ctx context.Context, pl *nrPlatform, ph *nrPhases) {
	for ctx.Err() == nil {
		n := ph.now()
		asked := time.Now()
		l := pl.list(ctx)
		if ctx.Err() != nil {
			return
		}
		at := time.Now()
		p.mu.Lock()
		var a *NRAnswers
		switch n {
		case phaseOutage:
			a = &p.outage
		case phaseAfter:
			a = &p.after
		}
		if a != nil {
			switch {
			case l.status == 200 && l.stale:
				a.Stale++
			case l.status == 200:
				a.Fresh++
			case l.status == 503:
				a.Unavailable++
			default:
				a.Other++
			}
		}
		if n == phaseAfter && l.status == 200 && !l.stale {
			if p.firstFresh.IsZero() && slices.Contains(l.gateways, "gw-1") {
				p.firstFresh = at
			}
			if p.want != "" && p.found.IsZero() && !asked.Before(p.wantFrom) && slices.Contains(l.gateways, p.want) {
				p.found = at
			}
		}
		p.mu.Unlock()
		sleepCtx(ctx, nrPollEvery)
	}
}

// fresh is when ipconf first answered fresh, with gw-1, after back (-1: not yet).
func (p *nrPoller) fresh(back time.Time) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.firstFresh.IsZero() {
		return -1
	}
	return ms(p.firstFresh.Sub(back))
}

// watchFor starts looking for gateway id in fresh answers asked for from from on.
func (p *nrPoller) watchFor(id string, from time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.want, p.wantFrom = id, from
}

// foundMs is when the gateway watched for was first handed out, from when watching began (-1: not yet).
func (p *nrPoller) foundMs() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.found.IsZero() {
		return -1
	}
	return ms(p.found.Sub(p.wantFrom))
}

func (p *nrPoller) counts() (NRAnswers, NRAnswers) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.outage, p.after
}

// nrDevice is one device through gw-1.
type nrDevice struct {
	did   string
	c     *client.Client
	sent  [3]atomic.Int64
	acked [3]atomic.Int64
	mu    sync.Mutex
	err   error
}

// nrConnect logs n devices in through gw-1 with minted tokens.
func nrConnect(ctx context.Context, pl *nrPlatform, n int) ([]*nrDevice, error) {
	signer, err := token.NewSigner([]byte(pl.tokenSecret), tokenTTL)
	if err != nil {
		return nil, err
	}
	devs := make([]*nrDevice, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	for i := range devs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d := &nrDevice{did: fmt.Sprintf("nats-restart-%d", i)}
			tok, _ := signer.Issue(pl.appID, d.did, d.did, time.Now(), time.Time{})
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			d.c, errs[i] = client.Dial(dctx, client.Config{Endpoints: []string{pl.gwAddrs[0]}, Token: tok, AppID: pl.appID, DID: d.did, LoginTimeout: 20 * time.Second})
			devs[i] = d
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, d := range devs {
			if d != nil && d.c != nil {
				d.c.Close()
			}
		}
		return nil, fmt.Errorf("logging the devices in: %w", err)
	}
	return devs, nil
}

// run sends an uplink every nrUplinkEvery until ctx ends or the connection does.
func (d *nrDevice) run(ctx context.Context, ph *nrPhases) {
	for i := 0; ; i++ {
		n := ph.now()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		d.sent[n].Add(1)
		err := d.c.Send(sctx, []byte(fmt.Sprintf(`{"to":"nats-restart","text":"%d"}`, i)))
		cancel()
		if ctx.Err() != nil {
			d.sent[n].Add(-1) // cut short by the end of the run: not counted
			return
		}
		if err == nil {
			d.acked[n].Add(1)
		} else {
			d.mu.Lock()
			if d.err == nil {
				d.err = fmt.Errorf("%s, %s: %w", d.did, phaseName(n), err)
			}
			d.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-d.c.Done():
			return
		case <-time.After(nrUplinkEvery):
		}
	}
}

func nrDeviceFigures(devs []*nrDevice) NRDevices {
	f := NRDevices{Connected: len(devs)}
	for _, d := range devs {
		select {
		case <-d.c.Done():
			f.Disconnected++
		default:
		}
		for n, p := range []*NRPhase{&f.Before, &f.Outage, &f.After} {
			p.Sent += d.sent[n].Load()
			p.Acked += d.acked[n].Load()
		}
		d.mu.Lock()
		if d.err != nil && len(f.Errors) < 5 {
			f.Errors = append(f.Errors, d.err.Error())
		}
		d.mu.Unlock()
	}
	return f
}
