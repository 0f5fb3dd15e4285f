package gateway

import (
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/time/rate"
)

// TestBucketAdmitsWhatRateDoes drives a bucket and an x/time/rate Limiter with the same random
// events (gaps from none to about the rate's, sizes from 1 to past the burst, the clock now and then stepping
// back) and requires the same answer to every one.
func TestBucketAdmitsWhatRateDoes(t *testing.T) {
	for _, tc := range []struct {
		perSec float64
		burst  int
		maxN   int
		maxGap time.Duration // about 1.5 times faster than the rate, on average
	}{
		{50, 100, 1, 53 * time.Millisecond}, {2, 5, 1, 1300 * time.Millisecond},
		{256 << 10, 256 << 10, 70000, 530 * time.Millisecond}, {1000, 65556, 70000, 93 * time.Second},
		{0.5, 1, 2, 8 * time.Second},
	} {
		r := rand.New(rand.NewPCG(uint64(tc.burst), uint64(tc.maxN)))
		lim := rate.NewLimiter(rate.Limit(tc.perSec), tc.burst)
		var b bucket
		now := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
		admitted, refused := 0, 0
		for i := range 20000 {
			switch k := r.IntN(100); {
			case k < 2:
				now = now.Add(-time.Duration(r.IntN(50)) * time.Millisecond)
			case k < 50:
				now = now.Add(time.Duration(r.Int64N(int64(tc.maxGap))))
			}
			n := 1 + r.IntN(tc.maxN)
			want := lim.AllowN(now, n)
			if got := b.allow(now.UnixNano(), n, tc.perSec, tc.burst); got != want {
				t.Fatalf("%v/s burst %d, event %d (n %d): bucket %v, rate %v", tc.perSec, tc.burst, i, n, got, want)
			}
			if want {
				admitted++
			} else {
				refused++
			}
		}
		if admitted == 0 || refused == 0 {
			t.Fatalf("%v/s burst %d: %d admitted, %d refused: the events did not reach both answers", tc.perSec, tc.burst, admitted, refused)
		}
	}
}

func TestBucketRefillsAndRefuses(t *testing.T) {
	var b bucket
	t0 := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC).UnixNano()
	for i := range 3 {
		if !b.allow(t0, 1, 1, 3) {
			t.Fatalf("event %d of a full bucket of 3 refused", i)
		}
	}
	if b.allow(t0, 1, 1, 3) {
		t.Fatal("a 4th event in the same instant admitted past a burst of 3")
	}
	if !b.allow(t0+int64(time.Second), 1, 1, 3) {
		t.Fatal("an event a second later, at 1/s, refused")
	}
	if b.allow(t0+int64(time.Hour), 4, 1, 3) {
		t.Fatal("an event larger than the burst admitted")
	}
}

// TestDeviceLimitsStaySmall: a device's limits fit one 48-byte allocation.
func TestDeviceLimitsStaySmall(t *testing.T) {
	if s := unsafe.Sizeof(deviceLimits{}); s > 48 {
		t.Fatalf("deviceLimits is %d bytes, want at most 48", s)
	}
}
