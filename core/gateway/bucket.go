package gateway

import (
	"math"
	"time"
)

// bucket is a token bucket that admits exactly what x/time/rate's Limiter.AllowN does for a
// positive rate, in 16 bytes: the rate and burst are the caller's, not stored, as every device of
// an app shares them. It is not safe for concurrent use: a device's are used under its conn's mu.
type bucket struct {
	tokens float64
	// last is when an event was last admitted, in Unix nanoseconds; 0 before the first, when the
	// bucket is full.
	last int64
}

// allow takes n tokens at now (Unix nanoseconds) and reports whether there were enough, refilling
// perSec a second up to burst. A refused event changes nothing.
func (b *bucket) allow(now int64, n int, perSec float64, burst int) bool {
	tokens := float64(burst)
	if b.last != 0 {
		elapsed := time.Duration(max(0, now-b.last))
		tokens = min(tokens, b.tokens+elapsed.Seconds()*perSec)
	}
	tokens -= float64(n)
	// As rate does: a deficit that would refill in under a nanosecond is none.
	if n > burst || tokens < 0 && waitFor(-tokens, perSec) > 0 {
		return false
	}
	b.tokens, b.last = tokens, now
	return true
}

// waitFor is how long perSec takes to refill tokens, as x/time/rate computes it.
func waitFor(tokens, perSec float64) time.Duration {
	if perSec <= 0 {
		return time.Duration(math.MaxInt64)
	}
	d := tokens / perSec * float64(time.Second)
	if d > float64(math.MaxInt64) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}
