package console

import (
	"context"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/platoim/plato/internal/tick"
)

// The sampler reads the process's own metrics, the ones /metrics serves, every sampleInterval and
// keeps the last ringSize readings: the console's rates, latency quantiles and faults are
// differences between them, so nothing on a message's path counts twice for the console.
const (
	sampleInterval = 2 * time.Second
	// ringSize readings span a minute: latency quantiles are over the last minute.
	ringSize = 31
	// rateWindow is what a rate (uplinks/s, ...) is averaged over.
	rateWindow = 10 * time.Second
)

// series names one time series: its metric and the values of the labels the console reads, in
// the order the metric's entry in watched lists them.
type series struct {
	metric string
	l      [3]string
}

// watched are the metrics the console reads, with the labels it keeps.
var watched = map[string][]string{
	mGatewayAppConns:     {"app"},
	mGatewayAppRefused:   {"app"},
	mStateAppUplinks:     {"app", "result"},
	mStateAppPushes:      {"app"},
	mStageCalls:          {"app", "stage"},
	mStageFailures:       {"app", "stage", "reason"},
	mStageLatency:        {"app", "stage"},
	mStageCrashes:        {"app", "stage", "reason"},
	mStageBreaker:        {"app", "stage"},
	mSlowConsumers:       {"reason"},
	mGatewayOverloadOn:   {"action"},
	mStateOverloadOn:     {"action"},
	mGatewayOverloadRuns: {"action"},
	mStateOverloadRuns:   {"action"},
}

const (
	mGatewayAppConns     = "plato_gateway_app_connections"
	mGatewayAppRefused   = "plato_gateway_app_refused_total"
	mStateAppUplinks     = "plato_state_app_uplinks_total"
	mStateAppPushes      = "plato_state_app_pushes_total"
	mStageCalls          = "plato_pipeline_stage_calls_total"
	mStageFailures       = "plato_pipeline_stage_failures_total"
	mStageLatency        = "plato_pipeline_stage_latency_seconds"
	mStageCrashes        = "plato_pipeline_stage_crashes_total"
	mStageBreaker        = "plato_pipeline_stage_breaker_state"
	mSlowConsumers       = "plato_gateway_slow_consumers_total"
	mGatewayOverloadOn   = "plato_gateway_overload_action_active"
	mStateOverloadOn     = "plato_state_overload_action_active"
	mGatewayOverloadRuns = "plato_gateway_overload_actions_started_total"
	mStateOverloadRuns   = "plato_state_overload_actions_started_total"
)

// histogram is a latency histogram's cumulative buckets.
type histogram struct {
	count  uint64
	bounds []float64 // upper bounds, +Inf left out
	counts []uint64  // cumulative, one per bound
}

// reading is one sample of the watched metrics.
type reading struct {
	at     time.Time
	values map[series]float64
	hists  map[series]histogram
}

// value is s's value in r, 0 when r does not have it (a series appears with its first count).
func (r *reading) value(s series) float64 { return r.values[s] }

// sampler keeps the ring of readings.
type sampler struct {
	g      prometheus.Gatherer
	log    *slog.Logger
	faults *faultRing
	mu     sync.Mutex
	ring   []*reading // oldest first, at most ringSize
}

func newSampler(g prometheus.Gatherer, faults *faultRing, log *slog.Logger) *sampler {
	return &sampler{g: g, faults: faults, log: log}
}

// run samples until ctx ends.
func (s *sampler) run(ctx context.Context) {
	s.sample(time.Now())
	tick.Every(ctx, sampleInterval, s.sample)
}

// sample takes one reading, derives the faults it shows, and keeps it.
func (s *sampler) sample(now time.Time) {
	// A bug here must cost the console a reading, not the process its roles.
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("ops console: sampling the metrics panicked", "panic", v)
		}
	}()
	mfs, err := s.g.Gather()
	if err != nil && len(mfs) == 0 {
		s.log.Warn("ops console: reading the process's metrics failed", "err", err)
		return
	}
	r := decode(mfs, now)
	s.mu.Lock()
	var prev *reading
	if n := len(s.ring); n > 0 {
		prev = s.ring[n-1]
	}
	if len(s.ring) == ringSize {
		copy(s.ring, s.ring[1:])
		s.ring = s.ring[:ringSize-1]
	}
	s.ring = append(s.ring, r)
	s.mu.Unlock()
	if s.faults != nil {
		s.faults.derive(prev, r)
	}
}

// window returns the latest reading and the oldest one at most d older than it (nil, nil before
// the first reading; the same reading twice when there is only one).
func (s *sampler) window(d time.Duration) (oldest, latest *reading) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ring) == 0 {
		return nil, nil
	}
	latest = s.ring[len(s.ring)-1]
	oldest = latest
	for i := len(s.ring) - 2; i >= 0; i-- {
		if latest.at.Sub(s.ring[i].at) > d+sampleInterval/2 {
			break
		}
		oldest = s.ring[i]
	}
	return oldest, latest
}

// decode keeps the watched series of mfs.
func decode(mfs []*dto.MetricFamily, at time.Time) *reading {
	r := &reading{at: at, values: map[series]float64{}, hists: map[series]histogram{}}
	for _, mf := range mfs {
		labels, ok := watched[mf.GetName()]
		if !ok {
			continue
		}
		for _, m := range mf.GetMetric() {
			k := series{metric: mf.GetName()}
			for _, lp := range m.GetLabel() {
				for i, want := range labels {
					if lp.GetName() == want {
						k.l[i] = lp.GetValue()
					}
				}
			}
			switch {
			case m.GetCounter() != nil:
				r.values[k] += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				r.values[k] += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				h := histogram{count: m.GetHistogram().GetSampleCount()}
				for _, b := range m.GetHistogram().GetBucket() {
					if math.IsInf(b.GetUpperBound(), 1) {
						continue
					}
					h.bounds = append(h.bounds, b.GetUpperBound())
					h.counts = append(h.counts, b.GetCumulativeCount())
				}
				r.hists[k] = h
			}
		}
	}
	return r
}

// sub is h minus an earlier reading of the same histogram (nil: nothing before).
func (h histogram) sub(old *histogram) histogram {
	if old == nil || len(old.counts) != len(h.counts) || old.count > h.count {
		return h // new series, or the histogram was reset (a new stage instance): all of it
	}
	d := histogram{count: h.count - old.count, bounds: h.bounds, counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		d.counts[i] = h.counts[i] - old.counts[i]
	}
	return d
}

// quantile estimates the q-quantile (0 < q < 1) by linear interpolation inside the bucket that
// holds it, as Prometheus's histogram_quantile does; ok is false without observations. An answer
// in the +Inf bucket is the highest finite bound.
func (h histogram) quantile(q float64) (float64, bool) {
	if h.count == 0 {
		return 0, false
	}
	rank := q * float64(h.count)
	i := sort.Search(len(h.counts), func(i int) bool { return float64(h.counts[i]) >= rank })
	if i == len(h.counts) {
		if len(h.bounds) == 0 {
			return 0, false
		}
		return h.bounds[len(h.bounds)-1], true
	}
	lo, below := 0.0, uint64(0)
	if i > 0 {
		lo, below = h.bounds[i-1], h.counts[i-1]
	}
	in := h.counts[i] - below
	if in == 0 {
		return h.bounds[i], true
	}
	return lo + (h.bounds[i]-lo)*(rank-float64(below))/float64(in), true
}
