package server

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The sharded latency histogram exports what client_golang's Histogram would for the same observations: cumulative buckets with
// inclusive upper bounds (a duration equal to a bound counts in it), the sum in seconds, and the count, whatever shard each
// observation went to.
func TestLatencyHistogramMatchesPrometheusSemantics(t *testing.T) {
	c := newLatencyCollector()
	l := c.route("/ads/click")
	if c.route("/ads/click") != l {
		t.Fatal("the same pattern got two histograms; every method of a pattern must share one series")
	}
	ref := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ref", Help: "ref", Buckets: boundsSeconds()})
	durations := []time.Duration{0, -time.Microsecond, 40 * time.Microsecond, 100 * time.Microsecond, 100*time.Microsecond + 1,
		time.Millisecond, 3 * time.Millisecond, 10 * time.Second, 11 * time.Second, time.Hour}
	for i, d := range durations {
		l.observe(d, uint64(i)) // every shard
		ref.Observe(max(d, 0).Seconds())
	}
	got := collectOne(t, c).GetHistogram()
	want := metricOf(t, ref).GetHistogram()
	if got.GetSampleCount() != want.GetSampleCount() || math.Abs(got.GetSampleSum()-want.GetSampleSum()) > 1e-9 {
		t.Fatalf("count %d sum %v, want %d %v", got.GetSampleCount(), got.GetSampleSum(), want.GetSampleCount(), want.GetSampleSum())
	}
	if len(got.GetBucket()) != len(want.GetBucket()) {
		t.Fatalf("%d buckets, want %d", len(got.GetBucket()), len(want.GetBucket()))
	}
	for i, b := range got.GetBucket() {
		w := want.GetBucket()[i]
		if b.GetUpperBound() != w.GetUpperBound() || b.GetCumulativeCount() != w.GetCumulativeCount() {
			t.Errorf("bucket le=%v: %d, want le=%v: %d", b.GetUpperBound(), b.GetCumulativeCount(), w.GetUpperBound(), w.GetCumulativeCount())
		}
	}
}

func boundsSeconds() []float64 {
	s := make([]float64, len(latencyBounds))
	for i, b := range latencyBounds {
		s[i] = b.Seconds()
	}
	return s
}

func collectOne(t *testing.T, c prometheus.Collector) *dto.Metric {
	t.Helper()
	ch := make(chan prometheus.Metric, 4)
	c.Collect(ch)
	close(ch)
	var ms []prometheus.Metric
	for m := range ch {
		ms = append(ms, m)
	}
	if len(ms) != 1 {
		t.Fatalf("%d series, want 1", len(ms))
	}
	return metricOf(t, ms[0])
}

func metricOf(t *testing.T, m prometheus.Metric) *dto.Metric {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	return &out
}
