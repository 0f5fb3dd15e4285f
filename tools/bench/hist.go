package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
)

// The histogram is HDR-style: values below 2*subCount are counted exactly, larger ones in
// log-spaced buckets each split into subCount linear sub-buckets, so a reported percentile is within
// 1/subCount (0.8%) of the true value whatever its magnitude. Bucket boundaries are fixed, which is
// what lets histograms recorded in different processes merge exactly by adding counts.
const (
	subBits  = 7
	subCount = 1 << subBits // 128
	// MaxTrackable is the largest value kept exactly in its bucket (in the unit recorded: the bench
	// records nanoseconds, so about 18 minutes, above the longest allowed run). Larger values are
	// counted in the last bucket.
	MaxTrackable = 1<<40 - 1
	numBuckets   = (40 - subBits + 1) * subCount // the bucket of MaxTrackable is the last
)

// Histogram counts non-negative int64 values. The zero value is empty and ready to use; it is not
// safe for concurrent use (Recorder is).
type Histogram struct {
	counts [numBuckets]uint64
	total  uint64
	min    int64
	max    int64
	sum    float64
}

// bucketOf maps v (0..MaxTrackable) to its bucket index.
func bucketOf(v int64) int {
	if v < 2*subCount {
		return int(v)
	}
	// shift puts v>>shift in [subCount, 2*subCount).
	shift := bits.Len64(uint64(v)) - subBits - 1
	return (shift+1)*subCount + int(v>>shift) - subCount
}

// bucketRange is the smallest and largest value that land in bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < 2*subCount {
		return int64(i), int64(i)
	}
	shift := i/subCount - 1
	sub := int64(i%subCount + subCount)
	return sub << shift, (sub+1)<<shift - 1
}

func clampValue(v int64) int64 { return max(0, min(v, MaxTrackable)) }

// Record counts one value; negatives count as 0 and values above MaxTrackable as MaxTrackable.
func (h *Histogram) Record(v int64) { h.RecordN(v, 1) }

// RecordN counts n copies of v.
func (h *Histogram) RecordN(v int64, n uint64) {
	if n == 0 {
		return
	}
	v = clampValue(v)
	h.counts[bucketOf(v)] += n
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if h.total == 0 || v > h.max {
		h.max = v
	}
	h.total += n
	h.sum += float64(v) * float64(n)
}

// Merge adds every count of o to h. Merging is exact: the result equals recording both inputs into
// one histogram.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if h.total == 0 || o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Min and Max are the exact extremes (0 when empty).
func (h *Histogram) Min() int64 { return h.min }
func (h *Histogram) Max() int64 { return h.max }

// Mean is the exact mean (0 when empty).
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}

// Quantile returns the value at quantile q (0..1): the largest value of the bucket holding the
// ceil(q*count)-th smallest value, bounded by the exact min and max, as HdrHistogram reports it.
// So Quantile(0) is Min and Quantile(1) is Max. An empty histogram gives 0.
func (h *Histogram) Quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	if q <= 0 || math.IsNaN(q) {
		return h.min
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = max(1, min(rank, h.total))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketRange(i)
			return max(h.min, min(hi, h.max))
		}
	}
	return h.max
}

// histJSON is the wire form: only non-empty buckets, as [index, count] pairs, so a histogram of a
// few distinct latencies is a few hundred bytes on a worker's stdout.
type histJSON struct {
	N       uint64      `json:"n"`
	Min     int64       `json:"min"`
	Max     int64       `json:"max"`
	Sum     float64     `json:"sum"`
	Buckets [][2]uint64 `json:"b,omitempty"`
}

// MarshalJSON encodes the histogram sparsely.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	j := histJSON{N: h.total, Min: h.min, Max: h.max, Sum: h.sum}
	for i, c := range h.counts {
		if c != 0 {
			j.Buckets = append(j.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON wrote, checking bucket indexes and that counts add up.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var j histJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*h = Histogram{}
	var n uint64
	for _, bc := range j.Buckets {
		if bc[0] >= numBuckets {
			return fmt.Errorf("histogram bucket %d out of range", bc[0])
		}
		h.counts[bc[0]] += bc[1]
		n += bc[1]
	}
	if n != j.N {
		return fmt.Errorf("histogram buckets hold %d values, header says %d", n, j.N)
	}
	h.total, h.min, h.max, h.sum = j.N, j.Min, j.Max, j.Sum
	return nil
}
