package console

import (
	"fmt"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/platoim/plato/pipeline"
)

func TestQuantile(t *testing.T) {
	h := histogram{count: 100, bounds: []float64{0.001, 0.01, 0.1}, counts: []uint64{50, 90, 99}}
	for _, tc := range []struct {
		q, want float64
	}{
		{0.25, 0.0005}, // halfway into the first bucket
		{0.5, 0.001},   // its top
		{0.7, 0.0055},  // halfway into the second
		{0.99, 0.1},    // the third's top
		{0.999, 0.1},   // in +Inf: the highest finite bound
	} {
		got, ok := h.quantile(tc.q)
		if !ok || math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("quantile(%g) = %g %v, want %g", tc.q, got, ok, tc.want)
		}
	}
	if _, ok := (histogram{bounds: h.bounds, counts: []uint64{0, 0, 0}}).quantile(0.5); ok {
		t.Error("an empty histogram has no quantile")
	}
	d := h.sub(&histogram{count: 40, bounds: h.bounds, counts: []uint64{40, 40, 40}})
	if d.count != 60 || d.counts[0] != 10 || d.counts[1] != 50 {
		t.Errorf("sub: %+v", d)
	}
	if r := h.sub(&histogram{count: 500, bounds: h.bounds, counts: []uint64{500, 500, 500}}); r.count != 100 {
		t.Errorf("sub of a later reading (the stage started again): %+v, want all of h", r)
	}
}

// TestSamplerReadsTheMetrics runs the sampler over a real Prometheus registry: the rates, the
// latency over the window and the faults derived from counters and gauges between readings.
func TestSamplerReadsTheMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	uplinks := prometheus.NewCounterVec(prometheus.CounterOpts{Name: mStateAppUplinks}, []string{"app", "result"})
	conns := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: mGatewayAppConns}, []string{"app"})
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: mStageLatency, Buckets: []float64{0.001, 0.01, 0.1}}, []string{"app", "stage"})
	crashes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: mStageCrashes}, []string{"app", "stage", "reason"})
	breaker := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: mStageBreaker}, []string{"app", "stage"})
	slow := prometheus.NewCounterVec(prometheus.CounterOpts{Name: mSlowConsumers}, []string{"reason"})
	over := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: mGatewayOverloadOn}, []string{"action"})
	overRuns := prometheus.NewCounterVec(prometheus.CounterOpts{Name: mGatewayOverloadRuns}, []string{"action"})
	reg.MustRegister(uplinks, conns, lat, crashes, breaker, slow, over, overRuns)

	f := &faultRing{}
	s := newSampler(reg, f, slog.New(slog.DiscardHandler))
	t0 := time.Unix(1000, 0)
	s.sample(t0)
	if got := f.list(); len(got) != 0 {
		t.Fatalf("faults from nothing: %+v", got)
	}
	uplinks.WithLabelValues("demo", "ok").Add(18)
	uplinks.WithLabelValues("demo", "failed").Add(2)
	conns.WithLabelValues("demo").Set(3)
	for range 9 {
		lat.WithLabelValues("default", "auth").Observe(0.0005)
	}
	lat.WithLabelValues("default", "auth").Observe(0.05)
	crashes.WithLabelValues("default", "auth", "exited").Add(2)
	breaker.WithLabelValues("default", "auth").Set(2)
	slow.WithLabelValues("stalled").Add(4)
	over.WithLabelValues("refuse_logins").Set(1)
	overRuns.WithLabelValues("refuse_logins").Inc()
	s.sample(t0.Add(10 * time.Second))
	over.WithLabelValues("refuse_logins").Set(0)
	s.sample(t0.Add(12 * time.Second))

	if old, cur := s.window(rateWindow); !old.at.Equal(t0.Add(10*time.Second)) || !cur.at.Equal(t0.Add(12*time.Second)) {
		t.Errorf("a 10 s window from %v to %v: want the readings at 10 s and 12 s", old.at, cur.at)
	}
	old, cur := s.window(time.Minute)
	apps := appFigures(old, cur, []string{"demo", "idle"})
	if len(apps) != 2 || apps[0].App != "demo" || apps[1].App != "idle" {
		t.Fatalf("apps: %+v", apps)
	}
	if a := apps[0]; a.Connections != 3 || math.Abs(a.UplinksPerSec-20.0/12) > 1e-9 || math.Abs(a.UplinkFailuresPerSec-2.0/12) > 1e-9 || a.ErrorsPerSec != a.UplinkFailuresPerSec {
		t.Errorf("demo: %+v", a)
	}
	st := stageFigures("default", pipelineStage("auth"), old, cur)
	if st.P50Ms == nil || st.P99Ms == nil || st.LatencyWindow != "1m" || *st.P50Ms != 0.556 || *st.P99Ms <= 10 || *st.P99Ms > 100 {
		t.Errorf("stage latency: p50 %v p99 %v window %q", deref(st.P50Ms), deref(st.P99Ms), st.LatencyWindow)
	}

	kinds := map[string]int{}
	for _, x := range f.list() {
		kinds[x.Kind]++
	}
	want := map[string]int{"plugin_crash": 1, "crash_loop": 1, "slow_consumers": 1, "overload": 2}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("faults %v, want %v: %+v", kinds, want, f.list())
	}
	if l := f.list(); l[0].Message != "gateway overload action refuse_logins ended" {
		t.Errorf("newest fault first: %+v", l[0])
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestFaultRingKeepsTheNewest(t *testing.T) {
	var f faultRing
	for i := range faultRingSize + 10 {
		f.add(Fault{Count: int64(i)})
	}
	l := f.list()
	if len(l) != faultRingSize || l[0].Count != faultRingSize+9 || l[len(l)-1].Count != 10 {
		t.Fatalf("%d faults, newest %d, oldest %d", len(l), l[0].Count, l[len(l)-1].Count)
	}
}

func pipelineStage(name string) pipeline.StageStatus { return pipeline.StageStatus{Name: name} }
