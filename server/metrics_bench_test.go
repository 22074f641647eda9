package server

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/ratelimit"
)

// BenchmarkMiddlewareParallel is BenchmarkMiddleware on every core at once, each goroutine with its own request as fasthttp's
// connections have: what the per-route metrics cost when two cores update them together (shared cache lines), which the
// single-goroutine benchmark cannot show.
func BenchmarkMiddlewareParallel(b *testing.B) {
	lim, err := ratelimit.New(ratelimit.Config{Ingest: ratelimit.Rule{RPS: 1e12, Burst: 1 << 30}})
	if err != nil {
		b.Fatal(err)
	}
	s := New(Options{Limiter: lim, CORSOrigins: []string{"https://player.example.com"}, Registry: prometheus.NewRegistry()})
	benchRoutes(s)
	h := s.Handler()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := benchCtx("POST", "/ads/click")
		n := 0
		for pb.Next() {
			n++
			ctx.Response.Reset()
			ctx.Request.ResetUserValues()
			h(ctx)
		}
		if n > 0 && ctx.Response.StatusCode() != fasthttp.StatusAccepted {
			b.Errorf("status %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	})
}

// BenchmarkRequestRecording is what the middleware records per request besides the status counter — the in-flight gauge up and
// down and the route's duration — on every core at once: as it does now (atomic in-flight count, sharded latency) and as it did
// with client_golang's Gauge and Histogram, kept as the reference the choice is measured against.
func BenchmarkRequestRecording(b *testing.B) {
	b.Run("sharded", func(b *testing.B) {
		m := newHTTPMetrics()
		l := m.duration.route("/ads/click")
		var conn atomic.Uint64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			id := conn.Add(1)
			d := 40 * time.Microsecond
			for pb.Next() {
				m.inFlight.Add(1)
				l.observe(d, id)
				m.inFlight.Add(-1)
			}
		})
	})
	b.Run("client_golang", func(b *testing.B) {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "g"})
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h", Help: "h",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"route"}).
			WithLabelValues("/ads/click")
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			d := 40 * time.Microsecond
			for pb.Next() {
				g.Inc()
				h.Observe(d.Seconds())
				g.Dec()
			}
		})
	})
}
