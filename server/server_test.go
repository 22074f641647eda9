package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/adtracker/adtracker/internal/httpx"
	"github.com/adtracker/adtracker/ratelimit"
)

// request runs one request through h as the fasthttp server would, from peer.
func request(h fasthttp.RequestHandler, peer, method, uri string, headers ...string) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	ctx := new(fasthttp.RequestCtx)
	ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP(peer).To4(), Port: 40000}, nil)
	h(ctx)
	return ctx
}

// series gathers reg into "name{label="value",...}" → value (counter value, gauge value, or histogram sample count).
func series(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.Metric {
			var ls []string
			for _, l := range m.Label {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(ls)
			key := f.GetName() + "{" + strings.Join(ls, ",") + "}"
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.Counter.GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.Gauge.GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

type testServer struct {
	*Server
	reg  *prometheus.Registry
	logs *observer.ObservedLogs
	h    fasthttp.RequestHandler
}

func newTestServer(t *testing.T, opt Options, routes func(s *Server)) *testServer {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	opt.Log = zap.New(core)
	opt.Registry = prometheus.NewRegistry()
	s := New(opt)
	if routes != nil {
		routes(s)
	}
	return &testServer{Server: s, reg: opt.Registry, logs: logs, h: s.Handler()}
}

func sampleRoutes(s *Server) {
	s.Router.POST("/ads/click", func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(fasthttp.StatusAccepted)
		ctx.SetContentType("application/json; charset=utf-8")
		ctx.SetBodyString(`{"status":"queued"}`)
	})
	// A static route beside a parameter route and one below it: Lookup on the pattern must pick each one's own handler.
	s.Router.GET("/ads/analytics", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("analytics") })
	s.Router.GET("/ads/{id}", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ad " + ctx.UserValue("id").(string)) })
	s.Router.GET("/ads/{id}/timeseries", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ts " + ctx.UserValue("id").(string)) })
	s.Router.GET("/files/{path:*}", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("file " + ctx.UserValue("path").(string)) })
	s.Router.GET("/t/{event}", func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("image/gif")
		ctx.Response.Header.Set("Cache-Control", "no-cache")
		ctx.SetBodyString("GIF")
	})
	s.Router.GET("/boom", func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Location", "/leak")
		panic("kaboom")
	})
	s.Router.GET("/down", func(ctx *fasthttp.RequestCtx) {
		httpx.WriteError(ctx, fasthttp.StatusServiceUnavailable, "clickhouse down", "")
	})
}

func TestRoutesKeepTheirHandlers(t *testing.T) {
	ts := newTestServer(t, Options{PublicReads: true}, sampleRoutes)
	f := func(method, uri string, wantStatus int, wantBody string) {
		t.Helper()
		ctx := request(ts.h, "192.0.2.1", method, uri)
		if ctx.Response.StatusCode() != wantStatus || !strings.HasPrefix(string(ctx.Response.Body()), wantBody) {
			t.Fatalf("%s %s = %d %q, want %d %q", method, uri, ctx.Response.StatusCode(), ctx.Response.Body(), wantStatus, wantBody)
		}
	}
	f("GET", "/ads/analytics", 200, "analytics")
	f("GET", "/ads/42", 200, "ad 42")
	f("GET", "/ads/42/timeseries", 200, "ts 42")
	f("GET", "/files/a/b.txt", 200, "file a/b.txt")
	f("POST", "/ads/click", 202, `{"status":"queued"}`)
	f("GET", "/healthz", 200, `{"status":"ok"}`)
	f("GET", "/nope", 404, `{"error":"no such route"}`)
	f("DELETE", "/ads/click", 405, `{"error":"method not allowed"}`)
	f("GET", "/boom", 500, `{"error":"internal error"}`)
}

func TestRouteMetrics(t *testing.T) {
	ts := newTestServer(t, Options{PublicReads: true}, sampleRoutes)
	for i := 0; i < 3; i++ {
		request(ts.h, "192.0.2.1", "GET", fmt.Sprintf("/ads/%d", i))
	}
	request(ts.h, "192.0.2.1", "POST", "/ads/click")
	request(ts.h, "192.0.2.1", "GET", "/random/path/1")
	request(ts.h, "192.0.2.1", "BREW", "/random/path/2")
	request(ts.h, "192.0.2.1", "DELETE", "/ads/click")
	request(ts.h, "192.0.2.1", "OPTIONS", "/ads/click")
	request(ts.h, "192.0.2.1", "GET", "/down")
	got := series(t, ts.reg)
	f := func(key string, want float64) {
		t.Helper()
		if got[key] != want {
			var keys []string
			for k := range got {
				if strings.HasPrefix(k, "adtracker_http") {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			t.Fatalf("%s = %v, want %v; have:\n%s", key, got[key], want, strings.Join(keys, "\n"))
		}
	}
	// The pattern, never the raw path; unknown methods folded into "other".
	f(`adtracker_http_requests_total{code="200",method="GET",route="/ads/{id}"}`, 3)
	f(`adtracker_http_request_duration_seconds{route="/ads/{id}"}`, 3)
	f(`adtracker_http_requests_total{code="202",method="POST",route="/ads/click"}`, 1)
	f(`adtracker_http_requests_total{code="404",method="GET",route="unmatched"}`, 1)
	f(`adtracker_http_requests_total{code="404",method="other",route="unmatched"}`, 1)
	f(`adtracker_http_requests_total{code="405",method="DELETE",route="unmatched"}`, 1)
	f(`adtracker_http_requests_total{code="204",method="OPTIONS",route="preflight"}`, 1)
	f(`adtracker_http_requests_total{code="503",method="GET",route="/down"}`, 1)
	f(`adtracker_http_request_duration_seconds{route="unmatched"}`, 3)
	f(`adtracker_http_requests_in_flight{}`, 0)
	for k := range got {
		if strings.Contains(k, "random") || strings.Contains(k, "BREW") {
			t.Fatalf("request data leaked into a label: %s", k)
		}
	}
}

func TestRequestID(t *testing.T) {
	ts := newTestServer(t, Options{PublicReads: true}, sampleRoutes)
	gen := regexp.MustCompile(`^[0-9a-f]{32}$`)
	f := func(sent string, wantEcho bool) string {
		t.Helper()
		var hdr []string
		if sent != "" {
			hdr = []string{"X-Request-ID", sent}
		}
		ctx := request(ts.h, "192.0.2.1", "GET", "/nope", hdr...)
		got := string(ctx.Response.Header.Peek("X-Request-ID"))
		if wantEcho && got != sent || !wantEcho && !gen.MatchString(got) {
			t.Fatalf("sent %q got %q (echo %v)", sent, got, wantEcho)
		}
		return got
	}
	f("3f2a9c1e-0b7d-4c55-9e21-6a0d8f4b2c17", true)
	f("trace:abc/DEF+1=", true)
	a, b := f("", false), f("", false)
	if a == b {
		t.Fatalf("generated ids repeat: %s", a)
	}
	f("has space", false)
	f("bad\"quote", false)
	f(strings.Repeat("a", 129), false)
	f(strings.Repeat("a", 128), true)
}

func TestPanicAndFailureLogsCarryRequestID(t *testing.T) {
	ts := newTestServer(t, Options{PublicReads: true}, sampleRoutes)
	ctx := request(ts.h, "192.0.2.1", "GET", "/boom", "X-Request-ID", "req-boom-1")
	if ctx.Response.StatusCode() != 500 || len(ctx.Response.Header.Peek("Location")) != 0 {
		t.Fatalf("panic answered %d with Location %q", ctx.Response.StatusCode(), ctx.Response.Header.Peek("Location"))
	}
	if id := string(ctx.Response.Header.Peek("X-Request-ID")); id != "req-boom-1" {
		t.Fatalf("500 lost the request id: %q", id)
	}
	for _, msg := range []string{"handler panic", "request failed"} {
		entries := ts.logs.FilterMessage(msg).Filter(func(e observer.LoggedEntry) bool {
			return fmt.Sprint(e.ContextMap()["request_id"]) == "req-boom-1"
		}).All()
		if len(entries) != 1 || entries[0].Level != zapcore.ErrorLevel {
			t.Fatalf("%q logs with the request id: %+v", msg, ts.logs.All())
		}
	}
	// A flood of identical failures is sampled: 5 per second, then 1 in 100.
	for i := 0; i < 300; i++ {
		request(ts.h, "192.0.2.1", "GET", "/down")
	}
	n := ts.logs.FilterMessage("request failed").FilterField(zap.Int("status", 503)).Len()
	// 5 + 2 within one second; a second boundary during the loop restarts the count, hence the slack.
	if n < 5 || n > 20 {
		t.Fatalf("300 failures logged %d times, want about the sampler's 5 (+1 per 100)", n)
	}
}

func TestSecurityHeaders(t *testing.T) {
	ts := newTestServer(t, Options{PublicReads: true}, sampleRoutes)
	f := func(uri, wantCache, wantReferrer string) {
		t.Helper()
		h := &request(ts.h, "192.0.2.1", "GET", uri).Response.Header
		if string(h.Peek("X-Content-Type-Options")) != "nosniff" || string(h.Peek("Cache-Control")) != wantCache ||
			string(h.Peek("Referrer-Policy")) != wantReferrer {
			t.Fatalf("%s headers:\n%s", uri, h.String())
		}
	}
	f("/ads/analytics", "", "")              // not JSON: the handler's business
	f("/healthz", "no-store", "no-referrer") // JSON API answer
	f("/nope", "no-store", "no-referrer")    // JSON error
	f("/t/impression", "no-cache", "")       // the pixel keeps its own caching
}

func TestCORS(t *testing.T) {
	list := newTestServer(t, Options{CORSOrigins: []string{"https://player.example.com/", "https://b.example"}, PublicReads: true}, sampleRoutes)
	reads := newTestServer(t, Options{CORSOrigins: []string{"*"}, ReadCORSOrigins: []string{"https://dash.example"}, PublicReads: true}, sampleRoutes)
	anyOrigin := newTestServer(t, Options{CORSOrigins: []string{"*"}, PublicReads: true}, sampleRoutes)
	off := newTestServer(t, Options{PublicReads: true}, sampleRoutes)
	type want struct {
		status                       int
		allowOrigin, methods, maxAge string
	}
	f := func(ts *testServer, method, uri, origin string, w want) *fasthttp.ResponseHeader {
		t.Helper()
		hdr := []string{}
		if origin != "" {
			hdr = append(hdr, "Origin", origin)
		}
		if method == "OPTIONS" {
			hdr = append(hdr, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
		}
		ctx := request(ts.h, "192.0.2.1", method, uri, hdr...)
		h := &ctx.Response.Header
		if ctx.Response.StatusCode() != w.status || string(h.Peek("Access-Control-Allow-Origin")) != w.allowOrigin ||
			string(h.Peek("Access-Control-Allow-Methods")) != w.methods || string(h.Peek("Access-Control-Max-Age")) != w.maxAge {
			t.Fatalf("%s %s from %q: %d\n%s", method, uri, origin, ctx.Response.StatusCode(), h.String())
		}
		return h
	}
	h := f(list, "OPTIONS", "/ads/click", "https://player.example.com", want{204, "https://player.example.com", "GET, OPTIONS, POST", "7200"})
	if !strings.Contains(string(h.Peek("Access-Control-Allow-Headers")), "Content-Type") || string(h.Peek("Vary")) != "Origin" {
		t.Fatalf("preflight headers:\n%s", h.String())
	}
	f(list, "OPTIONS", "/ads/click", "https://evil.example", want{403, "", "", ""})
	f(list, "OPTIONS", "/nope", "https://player.example.com", want{404, "https://player.example.com", "", ""}) // the page may read the error
	h = f(list, "POST", "/ads/click", "https://B.example", want{202, "https://B.example", "", ""})
	if !strings.Contains(string(h.Peek("Access-Control-Expose-Headers")), "X-Request-ID") {
		t.Fatalf("expose headers:\n%s", h.String())
	}
	f(list, "POST", "/ads/click", "https://evil.example", want{202, "", "", ""})
	// "*" on ingest routes only: a page may not read the catalogue or analytics through a visitor's browser.
	f(anyOrigin, "OPTIONS", "/ads/{id}", "https://anyone.example", want{403, "", "", ""})
	f(anyOrigin, "GET", "/ads/1", "https://anyone.example", want{200, "", "", ""})
	f(anyOrigin, "GET", "/healthz", "https://anyone.example", want{200, "", "", ""})
	f(anyOrigin, "OPTIONS", "/t/start", "https://anyone.example", want{204, "*", "GET, OPTIONS", "7200"})
	// Read routes have their own list (http.read_cors_origins).
	h = f(reads, "OPTIONS", "/ads/analytics", "https://dash.example", want{204, "https://dash.example", "GET, OPTIONS", "7200"})
	if string(h.Peek("Vary")) != "Origin" {
		t.Fatalf("read preflight headers:\n%s", h.String())
	}
	f(reads, "GET", "/ads/analytics", "https://dash.example", want{200, "https://dash.example", "", ""})
	f(reads, "GET", "/ads/analytics", "https://player.example.com", want{200, "", "", ""})
	f(reads, "OPTIONS", "/ads/analytics", "https://player.example.com", want{403, "", "", ""})
	f(reads, "POST", "/ads/click", "https://player.example.com", want{202, "*", "", ""})
	f(off, "OPTIONS", "/ads/click", "https://player.example.com", want{403, "", "", ""})
	f(off, "GET", "/ads/1", "https://player.example.com", want{200, "", "", ""})
	// A plain OPTIONS (no preflight headers) lists the methods (GET: /ads/{id} matches /ads/click too).
	ctx := request(off.h, "192.0.2.1", "OPTIONS", "/ads/click")
	if ctx.Response.StatusCode() != 204 || string(ctx.Response.Header.Peek("Allow")) != "GET, OPTIONS, POST" {
		t.Fatalf("plain OPTIONS: %d\n%s", ctx.Response.StatusCode(), ctx.Response.Header.String())
	}
}

func TestRateLimitByRouteClass(t *testing.T) {
	lim, err := ratelimit.New(ratelimit.Config{Ingest: ratelimit.Rule{RPS: 0.001, Burst: 2}, Query: ratelimit.Rule{RPS: 0.001, Burst: 1}})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	ts := newTestServer(t, Options{Limiter: lim, PublicReads: true}, func(s *Server) {
		sampleRoutes(s)
		s.Router.POST("/events", func(ctx *fasthttp.RequestCtx) { calls++; ctx.SetStatusCode(202) })
	})
	f := func(peer, method, uri string, want int) {
		t.Helper()
		ctx := request(ts.h, peer, method, uri)
		if ctx.Response.StatusCode() != want {
			t.Fatalf("%s %s %s = %d, want %d", peer, method, uri, ctx.Response.StatusCode(), want)
		}
		if want == 429 && (len(ctx.Response.Header.Peek("Retry-After")) == 0 || len(ctx.Response.Header.Peek("X-Request-ID")) == 0) {
			t.Fatalf("429 headers:\n%s", ctx.Response.Header.String())
		}
	}
	f("192.0.2.1", "POST", "/events", 202)
	f("192.0.2.1", "POST", "/events", 202)
	f("192.0.2.1", "POST", "/events", 429)
	f("192.0.2.1", "POST", "/ads/click", 429) // same class, same bucket
	f("192.0.2.2", "POST", "/events", 202)    // another client
	f("192.0.2.1", "GET", "/ads/1", 200)      // another class
	f("192.0.2.1", "GET", "/ads/2", 429)
	for i := 0; i < 5; i++ {
		f("192.0.2.1", "GET", "/healthz", 200) // never limited
	}
	if calls != 3 {
		t.Fatalf("handler ran %d times, want 3: a limited request must not reach it", calls)
	}
	got := series(t, ts.reg)
	if got[`adtracker_ratelimit_limited_total{class="ingest"}`] != 2 || got[`adtracker_ratelimit_limited_total{class="query"}`] != 1 ||
		got[`adtracker_http_requests_total{code="429",method="POST",route="/events"}`] != 1 {
		t.Fatalf("metrics: %v", got)
	}
}

func TestReadinessWhileDraining(t *testing.T) {
	fail := errors.New("connection refused")
	var down bool
	ts := newTestServer(t, Options{Checks: []Check{
		{Name: "postgres", Fn: func(context.Context) error { return nil }},
		{Name: "clickhouse", Fn: func(context.Context) error {
			if down {
				return fail
			}
			return nil
		}},
	}}, nil)
	f := func(wantStatus int, wantBody string) {
		t.Helper()
		ts.RefreshReadiness(context.Background())
		ctx := request(ts.h, "192.0.2.1", "GET", "/readyz")
		if ctx.Response.StatusCode() != wantStatus || string(ctx.Response.Body()) != wantBody {
			t.Fatalf("readyz = %d %s, want %d %s", ctx.Response.StatusCode(), ctx.Response.Body(), wantStatus, wantBody)
		}
	}
	f(200, `{"status":"ready","components":{"postgres":{"ok":true},"clickhouse":{"ok":true}}}`)
	down = true
	f(503, `{"status":"not ready","components":{"postgres":{"ok":true},"clickhouse":{"ok":false,"error":"connection refused"}}}`)
	down = false
	ts.Drain()
	f(503, `{"status":"draining","components":{"postgres":{"ok":true},"clickhouse":{"ok":true}}}`)
	if ctx := request(ts.h, "192.0.2.1", "GET", "/healthz"); ctx.Response.StatusCode() != 200 {
		t.Fatal("liveness failed while draining: the process would be killed before it drained")
	}
}

// /readyz answers from the last background round: requests never reach the databases, so polling it (it is not rate limited) cannot
// amplify anything. Before the first round it answers 503 "starting".
func TestReadyzDoesNotRunChecks(t *testing.T) {
	var calls atomic.Int64
	check := func(context.Context) error { calls.Add(1); return nil }
	ts := newTestServer(t, Options{Checks: []Check{{Name: "postgres", Fn: check}, {Name: "clickhouse", Fn: check}}}, nil)
	get := func() *fasthttp.RequestCtx { return request(ts.h, "192.0.2.1", "GET", "/readyz") }
	for i := 0; i < 100; i++ {
		get()
	}
	if ctx := get(); ctx.Response.StatusCode() != 503 || string(ctx.Response.Body()) != `{"status":"starting","components":{}}` {
		t.Fatalf("before the first round: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("101 requests to /readyz ran the checks %d times, want 0", n)
	}
	ts.RefreshReadiness(context.Background())
	for i := 0; i < 100; i++ {
		get()
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("one round and 100 requests ran the checks %d times, want 2", n)
	}
	if ctx := get(); ctx.Response.StatusCode() != 200 {
		t.Fatalf("after a good round: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

// Serve refreshes readiness in the background: a server that is only listened to becomes ready without anyone calling
// RefreshReadiness.
func TestServeRefreshesReadiness(t *testing.T) {
	addr, _ := listen(t, Options{Checks: []Check{{Name: "ok", Fn: func(context.Context) error { return nil }}}}, nil)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		status, body, err := fasthttp.Get(nil, "http://"+addr+"/readyz")
		if err != nil {
			t.Fatal(err)
		}
		if status == 200 && string(body) == `{"status":"ready","components":{"ok":{"ok":true}}}` {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d %s", status, body)
		}
	}
}

func TestRegexpRouteIsReported(t *testing.T) {
	s := New(Options{})
	s.Router.GET("/x/{id:[0-9]+}", func(*fasthttp.RequestCtx) {})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := s.Serve(ln); err == nil || !strings.Contains(err.Error(), "/x/{id:[0-9]+}") {
		t.Fatalf("Serve = %v, want the route named", err)
	}
}

func TestCatalogCollectors(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(CatalogCollectors(fakeCatalog{90 * time.Second, 12})...)
	got := series(t, reg)
	if got["adtracker_catalog_snapshot_age_seconds{}"] != 90 || got["adtracker_catalog_snapshot_ads{}"] != 12 {
		t.Fatalf("catalog gauges: %v", got)
	}
}

type fakeCatalog struct {
	age  time.Duration
	size int
}

func (f fakeCatalog) Age() time.Duration { return f.age }
func (f fakeCatalog) Size() int          { return f.size }

// benchCtx is a request as the server hands it to the handler: IPv4 peer as a 4-byte address (what accept gives), CORS origin, no
// request id (so one is generated — the costlier branch).
func benchCtx(method, uri string) *fasthttp.RequestCtx {
	ctx := new(fasthttp.RequestCtx)
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.Set("Origin", "https://player.example.com")
	req.Header.SetContentType("application/json")
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7).To4(), Port: 40000}, nil)
	return ctx
}

func benchHandler(b *testing.B, h fasthttp.RequestHandler, ctx *fasthttp.RequestCtx) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ctx.Response.Reset()
		ctx.Request.ResetUserValues()
		h(ctx)
	}
	if ctx.Response.StatusCode() != fasthttp.StatusAccepted {
		b.Fatalf("status %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

func benchRoutes(s *Server) {
	s.Router.POST("/ads/click", func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(fasthttp.StatusAccepted)
		ctx.SetContentType("application/json; charset=utf-8")
		ctx.SetBodyString(`{"status":"queued"}`)
	})
}

// BenchmarkMiddleware is the whole per-request path around an ingest handler: request id, route metrics, rate limit, CORS, security
// headers. It must not allocate.
func BenchmarkMiddleware(b *testing.B) {
	lim, err := ratelimit.New(ratelimit.Config{Ingest: ratelimit.Rule{RPS: 1e12, Burst: 1 << 30}})
	if err != nil {
		b.Fatal(err)
	}
	s := New(Options{Limiter: lim, CORSOrigins: []string{"https://player.example.com"}, Registry: prometheus.NewRegistry()})
	benchRoutes(s)
	benchHandler(b, s.Handler(), benchCtx("POST", "/ads/click"))
}

// BenchmarkBareRouter is the same handler without the middleware, for the overhead figure.
func BenchmarkBareRouter(b *testing.B) {
	s := New(Options{})
	benchRoutes(s)
	benchHandler(b, s.Router.Handler, benchCtx("POST", "/ads/click"))
}
