// Package loadgen is adtracker's load generator: realistic ad-event traffic over fasthttp, an HDR-style latency histogram, a summary,
// and a check that every event answered 2xx reached ClickHouse exactly once.
package loadgen

import (
	"math"
	"math/bits"
	"sync/atomic"
)

// The histogram is log-linear like HdrHistogram: values below subCount have a bucket each; above, every power of two is split into
// halfCount equal buckets, so a bucket is never wider than 1/halfCount of its lower bound. With subBits = 8 that is ≤ 0.79 % relative
// error — better than two significant digits — from 1 ns to 2^40 ns (18 minutes) in 4352 counters (35 KB).
const (
	subBits    = 8
	subCount   = 1 << subBits
	halfCount  = subCount / 2
	maxBits    = 40
	numBuckets = subCount + (maxBits-subBits)*halfCount
	maxValue   = 1<<maxBits - 1
)

// RelativeError is the largest relative amount by which a reported percentile exceeds the recorded value it stands for.
const RelativeError = 1.0 / halfCount

// Histogram counts values (nanoseconds, by convention). Record is safe to call from one goroutine while others Snapshot it — every
// field is read and written atomically — so each worker owns one and the progress line reads them without a lock.
type Histogram struct {
	counts [numBuckets]uint64
	n      uint64
	sum    uint64
	max    uint64
	min    uint64 // stored as value+1 so zero means "none yet"
}

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	if v > maxValue {
		v = maxValue
	}
	shift := bits.Len64(v) - subBits // ≥ 1
	m := v >> uint(shift)            // in [halfCount, subCount)
	return subCount + (shift-1)*halfCount + int(m-halfCount)
}

// bucketHigh is the largest value that falls in bucket i; percentiles report it (as HdrHistogram's "highest equivalent value" does),
// so a reported percentile is never below the true one.
func bucketHigh(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	j := i - subCount
	shift := uint(j/halfCount + 1)
	m := uint64(j%halfCount + halfCount)
	return (m+1)<<shift - 1
}

// Record adds one value.
func (h *Histogram) Record(v uint64) {
	atomic.AddUint64(&h.counts[bucketOf(v)], 1)
	atomic.AddUint64(&h.n, 1)
	atomic.AddUint64(&h.sum, v)
	for {
		m := atomic.LoadUint64(&h.max)
		if v <= m || atomic.CompareAndSwapUint64(&h.max, m, v) {
			break
		}
	}
	for {
		m := atomic.LoadUint64(&h.min)
		if (m != 0 && v+1 >= m) || atomic.CompareAndSwapUint64(&h.min, m, v+1) {
			break
		}
	}
}

// Reset clears h; not safe while another goroutine records.
func (h *Histogram) Reset() { *h = Histogram{} }

// Merge adds src's counts into h (src may be recording concurrently; h must not be).
func (h *Histogram) Merge(src *Histogram) {
	for i := range h.counts {
		if c := atomic.LoadUint64(&src.counts[i]); c != 0 {
			h.counts[i] += c
		}
	}
	h.n += atomic.LoadUint64(&src.n)
	h.sum += atomic.LoadUint64(&src.sum)
	if m := atomic.LoadUint64(&src.max); m > h.max {
		h.max = m
	}
	if m := atomic.LoadUint64(&src.min); m != 0 && (h.min == 0 || m < h.min) {
		h.min = m
	}
}

// Sub removes prev's counts from h, leaving what was recorded between two snapshots (prev taken before h). Max and min keep h's
// values: they are bounds for the interval, not exact.
func (h *Histogram) Sub(prev *Histogram) {
	for i := range h.counts {
		h.counts[i] -= prev.counts[i]
	}
	h.n -= prev.n
	h.sum -= prev.sum
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return atomic.LoadUint64(&h.n) }

// Max is the largest recorded value (exact).
func (h *Histogram) Max() uint64 { return atomic.LoadUint64(&h.max) }

// Min is the smallest recorded value (exact), 0 when empty.
func (h *Histogram) Min() uint64 {
	if m := atomic.LoadUint64(&h.min); m != 0 {
		return m - 1
	}
	return 0
}

// Mean is the exact mean.
func (h *Histogram) Mean() float64 {
	n := h.Count()
	if n == 0 {
		return 0
	}
	return float64(atomic.LoadUint64(&h.sum)) / float64(n)
}

// Percentile returns the value at or below which p percent of the recorded values lie: for the sorted values s[0..n-1] it answers
// s[ceil(p/100·n)-1] rounded up to its bucket's top, but never more than Max. p outside (0, 100] is clamped.
func (h *Histogram) Percentile(p float64) uint64 {
	n := h.Count()
	if n == 0 {
		return 0
	}
	if p >= 100 {
		return h.Max()
	}
	rank := uint64(math.Ceil(p / 100 * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var cum uint64
	for i := range h.counts {
		cum += atomic.LoadUint64(&h.counts[i])
		if cum >= rank {
			return min(bucketHigh(i), h.Max())
		}
	}
	return h.Max()
}
