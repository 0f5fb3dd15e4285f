package bench

import (
	"encoding/json"
	"math/rand/v2"
	"sync"
	"testing"
)

func TestHistogramExactRegion(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 100; v++ {
		h.Record(v)
	}
	for _, tc := range []struct {
		q    float64
		want int64
	}{{0, 1}, {0.01, 1}, {0.5, 50}, {0.9, 90}, {0.99, 99}, {0.999, 100}, {1, 100}} {
		if got := h.Quantile(tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %d, want %d", tc.q, got, tc.want)
		}
	}
	if h.Count() != 100 || h.Min() != 1 || h.Max() != 100 || h.Mean() != 50.5 {
		t.Fatalf("count %d min %d max %d mean %v", h.Count(), h.Min(), h.Max(), h.Mean())
	}
}

func TestHistogramRelativeError(t *testing.T) {
	var h Histogram
	const n = 1_000_000
	for v := int64(1); v <= n; v++ {
		h.Record(v * 1000) // 1 µs .. 1 s in nanoseconds
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 0.9999} {
		exact := float64(q*n) * 1000
		got := float64(h.Quantile(q))
		if got < exact || got > exact*(1+1.0/subCount) {
			t.Errorf("Quantile(%v) = %v, want within [%v, %v]", q, got, exact, exact*(1+1.0/subCount))
		}
	}
	if h.Max() != n*1000 || h.Quantile(1) != n*1000 {
		t.Fatalf("max %d, Quantile(1) %d", h.Max(), h.Quantile(1))
	}
}

func TestBucketsCoverEveryValue(t *testing.T) {
	check := func(v int64) {
		i := bucketOf(v)
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d = [%d, %d]", v, i, lo, hi)
		}
		if v >= 2*subCount && float64(hi-lo+1) > float64(lo)/subCount {
			t.Fatalf("bucket %d = [%d, %d] wider than 1/%d of its start", i, lo, hi, subCount)
		}
	}
	for v := int64(0); v < 1<<16; v++ {
		check(v)
	}
	for s := 16; s <= 40; s++ {
		for _, d := range []int64{-1, 0, 1} {
			if v := int64(1)<<s + d; v <= MaxTrackable {
				check(v)
			}
		}
	}
	if bucketOf(MaxTrackable) != numBuckets-1 {
		t.Fatalf("the largest value is in bucket %d of %d", bucketOf(MaxTrackable), numBuckets)
	}
	// Consecutive buckets tile the value range without gaps.
	for i := 1; i < numBuckets; i++ {
		_, prevHi := bucketRange(i - 1)
		if lo, _ := bucketRange(i); lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, bucket %d ends at %d", i, lo, i-1, prevHi)
		}
	}
}

func TestHistogramClamps(t *testing.T) {
	var h Histogram
	h.Record(-5)
	h.Record(1 << 50)
	if h.Min() != 0 || h.Max() != MaxTrackable || h.Quantile(1) != MaxTrackable {
		t.Fatalf("min %d max %d", h.Min(), h.Max())
	}
}

func TestHistogramMergeIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var all, a, b Histogram
	for i := 0; i < 100_000; i++ {
		v := int64(rng.ExpFloat64() * 2e6)
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(nil)
	m.Merge(&Histogram{})
	if m.counts != all.counts || m.Count() != all.Count() || m.Min() != all.Min() || m.Max() != all.Max() {
		t.Fatal("merged histogram differs from recording everything into one")
	}
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
		if m.Quantile(q) != all.Quantile(q) {
			t.Fatalf("Quantile(%v): merged %d, single %d", q, m.Quantile(q), all.Quantile(q))
		}
	}
}

func TestHistogramJSON(t *testing.T) {
	var h Histogram
	for _, v := range []int64{3, 3, 700, 40_000, 9_000_000} {
		h.Record(v)
	}
	b, err := json.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	var back Histogram
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != h {
		t.Fatalf("round trip changed the histogram: %s", b)
	}
	for _, bad := range []string{`{"n":1,"b":[[99999,1]]}`, `{"n":2,"b":[[1,1]]}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s decoded without error", bad)
		}
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 {
		t.Fatal("an empty histogram reports values")
	}
}

func TestRecorderMatchesHistogram(t *testing.T) {
	r := NewRecorder()
	var want Histogram
	var wg sync.WaitGroup
	var mu sync.Mutex
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				v := int64(g*100_000 + i*37)
				r.Record(v)
				mu.Lock()
				want.Record(v)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	got := r.Snapshot()
	if got.counts != want.counts || got.Min() != want.Min() || got.Max() != want.Max() || got.Mean() != want.Mean() {
		t.Fatalf("recorder snapshot differs: n %d/%d min %d/%d max %d/%d", got.Count(), want.Count(), got.Min(), want.Min(), got.Max(), want.Max())
	}
	if s := NewRecorder().Snapshot(); s.Count() != 0 || s.Min() != 0 {
		t.Fatal("an empty recorder's snapshot is not empty")
	}
}
