package client

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	base, ceiling := DefaultReconnectMin, DefaultReconnectMax
	bound := base
	for n := range 100 {
		if hi := backoff(n, base, ceiling, func(m int64) int64 { return m - 1 }); hi != bound {
			t.Fatalf("attempt %d: the largest pause is %s, want %s", n, hi, bound)
		}
		if lo := backoff(n, base, ceiling, func(int64) int64 { return 0 }); lo != 0 {
			t.Fatalf("attempt %d: the smallest pause is %s, want 0", n, lo)
		}
		for range 20 {
			if d := backoff(n, base, ceiling, rand.Int64N); d < 0 || d > bound {
				t.Fatalf("attempt %d: pause %s outside [0, %s]", n, d, bound)
			}
		}
		bound = min(2*bound, ceiling)
	}
	if d := backoff(3, 0, time.Second, rand.Int64N); d != 0 {
		t.Fatalf("a zero base gives %s", d)
	}
}

func TestBackoffIsFullJitter(t *testing.T) {
	// The pauses of one attempt spread over the whole range, so devices dropped at once come back
	// spread out: every quarter of it gets its share, and hardly two are the same.
	const samples = 2000
	bound := DefaultReconnectMin << 4
	var quarters [4]int
	seen := make(map[time.Duration]bool)
	for range samples {
		d := backoff(4, DefaultReconnectMin, DefaultReconnectMax, rand.Int64N)
		quarters[min(3, int(4*d/bound))]++
		seen[d] = true
	}
	for i, n := range quarters {
		if n < samples/8 {
			t.Errorf("quarter %d of [0, %s] got %d of %d pauses", i, bound, n, samples)
		}
	}
	if len(seen) < samples*9/10 {
		t.Errorf("only %d distinct pauses in %d", len(seen), samples)
	}
}

func TestHeartbeatDelay(t *testing.T) {
	interval := 5 * time.Minute
	if d := heartbeatDelay(interval, func(m int64) int64 { return m - 1 }); d != interval+30*time.Second {
		t.Fatalf("the longest delay is %s, want the interval plus 10%%", d)
	}
	seen := make(map[time.Duration]bool)
	for range 200 {
		d := heartbeatDelay(interval, rand.Int64N)
		if d < interval || d > interval+30*time.Second {
			t.Fatalf("delay %s outside [%s, +30s]", d, interval)
		}
		seen[d] = true
	}
	if len(seen) < 150 {
		t.Fatalf("only %d distinct delays in 200: not random", len(seen))
	}
	if d := heartbeatDelay(5, rand.Int64N); d != 5 {
		t.Fatalf("an interval too short for jitter became %s", d)
	}
}
