package gateway

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/platoim/plato/internal/opsapi"
	"github.com/platoim/plato/internal/telemetry"
)

// Moving devices to other gateways by Redirect (docs/operations.md, "Moving devices"): a migrate
// moves some of them, a drain all of them and every device that logs in afterwards, paced so that
// the gateways they go to and the state servers they Resume on take them without a spike.

// Why a device was redirected, as plato_gateway_redirects_total's cause.
const (
	causeMigrate = iota
	causeDrain
	causeShutdown
	numCauses
)

var causeNames = [numCauses]string{"migrate", "drain", "shutdown"}

// OpsError is a refused operation: Status is the HTTP status the ops API answers it with.
type OpsError struct {
	Status int
	Msg    string
}

func (e *OpsError) Error() string { return e.Msg }

func opsErr(status int, format string, args ...any) error {
	return &OpsError{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// mover is the gateway's drain, if one runs, and what moves counted.
type mover struct {
	// draining is read by every load report: ipconf never hands out a draining gateway.
	draining atomic.Bool
	// reports counts load reports built (loadNode), so a drain can wait until one that says it
	// drains went out before moving devices.
	reports   atomic.Int64
	redirects [numCauses]atomic.Int64
	// sent holds the IDs of the connections redirected within redirectGrace, whose old socket may
	// still be open: they are not selected again.
	sent       sync.Map
	rate       atomic.Int64
	redirected atomic.Int64 // by the current drain
	waiting    atomic.Pointer[string]

	mu      sync.Mutex
	cause   int
	started time.Time
	cancel  context.CancelFunc // of the drain loop; nil when none runs
	done    chan struct{}      // closed when the drain loop returned
	// announced is closed once a load report saying the gateway drains went out.
	announced chan struct{}
}

// pacer spreads actions at rate per second: the i-th since start (from 0) is due i/rate after it.
type pacer struct {
	rate  int
	start time.Time
	sent  int
}

// due is how long from now until the next action may go (0: now).
func (p *pacer) due(now time.Time) time.Duration {
	at := p.start.Add(time.Duration(float64(p.sent) * float64(time.Second) / float64(p.rate)))
	return max(at.Sub(now), 0)
}

// wait blocks until the next action may go, and counts it.
func (p *pacer) wait(ctx context.Context) error {
	if d := p.due(time.Now()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	p.sent++
	return nil
}

// peer is another gateway a device may be sent to.
type peer struct {
	endpoint   string
	overloaded bool
	conns      int64
}

// redirectPeers are the other live gateways that take logins (with an endpoint, not draining),
// least loaded first, overloaded ones last.
func (gw *Gateway) redirectPeers() []peer {
	var ps []peer
	for _, id := range gw.peers.IDs() {
		n, ok := gw.peers.Node(id)
		if !ok || id == gw.cfg.ID || n.Endpoint == "" || n.Endpoint == gw.Endpoint() || n.Load.Draining {
			continue
		}
		ps = append(ps, peer{n.Endpoint, n.Load.Overloaded, n.Load.Conns})
	}
	slices.SortStableFunc(ps, comparePeers)
	return ps
}

func comparePeers(a, b peer) int {
	if a.overloaded != b.overloaded {
		if a.overloaded {
			return 1
		}
		return -1
	}
	switch {
	case a.conns < b.conns:
		return -1
	case a.conns > b.conns:
		return 1
	}
	return 0
}

// spread hands each moved device the other gateways with the least loaded first, counting the
// devices it already sent to each: a drain over several gateways fills them evenly, rather than
// sending everything to the one that was least loaded when it began (reports lag by a second).
type spread struct {
	peers []peer
}

func (s *spread) next() []string {
	best := 0
	for i := range s.peers {
		if comparePeers(s.peers[i], s.peers[best]) < 0 {
			best = i
		}
	}
	s.peers[best].conns++
	out := make([]string, 0, len(s.peers))
	out = append(out, s.peers[best].endpoint)
	for i, p := range s.peers {
		if i != best {
			out = append(out, p.endpoint)
		}
	}
	return out
}

// loggedIn reports whether c is logged in and not closing: a device that can be redirected to
// Resume elsewhere.
func (c *conn) loggedIn() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closed && c.state == stateLoggedIn
}

// pickConns selects up to count (0: no bound) of conns that are logged in, not redirected already
// (skip, when not nil) and, when dids is not empty, whose did is in it (and app, when not empty, is
// theirs).
func pickConns(conns []*conn, count int, app string, dids map[string]bool, skip func(*conn) bool) []*conn {
	var out []*conn
	for _, c := range conns {
		if count > 0 && len(out) >= count {
			break
		}
		if !c.loggedIn() || skip != nil && skip(c) {
			continue
		}
		if len(dids) > 0 && (!dids[c.did()] || app != "" && c.appID() != app) {
			continue
		}
		out = append(out, c)
	}
	return out
}

func (gw *Gateway) allConns() []*conn {
	var all []*conn
	gw.conns.each(func(c *conn) { all = append(all, c) })
	return all
}

func (gw *Gateway) rateOr(r int) int {
	switch {
	case r > 0:
		return r
	case gw.cfg.Drain.Rate > 0:
		return gw.cfg.Drain.Rate
	}
	return 500
}

// Migrate redirects the devices req selects to the gateway it names, or to the other live
// gateways, paced at its rate, and returns once each was sent its Redirect.
func (gw *Gateway) Migrate(ctx context.Context, req opsapi.MigrateRequest) (opsapi.MigrateResult, error) {
	res := opsapi.MigrateResult{Gateway: gw.cfg.ID}
	if req.Count < 0 || req.Rate < 0 {
		return res, opsErr(http.StatusBadRequest, "count and rate must not be negative")
	}
	if req.Count == 0 && len(req.DIDs) == 0 {
		return res, opsErr(http.StatusBadRequest, "say which devices to move: a count, or dids")
	}
	var sp *spread
	if req.To != "" {
		ep, err := gw.peerEndpoint(req.To)
		if err != nil {
			return res, err
		}
		res.Targets = []string{ep}
	} else {
		ps := gw.redirectPeers()
		if len(ps) == 0 {
			return res, opsErr(http.StatusConflict, "gateway %s is the only live gateway taking logins: there is nowhere to move its devices", gw.cfg.ID)
		}
		sp = &spread{peers: ps}
		for _, p := range ps {
			res.Targets = append(res.Targets, p.endpoint)
		}
	}
	var dids map[string]bool
	if len(req.DIDs) > 0 {
		dids = make(map[string]bool, len(req.DIDs))
		for _, d := range req.DIDs {
			dids[d] = true
		}
	}
	sel := pickConns(gw.allConns(), req.Count, req.App, dids, gw.moves.wasRedirected)
	res.Selected = len(sel)
	p := pacer{rate: gw.rateOr(req.Rate), start: time.Now()}
	for _, c := range sel {
		if err := p.wait(ctx); err != nil {
			return res, fmt.Errorf("migrate cut short after %d redirects: %w", res.Redirected, err)
		}
		targets := res.Targets
		if sp != nil {
			targets = sp.next()
		}
		if gw.redirectFor(c, targets, causeMigrate) {
			res.Redirected++
		}
	}
	gw.log.Info("migrated devices by Redirect", "selected", res.Selected, "redirected", res.Redirected, "targets", res.Targets)
	return res, nil
}

// peerEndpoint is the endpoint of the live gateway id, when it can take devices.
func (gw *Gateway) peerEndpoint(id string) (string, error) {
	if id == gw.cfg.ID {
		return "", opsErr(http.StatusBadRequest, "gateway %s cannot migrate devices to itself", id)
	}
	n, ok := gw.peers.Node(id)
	switch {
	case !ok:
		return "", opsErr(http.StatusNotFound, "gateway %s is not live (it is not in the registry)", id)
	case n.Endpoint == "":
		return "", opsErr(http.StatusConflict, "gateway %s takes no logins now (it reaches no state server)", id)
	case n.Load.Draining:
		return "", opsErr(http.StatusConflict, "gateway %s is draining", id)
	}
	return n.Endpoint, nil
}

func (gw *Gateway) redirectFor(c *conn, targets []string, cause int) bool {
	m := &gw.moves
	if _, dup := m.sent.LoadOrStore(c.id, struct{}{}); dup {
		return false
	}
	if !gw.redirect(c, targets) {
		m.sent.Delete(c.id)
		return false
	}
	gw.wheel.AfterFunc(redirectGrace, func() { m.sent.Delete(c.id) })
	m.redirects[cause].Add(1)
	return true
}

// wasRedirected reports whether c was sent a Redirect lately (its old socket may still be open).
func (m *mover) wasRedirected(c *conn) bool {
	_, ok := m.sent.Load(c.id)
	return ok
}

// StartDrain makes the gateway drain: it leaves ipconf's answers (its next load report says it
// drains), then redirects every device to the other gateways at rate per second (0:
// gateway.drain.rate), and keeps redirecting the devices that log in here afterwards, until
// Undrain or Shutdown. On a gateway that already drains it only changes the rate.
// It returns once ipconf was told, so that the answer can say the gateway is out of its answers.
func (gw *Gateway) StartDrain(ctx context.Context, rate int) (opsapi.Status, error) {
	if err := gw.startDrain(rate, causeDrain); err != nil {
		return opsapi.Status{}, err
	}
	gw.moves.mu.Lock()
	announced := gw.moves.announced
	gw.moves.mu.Unlock()
	if announced != nil {
		select {
		case <-announced:
		case <-ctx.Done():
		}
	}
	return gw.OpsStatus(), nil
}

func (gw *Gateway) startDrain(rate, cause int) error {
	if rate < 0 {
		return opsErr(http.StatusBadRequest, "rate must not be negative")
	}
	m := &gw.moves
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rate.Store(int64(gw.rateOr(rate)))
	if m.cancel != nil {
		if cause == causeShutdown {
			m.cause = cause
		}
		return nil
	}
	if len(gw.redirectPeers()) == 0 {
		return opsErr(http.StatusConflict, "gateway %s is the only live gateway taking logins: there is nowhere to move its devices", gw.cfg.ID)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done, m.cause, m.started = cancel, make(chan struct{}), cause, time.Now()
	m.announced = make(chan struct{})
	m.redirected.Store(0)
	m.waiting.Store(nil)
	wasDraining := m.draining.Swap(true)
	gw.log.Info("draining: moving every device to the other gateways", "rate", m.rate.Load())
	go gw.drainLoop(ctx, m.done, m.announced, !wasDraining)
	return nil
}

// Undrain calls the drain off: the gateway takes logins again and ipconf hands it out at its
// next load report.
func (gw *Gateway) Undrain() opsapi.Status {
	gw.moves.stop()
	if gw.moves.draining.Swap(false) {
		gw.log.Info("drain called off: taking logins again")
	}
	return gw.OpsStatus()
}

// stop ends the drain loop, if one runs, and waits for it; the gateway still reports that it
// drains until Undrain.
func (m *mover) stop() {
	m.mu.Lock()
	cancel, done := m.cancel, m.done
	m.cancel, m.done = nil, nil
	m.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (gw *Gateway) drainLoop(ctx context.Context, done, announced chan struct{}, announce bool) {
	defer close(done)
	announcedOnce := sync.OnceFunc(func() { close(announced) })
	defer announcedOnce()
	defer func() {
		if r := recover(); r != nil {
			gw.metrics.panics.Add(1)
			gw.log.Error("drain stopped by a panic", "panic", r)
		}
	}()
	m := &gw.moves
	if announce && !gw.awaitReport(ctx) {
		return
	}
	announcedOnce()
	m.mu.Lock()
	cause := m.cause
	m.mu.Unlock()
	for ctx.Err() == nil {
		ps := gw.redirectPeers()
		if len(ps) == 0 {
			msg := "no other live gateway takes logins: waiting for one"
			m.waiting.Store(&msg)
			if !sleepCtx(ctx, 200*time.Millisecond) {
				return
			}
			continue
		}
		m.waiting.Store(nil)
		batch := pickConns(gw.allConns(), 0, "", nil, gw.moves.wasRedirected)
		if len(batch) == 0 {
			if !sleepCtx(ctx, 50*time.Millisecond) {
				return
			}
			m.mu.Lock()
			cause = m.cause
			m.mu.Unlock()
			continue
		}
		sp := spread{peers: ps}
		rate := int(m.rate.Load())
		p := pacer{rate: rate, start: time.Now()}
		for _, c := range batch {
			if r := int(m.rate.Load()); r != rate {
				rate, p = r, pacer{rate: r, start: time.Now()}
			}
			if p.wait(ctx) != nil {
				return
			}
			if gw.redirectFor(c, sp.next(), cause) {
				m.redirected.Add(1)
			}
		}
	}
}

// awaitReport waits until a load report built after the gateway began draining was published,
// so that ipconf stops handing it out before its devices move (bounded: a registry that does not
// answer must not hold the drain).
func (gw *Gateway) awaitReport(ctx context.Context) bool {
	mark := gw.moves.reports.Load()
	interval := gw.cfg.ReportInterval
	if interval <= 0 {
		interval = time.Second
	}
	deadline := time.Now().Add(3*interval + time.Second)
	// The report after the next one is built once the next one was put: Keep reports in turn.
	for gw.moves.reports.Load() < mark+2 && time.Now().Before(deadline) {
		if !sleepCtx(ctx, 10*time.Millisecond) {
			return false
		}
	}
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// DrainForShutdown moves the devices to the other live gateways before Shutdown, the way `plato
// ops drain` does, for at most gateway.drain.shutdown_timeout (and until ctx ends). It does
// nothing when that timeout is 0, no device is connected, or no other gateway takes logins: the
// devices then get Close 1204 from Shutdown, as do those still here when the time is up. It
// reports how many devices it redirected and how many connections were left.
func (gw *Gateway) DrainForShutdown(ctx context.Context) (redirected int64, left int) {
	limit := gw.cfg.Drain.ShutdownTimeout
	if limit <= 0 || gw.conns.len() == 0 || len(gw.redirectPeers()) == 0 {
		return 0, gw.conns.len()
	}
	before := gw.moves.redirects[causeShutdown].Load()
	if err := gw.startDrain(0, causeShutdown); err != nil {
		return 0, gw.conns.len()
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for gw.conns.len() > 0 && sleepCtx(ctx, 20*time.Millisecond) {
	}
	gw.moves.stop()
	redirected, left = gw.moves.redirects[causeShutdown].Load()-before, gw.conns.len()
	gw.log.Info("drained before shutting down", "redirected", redirected, "left", left)
	return redirected, left
}

// OpsStatus is the gateway and its drain, as the ops API reports them.
func (gw *Gateway) OpsStatus() opsapi.Status {
	m := &gw.moves
	s := opsapi.Status{Gateway: gw.cfg.ID, Endpoint: gw.Endpoint(), Conns: gw.conns.len(), Draining: m.draining.Load()}
	if !s.Draining {
		return s
	}
	m.mu.Lock()
	s.StartedAt = m.started
	m.mu.Unlock()
	s.Rate = int(m.rate.Load())
	s.Redirected = m.redirected.Load()
	s.Done = s.Conns == 0
	if w := m.waiting.Load(); w != nil {
		s.Waiting = *w
	}
	return s
}

// instrumentMoves adds the metrics of moves to the gateway's.
func (gw *Gateway) instrumentMoves(o *telemetry.Observables) {
	m := &gw.moves
	o.Counter("plato_gateway_redirects_total", "{connection}",
		"Devices sent a Redirect (1207) to move to another gateway, by cause: migrate (plato ops migrate), drain (plato ops drain) or shutdown (the drain of a stopping gateway).",
		func(emit telemetry.Emit) {
			for i, name := range causeNames {
				emit(m.redirects[i].Load(), attribute.String("cause", name))
			}
		})
	o.GaugeValue("plato_gateway_draining", "1", "1 while the gateway drains (ipconf does not hand it out and it redirects its devices), else 0.",
		func() int64 {
			if m.draining.Load() {
				return 1
			}
			return 0
		})
}
