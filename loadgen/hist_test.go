package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBucketsCoverEveryValueOnce(t *testing.T) {
	f := func(v uint64) {
		t.Helper()
		i := bucketOf(v)
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of range", v, i)
		}
		if v > maxValue {
			return
		}
		if hi := bucketHigh(i); hi < v {
			t.Fatalf("bucketHigh(bucketOf(%d)) = %d < value", v, hi)
		}
		if i > 0 && bucketHigh(i-1) >= v {
			t.Fatalf("value %d also fits bucket %d (high %d)", v, i-1, bucketHigh(i-1))
		}
		if hi := bucketHigh(i); v >= subCount && float64(hi-v) > float64(v)*RelativeError {
			t.Fatalf("bucket of %d reaches %d: more than %.4f relative error", v, hi, RelativeError)
		}
	}
	for v := uint64(0); v < 5000; v++ {
		f(v)
	}
	for s := 1; s < 64; s++ {
		for _, d := range []int64{-1, 0, 1} {
			f(uint64(int64(1)<<s + d))
		}
	}
	f(maxValue)
	f(math.MaxUint64)
	if bucketOf(maxValue) != numBuckets-1 {
		t.Fatalf("top value lands in %d, want the last bucket %d", bucketOf(maxValue), numBuckets-1)
	}
}

// Percentiles must match the exact order statistic of the sorted samples, rounded up by at most the bucket width.
func TestPercentilesMatchSortedSamples(t *testing.T) {
	f := func(name string, samples []uint64) {
		t.Helper()
		var h Histogram
		for _, v := range samples {
			h.Record(v)
		}
		sorted := slices.Clone(samples)
		slices.Sort(sorted)
		for _, p := range []float64{0.1, 1, 25, 50, 90, 99, 99.9, 99.99, 100} {
			rank := int(math.Ceil(p / 100 * float64(len(sorted))))
			want := sorted[max(rank, 1)-1]
			got := h.Percentile(p)
			if got < want || float64(got-want) > float64(want)*RelativeError+1 {
				t.Errorf("%s: p%v = %d, want %d (+%.2f%%)", name, p, got, want, RelativeError*100)
			}
		}
		if h.Max() != sorted[len(sorted)-1] || h.Min() != sorted[0] || h.Count() != uint64(len(sorted)) {
			t.Errorf("%s: max %d min %d count %d, want %d %d %d", name, h.Max(), h.Min(), h.Count(),
				sorted[len(sorted)-1], sorted[0], len(sorted))
		}
		var sum float64
		for _, v := range samples {
			sum += float64(v)
		}
		if m := h.Mean(); math.Abs(m-sum/float64(len(samples))) > 1e-6*m {
			t.Errorf("%s: mean %f, want %f", name, m, sum/float64(len(samples)))
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	logNormal := make([]uint64, 200000)
	for i := range logNormal {
		logNormal[i] = uint64(math.Exp(r.NormFloat64()*1.5 + 13)) // ~440 µs median, heavy tail into seconds
	}
	f("lognormal", logNormal)
	small := make([]uint64, 1000)
	for i := range small {
		small[i] = uint64(r.IntN(300))
	}
	f("small exact", small)
	f("one", []uint64{123456789})
	bimodal := make([]uint64, 10001)
	for i := range bimodal {
		bimodal[i] = 200_000
		if i%100 == 0 {
			bimodal[i] = 50_000_000
		}
	}
	f("bimodal", bimodal)
}

func TestMergeAndSub(t *testing.T) {
	var a, b, all Histogram
	for i := uint64(1); i <= 1000; i++ {
		all.Record(i * 1000)
		if i%2 == 0 {
			a.Record(i * 1000)
		} else {
			b.Record(i * 1000)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	for _, p := range []float64{50, 99, 100} {
		if m.Percentile(p) != all.Percentile(p) {
			t.Fatalf("merged p%v = %d, want %d", p, m.Percentile(p), all.Percentile(p))
		}
	}
	m.Sub(&a) // what b recorded
	if m.Count() != b.Count() || m.Percentile(50) != b.Percentile(50) {
		t.Fatalf("after Sub: count %d p50 %d, want %d %d", m.Count(), m.Percentile(50), b.Count(), b.Percentile(50))
	}
	var empty Histogram
	if empty.Percentile(99) != 0 || empty.Mean() != 0 || empty.Min() != 0 {
		t.Fatal("empty histogram must report zeros")
	}
}

func TestRecordAllocs(t *testing.T) {
	var h Histogram
	if n := testing.AllocsPerRun(1000, func() { h.Record(12345) }); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Record(uint64(i) * 7919)
	}
}
