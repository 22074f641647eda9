package server

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Route labels that are not router patterns. Every label value comes from this file or from a registered pattern, never from the
// request, so the series count is bounded by the routes × methods × status codes the service actually answers.
const (
	routeUnmatched = "unmatched" // no route matched: 404, 405, trailing-slash and case redirects
	routePreflight = "preflight" // OPTIONS answered by the router (CORS preflight)
	routeRejected  = "rejected"  // refused by fasthttp before routing: 413 body too large, 431 headers too large, 408 timeout, 400
)

// methods are the method label values; anything else is "other" so a client cannot mint series with made-up methods.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}

func methodIndex(m []byte) int {
	switch string(m) { // no allocation: the compiler compares the bytes in place
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "PATCH":
		return 4
	case "DELETE":
		return 5
	case "OPTIONS":
		return 6
	}
	return 7
}

// httpMetrics are one server's request metrics. Per server (not package globals) so tests can build several servers on separate
// registries.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

func newHTTPMetrics() *httpMetrics {
	return &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "adtracker_http_requests_total",
			Help: "HTTP requests answered, by route pattern (or unmatched/preflight/rejected), method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "adtracker_http_request_duration_seconds",
			Help: "Time from routing to the handler's return (not the network write), by route pattern.",
			// Ingest answers in microseconds and a query in milliseconds to seconds; the default buckets start at 5 ms.
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "adtracker_http_requests_in_flight", Help: "Requests being handled now.",
		}),
	}
}

func (m *httpMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.duration, m.inFlight}
}

// counterRef boxes a resolved counter so it can sit behind an atomic pointer.
type counterRef struct{ c prometheus.Counter }

// route holds one label set's pre-resolved series. The status counters are resolved the first time a code is seen (one map lookup in
// client_golang, once) and then read with one atomic load: no lock and no allocation per request.
type route struct {
	vec      *prometheus.CounterVec
	pattern  string
	method   string
	duration prometheus.Observer
	readCORS bool                            // answers carry the read-route CORS policy (http.read_cors_origins), not the ingest one
	codes    [600]atomic.Pointer[counterRef] // index = status code; 0 holds codes outside 100–599
}

func (m *httpMetrics) route(pattern, method string) *route {
	return &route{vec: m.requests, pattern: pattern, method: method, duration: m.duration.WithLabelValues(pattern)}
}

func (r *route) counter(code int) prometheus.Counter {
	i := code
	if i < 100 || i >= len(r.codes) {
		i = 0
	}
	if ref := r.codes[i].Load(); ref != nil {
		return ref.c
	}
	label := "other"
	if i != 0 {
		label = strconv.Itoa(i)
	}
	// Two goroutines racing here get the same child from the vec, so losing the swap is harmless.
	ref := &counterRef{r.vec.WithLabelValues(r.pattern, r.method, label)}
	r.codes[i].CompareAndSwap(nil, ref)
	return ref.c
}

func (r *route) observe(code int, d time.Duration) {
	r.counter(code).Inc()
	r.duration.Observe(d.Seconds())
}

// fallbackRoutes are the non-pattern labels, one per method label.
type fallbackRoutes [len(methods)]*route

func newFallback(m *httpMetrics, label string) *fallbackRoutes {
	var f fallbackRoutes
	for i, meth := range methods {
		f[i] = m.route(label, meth)
	}
	return &f
}

func (f *fallbackRoutes) of(ctx *fasthttp.RequestCtx) *route { return f[methodIndex(ctx.Method())] }

// CatalogStats is what the catalogue gauges read; *catalog.Catalog implements it.
type CatalogStats interface {
	Age() time.Duration
	Size() int
}

// CatalogCollectors exports the ad catalogue snapshot's age and size, read at scrape time. An age that keeps growing means neither
// NOTIFY nor the periodic reload is reaching Postgres, and ingest is judging ad_ids against a stale list.
func CatalogCollectors(c CatalogStats) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "adtracker_catalog_snapshot_age_seconds", Help: "Time since the ad catalogue snapshot was last loaded (0 before the first load).",
		}, func() float64 { return c.Age().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "adtracker_catalog_snapshot_ads", Help: "Ads in the catalogue snapshot, archived included.",
		}, func() float64 { return float64(c.Size()) }),
	}
}
