package server

import (
	"strconv"
	"sync"
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
	routeRejected  = "rejected"  // refused before routing, by fasthttp or the body gate: 413, 431, 408, 400, 503 (no room for a body)
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
	duration *latencyCollector
	inFlight atomic.Int64 // exported by a GaugeFunc: one atomic add per change instead of a float compare-and-swap loop
}

func newHTTPMetrics() *httpMetrics {
	return &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "adtracker_http_requests_total",
			Help: "HTTP requests answered, by route pattern (or unmatched/preflight/rejected), method and status code.",
		}, []string{"route", "method", "code"}),
		duration: newLatencyCollector(),
	}
}

func (m *httpMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.duration, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "adtracker_http_requests_in_flight", Help: "Requests being handled now.",
	}, func() float64 { return float64(m.inFlight.Load()) })}
}

// counterRef boxes a resolved counter so it can sit behind an atomic pointer.
type counterRef struct{ c prometheus.Counter }

// route holds one label set's pre-resolved series. The status counters are resolved the first time a code is seen (one map lookup in
// client_golang, once) and then read with one atomic load: no lock and no allocation per request.
type route struct {
	vec      *prometheus.CounterVec
	pattern  string
	method   string
	duration *latency
	readCORS bool                            // answers carry the read-route CORS policy (http.read_cors_origins), not the ingest one
	codes    [600]atomic.Pointer[counterRef] // index = status code; 0 holds codes outside 100–599
}

func (m *httpMetrics) route(pattern, method string) *route {
	return &route{vec: m.requests, pattern: pattern, method: method, duration: m.duration.route(pattern)}
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

// observe counts one answer. shard spreads the duration's atomic adds over latencyShards cache lines (the connection id: one
// connection's requests are sequential, different connections run on different cores).
func (r *route) observe(code int, d time.Duration, shard uint64) {
	r.counter(code).Inc()
	r.duration.observe(d, shard)
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

// latencyBounds are the duration histogram's upper bounds (le). Ingest answers in microseconds and a query in milliseconds to
// seconds; the Prometheus default buckets start at 5 ms.
var latencyBounds = [...]time.Duration{100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond,
	2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second}

const latencyShards = 4 // a power of two

// latencyShard is one cache-line-aligned set of counters: per bucket (not cumulative; the last is above every bound) and the sum.
type latencyShard struct {
	counts [len(latencyBounds) + 1]atomic.Uint64
	sumNs  atomic.Uint64
	_      [64 - (len(latencyBounds)+2)*8%64]byte
}

// latency is one route pattern's request-duration histogram. Recording is a short scan and two atomic adds on one shard, where a
// client_golang histogram does a bucket search, four atomic operations and a float compare-and-swap loop on lines every core
// shares; the collector adds the shards up at scrape time.
type latency struct {
	pattern string
	shards  [latencyShards]latencyShard
}

func (l *latency) observe(d time.Duration, shard uint64) {
	d = max(d, 0)
	sh := &l.shards[shard&(latencyShards-1)]
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	sh.counts[i].Add(1)
	sh.sumNs.Add(uint64(d))
}

// latencyCollector exports adtracker_http_request_duration_seconds{route} from every route's latency.
type latencyCollector struct {
	desc   *prometheus.Desc
	mu     sync.Mutex
	routes map[string]*latency
}

func newLatencyCollector() *latencyCollector {
	return &latencyCollector{
		desc: prometheus.NewDesc("adtracker_http_request_duration_seconds",
			"Time from routing to the handler's return (not the network write), by route pattern.", []string{"route"}, nil),
		routes: map[string]*latency{},
	}
}

// route returns the pattern's histogram, shared by every method of the pattern. Called when routes are built, not per request.
func (c *latencyCollector) route(pattern string) *latency {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.routes[pattern]
	if l == nil {
		l = &latency{pattern: pattern}
		c.routes[pattern] = l
	}
	return l
}

func (c *latencyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *latencyCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	list := make([]*latency, 0, len(c.routes))
	for _, l := range c.routes {
		list = append(list, l)
	}
	c.mu.Unlock()
	for _, l := range list {
		var counts [len(latencyBounds) + 1]uint64
		var sum uint64
		for i := range l.shards {
			sh := &l.shards[i]
			for b := range counts {
				counts[b] += sh.counts[b].Load()
			}
			sum += sh.sumNs.Load()
		}
		buckets := make(map[float64]uint64, len(latencyBounds))
		var cum uint64
		for b, bound := range latencyBounds {
			cum += counts[b]
			buckets[bound.Seconds()] = cum
		}
		ch <- prometheus.MustNewConstHistogram(c.desc, cum+counts[len(latencyBounds)], float64(sum)/1e9, buckets, l.pattern)
	}
}
