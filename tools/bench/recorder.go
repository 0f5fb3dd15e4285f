package bench

import "sync/atomic"

// Recorder is a Histogram that many goroutines record into at once (every connection's reader
// records its own latencies): counts are atomic adds, so recording never blocks and a snapshot can
// be taken while recording goes on, for the progress line.
type Recorder struct {
	counts [numBuckets]atomic.Uint64
	min    atomic.Int64 // valid once a bucket is non-zero
	max    atomic.Int64
	// sum is exact in int64 nanoseconds until about 9e18: a billion values averaging 9 s.
	sum atomic.Int64
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	r := &Recorder{}
	r.min.Store(MaxTrackable)
	return r
}

// Record counts one value.
func (r *Recorder) Record(v int64) {
	v = clampValue(v)
	r.sum.Add(v)
	for {
		m := r.min.Load()
		if v >= m || r.min.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := r.max.Load()
		if v <= m || r.max.CompareAndSwap(m, v) {
			break
		}
	}
	// The bucket last: a snapshot that counts the value also sees the min and max it set.
	r.counts[bucketOf(v)].Add(1)
}

// Snapshot copies the counts into a Histogram. Taken while recording goes on it is a consistent
// histogram of roughly the values recorded so far; taken after recording stopped it is exact.
func (r *Recorder) Snapshot() *Histogram {
	h := &Histogram{}
	for i := range r.counts {
		h.counts[i] = r.counts[i].Load()
		h.total += h.counts[i]
	}
	if h.total > 0 {
		h.min, h.max = r.min.Load(), r.max.Load()
		h.sum = float64(r.sum.Load())
	}
	return h
}
