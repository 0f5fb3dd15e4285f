package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/opsapi"
	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	apiservice "github.com/platoim/plato/sdk/business/rpc/plato/api/plato"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

// The migrate scenario measures what moving devices between gateways by Redirect costs
// (docs/operations.md, "Moving devices between gateways"): it starts a platform of its own
// (embedded NATS, a state server and gateways gw-1 and gw-2 as processes of the plato binary,
// the bench's business server), logs --devices SDK clients in through gw-1, pushes at-least-once
// messages to random devices at --push-rate, and after --warmup asks gw-1's ops API to migrate
// every device to gw-2 at --rate Redirects a second. It measures how long the move took (the
// call, and until the last device resumed on gw-2), each device's time from the Redirect to its
// ResumeAck, and whether anything was lost: pushes accepted and never received, received twice,
// devices that logged in again instead of resuming (the business's CONNECTED and DISCONNECTED).

// Defaults of the migrate scenario.
const (
	DefaultMigrateDevices  = 1000
	DefaultMigrateRate     = config.DefaultDrainRate
	DefaultMigratePushRate = 200
	DefaultMigrateWarmup   = 2 * time.Second
	// DefaultMigrateWait bounds the wait for every device to be on gw-2 after the call.
	DefaultMigrateWait = 60 * time.Second
	// maxMigrateDevices bounds the devices, which are SDK clients in this process.
	maxMigrateDevices = 5000
	// migrateSettle is the load kept on after the move, and migrateDeliver the wait for pushes
	// still on their way once it stopped.
	migrateSettle  = 2 * time.Second
	migrateDeliver = 20 * time.Second
)

// MigrateFigures are what `plato bench migrate` measured: the summary's "migrate" object.
type MigrateFigures struct {
	Conditions MigrateConditions `json:"conditions"`
	// CallMs is the ops API call: until every device was sent its Redirect. MovedMs is from the
	// call until the last device was on gw-2 (-1: not within the wait).
	CallMs     float64 `json:"call_ms"`
	MovedMs    float64 `json:"moved_ms"`
	Redirected int     `json:"redirected"`
	// Per device, from reading the Redirect to the ResumeAck on gw-2.
	MoveP50Ms float64 `json:"move_p50_ms"`
	MoveP99Ms float64 `json:"move_p99_ms"`
	MoveMaxMs float64 `json:"move_max_ms"`
	// Devices: resumed on gw-2; not there when the wait ended; logged in again instead of
	// resuming (the business heard CONNECTED twice, or DISCONNECTED).
	Resumed  int `json:"resumed"`
	NotMoved int `json:"not_moved"`
	// NotMovedExamples say where a few devices that did not move are, and their last state.
	NotMovedExamples []string `json:"not_moved_examples,omitempty"`
	Relogged         int      `json:"relogged"`
	Pushes           struct {
		Accepted   int `json:"accepted"`
		Lost       int `json:"lost"`
		Duplicated int `json:"duplicated"`
	} `json:"pushes"`
}

// MigrateConditions are the run's settings.
type MigrateConditions struct {
	Devices      int     `json:"devices"`
	RedirectRate float64 `json:"redirect_rate"`
	PushRate     float64 `json:"push_rate"`
	WarmupS      float64 `json:"warmup_s"`
	Gateways     int     `json:"gateways"`
}

func (o *Options) setMigrateDefaults() {
	if o.Devices == 0 {
		o.Devices = DefaultMigrateDevices
	}
	if o.Rate == 0 {
		o.Rate = DefaultMigrateRate
	}
	if o.PushRate == 0 {
		o.PushRate = DefaultMigratePushRate
	}
	if o.Warmup == 0 {
		o.Warmup = DefaultMigrateWarmup
	}
	if o.AfterRestart == 0 {
		o.AfterRestart = DefaultMigrateWait
	}
}

func (o *Options) validateMigrate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if o.Devices < 1 || o.Devices > maxMigrateDevices {
		bad("devices %d: must be 1 to %d", o.Devices, maxMigrateDevices)
	}
	if o.Rate < 1 || o.Rate > MaxRate {
		bad("rate %v: Redirects per second, 1 to %d", o.Rate, MaxRate)
	}
	if o.PushRate < 0 || o.PushRate > 10_000 {
		bad("push-rate %v: 0 to 10000 pushes per second", o.PushRate)
	}
	if o.Warmup < 0 || o.Warmup > MaxDuration || o.AfterRestart < 0 || o.AfterRestart > MaxDuration {
		bad("warmup and after-restart: 0 to %v", MaxDuration)
	}
	if o.Duration != 0 || o.Window != 0 || o.AfterKill != 0 {
		bad("migrate has its own phases: give --warmup (load before the move) and --after-restart (the longest wait for the move) instead of --duration, --window or --after-kill")
	}
	if o.Baseline || o.Business != "" || len(o.Gateways) > 0 {
		bad("migrate starts its own platform and business server: --baseline, --business and --gateway do not apply")
	}
	if !config.ValidAppID(o.AppID) {
		bad("app ID %q: must be a valid app ID (lower case letters, digits, - and _)", o.AppID)
	}
	if o.PlatoCommand == nil {
		errs = append(errs, errors.New("the migrate scenario starts the roles as processes: it needs the plato binary (Options.PlatoCommand)"))
	}
	return errs
}

// migratePlatform is failover's kind of platform with two gateways and an ops key.
type migratePlatform struct {
	platformBase
	state          *platoProc
	gws            [2]*platoProc
	gwAddrs        [2]string
	admins         [2]string
	stateAddr      string
	tokenSecret    string
	appKey, opsKey string
}

func startMigratePlatform(ctx context.Context, o Options) (p *migratePlatform, err error) {
	p = &migratePlatform{platformBase: platformBase{command: o.PlatoCommand}}
	defer stopOnError(&p, &err)
	if err = p.open(ctx, "migrate", true, 1); err != nil {
		return p, err
	}
	p.tokenSecret, p.appKey, p.opsKey = randomHex(24), randomHex(16), randomHex(16)
	if p.stateAddr, err = freeLoopbackAddr(); err != nil {
		return p, err
	}
	conf := foConfig(p.dir, p.natsServer.ClientURL(), p.tokenSecret, o.AppID, p.appKey, randomHex(24), p.biz.addr(0),
		fmt.Sprintf("ops: {key: %q}\n", p.opsKey))
	if err = p.writeConfig(conf); err != nil {
		return p, err
	}
	if _, err = p.startProc(ctx, &p.state, "state", "state", []string{"PLATO_STATE__ID=state-1", "PLATO_STATE__ADDR=" + p.stateAddr}, reRunningLine); err != nil {
		return p, err
	}
	for i := range p.gws {
		id := fmt.Sprintf("gw-%d", i+1)
		env := []string{"PLATO_GATEWAY__ID=" + id, "PLATO_ADMIN__ADDR=127.0.0.1:0"}
		if p.gwAddrs[i], err = p.startProc(ctx, &p.gws[i], id, "gateway", env, reGatewayLine); err != nil {
			return p, err
		}
		if p.admins[i], err = p.gws[i].waitLine(ctx, reAdminLine, time.Second); err != nil {
			return p, fmt.Errorf("%s's admin address (its ops API): %w", id, err)
		}
		if err = waitGatewayLogin(ctx, p.gwAddrs[i], o.AppID, p.tokenSecret, 30*time.Second); err != nil {
			return p, err
		}
	}
	return p, nil
}

func (p *migratePlatform) stop() {
	stopProcs(p.gws[0], p.gws[1])
	p.state.stop()
	p.platformBase.stop()
}

// migrateDevice is one SDK client of the scenario.
type migrateDevice struct {
	did        string
	c          *client.Client
	mu         sync.Mutex
	got        map[uint64]int
	redirectAt time.Time
	movedIn    time.Duration // Redirect to ResumeAck; 0: not (yet) resumed
	relogged   atomic.Bool
	last       string // the last state the client reported
}

func runMigrate(ctx context.Context, o Options) (*Summary, error) {
	loadBefore := loadAverage()
	start := time.Now()
	pl, err := startMigratePlatform(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("starting the platform: %w", err)
	}
	defer pl.stop()
	devs, err := migrateConnect(ctx, pl, o)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, d := range devs {
			d.c.Close()
		}
	}()
	cli, err := apiservice.NewClient("plato", rpc.Client(pl.stateAddr, pushTimeout)...)
	if err != nil {
		return nil, err
	}
	var (
		pushMu   sync.Mutex
		accepted = map[string][]uint64{}
	)
	pctx, stopPush := context.WithCancel(ctx)
	pushDone := make(chan struct{})
	go func() {
		defer close(pushDone)
		if o.PushRate <= 0 {
			return
		}
		every := time.Duration(float64(time.Second) / o.PushRate)
		next := time.Now()
		caller := &api.Caller{AppId: o.AppID, Key: pl.appKey}
		var wg sync.WaitGroup
		sem := make(chan struct{}, pushConcurrency)
		defer wg.Wait()
		for {
			next = next.Add(every)
			if !sleepCtx(pctx, time.Until(next)) {
				return
			}
			select {
			case sem <- struct{}{}:
			default:
				continue // the state server is behind: this push is not offered
			}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				did := devs[rand.IntN(len(devs))].did
				resp, err := cli.Push(ctx, &api.PushRequest{Caller: caller, Dids: []string{did}, Payload: []byte("migrate"), Qos: api.QoS_AT_LEAST_ONCE})
				if err != nil || len(resp.Targets) == 0 {
					return
				}
				if st := resp.Targets[0].Status; st == api.PushStatus_SENT || st == api.PushStatus_QUEUED {
					pushMu.Lock()
					accepted[did] = append(accepted[did], uint64(resp.MsgId))
					pushMu.Unlock()
				}
			}()
		}
	}()
	defer func() { stopPush(); <-pushDone }()

	if !sleepCtx(ctx, o.Warmup) {
		return nil, ctx.Err()
	}
	mf := MigrateFigures{MovedMs: -1}
	ops := &opsapi.Client{Base: pl.admins[0], Key: pl.opsKey}
	callStart := time.Now()
	res, err := ops.Migrate(ctx, opsapi.MigrateRequest{To: "gw-2", Count: len(devs), Rate: int(o.Rate)})
	if err != nil {
		return nil, fmt.Errorf("migrating: %w", err)
	}
	mf.CallMs, mf.Redirected = ms(time.Since(callStart)), res.Redirected
	deadline := time.Now().Add(o.AfterRestart)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if !slices.ContainsFunc(devs, func(d *migrateDevice) bool { return d.c.Endpoint() != pl.gwAddrs[1] }) {
			mf.MovedMs = ms(time.Since(callStart))
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	sleepCtx(ctx, migrateSettle)
	stopPush()
	<-pushDone

	// Every accepted push must arrive, once.
	missing := func() int {
		n := 0
		for _, d := range devs {
			d.mu.Lock()
			for _, id := range accepted[d.did] {
				if d.got[id] == 0 {
					n++
				}
			}
			d.mu.Unlock()
		}
		return n
	}
	for end := time.Now().Add(migrateDeliver); missing() > 0 && time.Now().Before(end) && ctx.Err() == nil; {
		time.Sleep(50 * time.Millisecond)
	}
	mf.Pushes.Lost = missing()
	var moves []float64
	for _, d := range devs {
		mf.Pushes.Accepted += len(accepted[d.did])
		d.mu.Lock()
		for _, k := range d.got {
			if k > 1 {
				mf.Pushes.Duplicated += k - 1
			}
		}
		if d.movedIn > 0 {
			moves = append(moves, ms(d.movedIn))
		}
		d.mu.Unlock()
		if ep := d.c.Endpoint(); ep != pl.gwAddrs[1] {
			mf.NotMoved++
			if len(mf.NotMovedExamples) < 5 {
				d.mu.Lock()
				mf.NotMovedExamples = append(mf.NotMovedExamples, fmt.Sprintf("%s on %q, last state %s, redirected %v", d.did, ep, d.last, !d.redirectAt.IsZero()))
				d.mu.Unlock()
			}
		}
		_, _, disc := pl.biz.disconnected(d.did)
		if d.relogged.Load() || disc || pl.biz.connectedOf(d.did) > 1 {
			mf.Relogged++
		}
	}
	mf.Resumed = len(moves)
	slices.Sort(moves)
	if len(moves) > 0 {
		mf.MoveP50Ms, mf.MoveP99Ms, mf.MoveMaxMs = quantile(moves, 0.5), quantile(moves, 0.99), moves[len(moves)-1]
	}
	mf.Conditions = MigrateConditions{Devices: len(devs), RedirectRate: o.Rate, PushRate: o.PushRate, WarmupS: o.Warmup.Seconds(), Gateways: 2}

	s := &Summary{Scenario: o.Scenario, Devices: o.Devices, Duration: round3(time.Since(start).Seconds()), Migrate: &mf}
	s.Connected = len(devs)
	s.LoadAverage = &LoadAverage{Before: loadBefore, After: loadAverage()}
	s.Notes = append(s.Notes,
		fmt.Sprintf("%d SDK devices logged in through gw-1, at-least-once pushes at %v/s to random ones; after %v, plato ops migrate of all of them from gw-1 to gw-2 at %v Redirects/s; gateways and the state server are plato processes on this machine, the devices and the business server in the bench process",
			len(devs), o.PushRate, o.Warmup, o.Rate),
		fmt.Sprintf("load average before %s, after %s (/proc/loadavg: 1, 5, 15 minutes)", s.LoadAverage.Before, s.LoadAverage.After))
	return s, nil
}

// quantile of sorted values (nearest rank).
func quantile(sorted []float64, q float64) float64 {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// migrateConnect logs the devices in through gw-1.
func migrateConnect(ctx context.Context, pl *migratePlatform, o Options) ([]*migrateDevice, error) {
	signer, err := token.NewSigner([]byte(pl.tokenSecret), tokenTTL)
	if err != nil {
		return nil, err
	}
	devs := make([]*migrateDevice, o.Devices)
	errs := make([]error, o.Devices)
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	for i := range devs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d := &migrateDevice{did: fmt.Sprintf("migrate-%d", i), got: map[uint64]int{}}
			tok, _ := signer.Issue(o.AppID, d.did, d.did, time.Now(), time.Time{})
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			connected := 0
			d.c, errs[i] = client.Dial(dctx, client.Config{
				Endpoints: []string{pl.gwAddrs[0]}, Token: tok, AppID: o.AppID, DID: d.did, LoginTimeout: 20 * time.Second,
				Reconnect: true, ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second,
				OnDownlink: func(m client.Message) {
					d.mu.Lock()
					d.got[m.MsgID]++
					d.mu.Unlock()
				},
				OnState: func(s client.State) {
					d.mu.Lock()
					defer d.mu.Unlock()
					d.last = s.String()
					switch s.Kind {
					case client.Disconnected:
						if code, ok := protocol.CodeOf(s.Err); ok && code == protocol.CodeMigrated && d.redirectAt.IsZero() {
							d.redirectAt = time.Now()
						}
					case client.Resumed:
						if !d.redirectAt.IsZero() && d.movedIn == 0 {
							d.movedIn = time.Since(d.redirectAt)
						}
					case client.Connected:
						if connected++; connected > 1 {
							d.relogged.Store(true)
						}
					}
				},
			})
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
