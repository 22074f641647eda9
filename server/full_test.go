package server_test

// The full router and registry assembled the way cmd/adtracker/serve.go does, with fakes for the databases: the scrape is linted by
// promtool and compared with docs/operations.md, and the routes are compared with docs/openapi.yaml.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/adtracker/adtracker/catalog"
	"github.com/adtracker/adtracker/ingest"
	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/ingest/pipeline"
	"github.com/adtracker/adtracker/internal/httpx"
	"github.com/adtracker/adtracker/query"
	"github.com/adtracker/adtracker/ratelimit"
	"github.com/adtracker/adtracker/server"
	"github.com/adtracker/adtracker/storage/postgres"
	"github.com/adtracker/adtracker/vast"
	"github.com/adtracker/adtracker/web"
)

type okSink struct{}

func (okSink) Insert(context.Context, *event.Batch) error { return nil }
func (okSink) Ping(context.Context) error                 { return nil }

type oneAd struct{}

func (oneAd) Lookup(id uint64) (ingest.Ad, bool) {
	return ingest.Ad{Accepts: true, TargetURL: "https://example.com/landing"}, id == 1
}

// vastCatalog serves one snapshot to the VAST routes.
type vastCatalog struct{ snap *catalog.Snapshot }

func (v vastCatalog) Snapshot() *catalog.Snapshot { return v.snap }

// oneVASTAd is ad 1 of oneAd, servable as VAST.
func oneVASTAd() vastCatalog {
	return vastCatalog{catalog.NewSnapshot([]postgres.SnapshotRow{{ID: 1, Status: "active", TargetURL: "https://example.com/landing",
		Version: 1, Name: "one", VideoURL: "https://cdn.example.com/one.mp4", DurationSeconds: 15, VideoMimeType: "video/mp4",
		VideoWidth: 640, VideoHeight: 360, VideoDelivery: "progressive", Weight: 1}}, time.Now())}
}

// noAds is an empty ads table.
type noAds struct{}

func (noAds) List(context.Context, string, int64, int) ([]postgres.Ad, bool, error) {
	return nil, false, nil
}
func (noAds) Get(context.Context, int64) (postgres.Ad, error) {
	return postgres.Ad{}, postgres.ErrNotFound
}
func (noAds) Create(context.Context, postgres.Ad) (postgres.Ad, error) {
	return postgres.Ad{}, postgres.ErrNotFound
}
func (noAds) Update(context.Context, postgres.Ad, int64) (postgres.Ad, error) {
	return postgres.Ad{}, postgres.ErrNotFound
}
func (noAds) Patch(context.Context, int64, postgres.AdPatch, int64) (postgres.Ad, error) {
	return postgres.Ad{}, postgres.ErrNotFound
}
func (noAds) Archive(context.Context, int64, int64) (postgres.Ad, error) {
	return postgres.Ad{}, postgres.ErrNotFound
}

type catalogStats struct{}

func (catalogStats) Age() time.Duration { return 3 * time.Second }
func (catalogStats) Size() int          { return 1 }

type full struct {
	srv *server.Server
	reg *prometheus.Registry
}

// newFull mirrors serve.go: the same collectors on the registry, the same Register calls on the router.
func newFull(t *testing.T, lim ratelimit.Config) *full {
	t.Helper()
	pcfg := pipeline.Defaults()
	pcfg.Dir = t.TempDir()
	pcfg.RingCapacity = 1024
	pcfg.InMemoryRing = true
	pcfg.FlushInterval = 10 * time.Millisecond
	pipe, err := pipeline.Open(pcfg, okSink{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pipe.Close(ctx); err != nil {
			t.Errorf("closing the pipeline: %v", err)
		}
	})
	proxies, err := httpx.ParseProxies(nil)
	if err != nil {
		t.Fatal(err)
	}
	lim.Proxies = proxies
	limiter, err := ratelimit.New(lim)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(pipe.Collectors()...)
	reg.MustRegister(ingest.Collectors()...)
	reg.MustRegister(server.CatalogCollectors(catalogStats{})...)
	srv := server.New(server.Options{
		MaxBodyBytes: 1 << 20, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second,
		CORSOrigins: []string{"*"}, Limiter: limiter, Log: zap.NewNop(), Registry: reg,
		Checks:     []server.Check{{Name: "ingest", Fn: func(context.Context) error { return nil }}},
		RouteClass: vast.RouteClass(web.RouteClass(ratelimit.ClassOf)),
		RouteLabel: ingest.RouteLabel,
	})
	h := &ingest.Handlers{
		Decoder: &decode.Decoder{Limits: decode.DefaultLimits()},
		Queue:   pipe, Catalog: oneAd{}, Proxies: proxies, IDs: event.NewIDs(),
	}
	h.Register(srv.Router)
	vh, err := vast.New(vast.Config{Catalog: oneVASTAd(), PublicURL: "https://track.example.com", IDs: h.IDs, CORSOrigins: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	vh.Register(srv.Router)
	catalog.RegisterRoutes(srv.Router, &catalog.Handlers{Repo: noAds{}, Logger: zap.NewNop()})
	query.New(nil, "").Register(srv.Router)
	web.NewHandler().Register(srv.Router, web.NewStatus(web.PipelineSources(pipe)))
	return &full{srv: srv, reg: reg}
}

func (f *full) listen(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func do(t *testing.T, method, url, body string, headers ...string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp.StatusCode
}

var documentedMetric = regexp.MustCompile("(?m)^\\| `(adtracker_[a-z0-9_]+)`")

func documentedMetrics(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range documentedMetric.FindAllStringSubmatch(string(raw), -1) {
		names = append(names, m[1])
	}
	if len(names) < 20 {
		t.Fatalf("found only %d metrics in the docs/operations.md table", len(names))
	}
	return names
}

// registered is every metric name the registry's collectors describe, labelled vectors included even before their first use.
func registered(reg *prometheus.Registry) map[string]bool {
	ch := make(chan *prometheus.Desc, 256)
	go func() { reg.Describe(ch); close(ch) }()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	out := map[string]bool{}
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			out[m[1]] = true
		}
	}
	return out
}

func TestMetricsScrape(t *testing.T) {
	f := newFull(t, ratelimit.Config{Ingest: ratelimit.Rule{RPS: 1000, Burst: 1000}, Query: ratelimit.Rule{RPS: 0.001, Burst: 1}})
	url := f.listen(t)
	// Traffic that makes the labelled series appear.
	want := []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/ads/click", `{"ad_id":1}`, 202},
		{"POST", "/ads/impression", `{"ad_id":7}`, 422},
		{"POST", "/events", `[{"type":"start","ad_id":1},{"type":"bogus","ad_id":1}]`, 202},
		{"GET", "/t/impression?ad_id=1", "", 200},
		{"GET", "/c/1", "", 302},
		{"GET", "/ads/analytics?start=yesterday", "", 400},
		{"GET", "/ads/1", "", 429}, // the query bucket held one token, spent by the analytics request
		{"GET", "/nope", "", 404},
		{"OPTIONS", "/ads/click", "", 204},
	}
	http.DefaultClient.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	defer func() { http.DefaultClient.CheckRedirect = nil }()
	for _, w := range want {
		if got := do(t, w.method, url+w.path, w.body, "Origin", "https://player.example.com", "Access-Control-Request-Method", "POST"); got != w.status {
			t.Fatalf("%s %s = %d, want %d", w.method, w.path, got, w.status)
		}
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrape, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}

	t.Run("promtool", func(t *testing.T) {
		path, err := exec.LookPath("promtool")
		if err != nil {
			// make test sets ADTRACKER_REQUIRE_PROMTOOL so a missing promtool fails there instead of passing unlinted.
			if os.Getenv("ADTRACKER_REQUIRE_PROMTOOL") != "" {
				t.Fatal("promtool not installed (Debian package prometheus) and ADTRACKER_REQUIRE_PROMTOOL is set")
			}
			t.Skip("promtool not installed (Debian package prometheus): the scrape is not linted")
		}
		cmd := exec.Command(path, "check", "metrics")
		cmd.Stdin = bytes.NewReader(scrape)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool check metrics: %v\n%s", err, out)
		}
	})

	exported := map[string]bool{}
	for _, line := range strings.Split(string(scrape), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			exported[f[2]] = true
		}
	}
	known := registered(f.reg)
	documented := map[string]bool{}
	for _, name := range documentedMetrics(t) {
		documented[name] = true
		if !known[name] {
			t.Errorf("docs/operations.md documents %s, which the server does not register", name)
		}
	}
	for name := range known {
		if strings.HasPrefix(name, "adtracker_") && !documented[name] {
			t.Errorf("%s is exported but not documented in docs/operations.md", name)
		}
	}
	// The traffic above must show up under bounded labels.
	for _, s := range []string{
		`adtracker_http_requests_total{code="202",method="POST",route="/ads/click"}`,
		`adtracker_http_requests_total{code="200",method="GET",route="/t/{event}"}`,
		`adtracker_http_requests_total{code="429",method="GET",route="/ads/{id}"}`,
		`adtracker_http_requests_total{code="404",method="GET",route="unmatched"}`,
		`adtracker_http_requests_total{code="204",method="OPTIONS",route="preflight"}`,
		`adtracker_ratelimit_limited_total{class="query"} 1`,
		`adtracker_events_accepted_total{type="click"} `,
		`adtracker_catalog_snapshot_ads 1`,
	} {
		if !bytes.Contains(scrape, []byte(s)) {
			t.Errorf("scrape lacks %s", s)
		}
	}
	for _, name := range []string{"adtracker_http_request_duration_seconds", "adtracker_ring_capacity_slots", "go_goroutines", "process_resident_memory_bytes"} {
		if !exported[name] {
			t.Errorf("scrape lacks the %s family", name)
		}
	}
}

// route is "METHOD /pattern".
func routerRoutes(f *full) map[string]bool {
	out := map[string]bool{}
	for method, paths := range f.srv.Router.List() {
		for _, p := range paths {
			out[method+" "+p] = true
		}
	}
	return out
}

type openAPI struct {
	Paths map[string]map[string]yaml.Node `yaml:"paths"`
}

var httpMethods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "patch": true, "head": true, "options": true}

func TestOpenAPIMatchesRouter(t *testing.T) {
	raw, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPI
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	spec := map[string]bool{}
	for path, item := range doc.Paths {
		for key := range item {
			if httpMethods[key] {
				spec[strings.ToUpper(key)+" "+path] = true
			}
		}
	}
	// The static pixel routes (/t/impression, …) are the API's /t/{event}; the spec documents that one.
	served := map[string]bool{}
	for r := range routerRoutes(newFull(t, ratelimit.Config{})) {
		method, pattern, _ := strings.Cut(r, " ")
		served[method+" "+ingest.RouteLabel(method, pattern)] = true
	}
	var missing, extra []string
	for r := range served {
		if !spec[r] {
			missing = append(missing, r)
		}
	}
	for r := range spec {
		if !served[r] {
			extra = append(extra, r)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("docs/openapi.yaml and the router disagree:\nserved but not in the spec: %v\nin the spec but not served: %v", missing, extra)
	}
	if len(served) < 18 {
		t.Fatalf("only %d routes: the full router was not assembled", len(served))
	}
}

// TestOpenAPIWellFormed checks what a reader of the spec relies on: every $ref resolves, every path parameter is declared, every
// operation has a unique operationId and responses, and every error response uses the Error schema.
func TestOpenAPIWellFormed(t *testing.T) {
	raw, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := yaml.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	if root["openapi"] != "3.1.0" {
		t.Fatalf("openapi: %v", root["openapi"])
	}
	resolve := func(ref string) (any, bool) {
		if !strings.HasPrefix(ref, "#/") {
			return nil, false
		}
		var cur any = root
		for _, part := range strings.Split(ref[2:], "/") {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			if cur, ok = m[part]; !ok {
				return nil, false
			}
		}
		return cur, true
	}
	deref := func(v any) any {
		for i := 0; i < 8; i++ {
			m, ok := v.(map[string]any)
			if !ok || m["$ref"] == nil {
				return v
			}
			v, _ = resolve(m["$ref"].(string))
		}
		return v
	}
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if _, ok := resolve(ref); !ok {
					t.Errorf("%s: $ref %s does not resolve", at, ref)
				}
			}
			for k, c := range v {
				walk(at+"/"+k, c)
			}
		case []any:
			for i, c := range v {
				walk(fmt.Sprintf("%s[%d]", at, i), c)
			}
		}
	}
	walk("#", root)

	ids := map[string]string{}
	param := regexp.MustCompile(`\{([a-z_]+)\}`)
	for path, itemAny := range root["paths"].(map[string]any) {
		item := itemAny.(map[string]any)
		for method, opAny := range item {
			if !httpMethods[method] {
				continue
			}
			op := opAny.(map[string]any)
			where := strings.ToUpper(method) + " " + path
			id, _ := op["operationId"].(string)
			if id == "" || ids[id] != "" {
				t.Errorf("%s: operationId %q missing or also used by %s", where, id, ids[id])
			}
			ids[id] = where
			declared := map[string]bool{}
			for _, list := range []any{item["parameters"], op["parameters"]} {
				ps, _ := list.([]any)
				for _, p := range ps {
					pm, _ := deref(p).(map[string]any)
					if pm["in"] == "path" {
						declared[pm["name"].(string)] = true
					}
				}
			}
			for _, m := range param.FindAllStringSubmatch(path, -1) {
				if !declared[m[1]] {
					t.Errorf("%s: path parameter %s not declared", where, m[1])
				}
			}
			responses, _ := op["responses"].(map[string]any)
			if len(responses) == 0 {
				t.Errorf("%s: no responses", where)
			}
			for code, r := range responses {
				if code < "400" || path == "/readyz" || path == "/events" {
					continue // /readyz's 503 and /events' errors have their own documented shapes
				}
				rm, _ := deref(r).(map[string]any)
				content, _ := rm["content"].(map[string]any)
				js, _ := content["application/json"].(map[string]any)
				schema, _ := js["schema"].(map[string]any)
				if schema["$ref"] != "#/components/schemas/Error" {
					t.Errorf("%s %s: error response does not use the Error schema", where, code)
				}
			}
		}
	}
}

// Every route has a deliberate rate-limit class; a new route fails here until someone decides.
func TestRouteClasses(t *testing.T) {
	want := map[string]ratelimit.Class{
		"GET /healthz": ratelimit.None, "GET /readyz": ratelimit.None, "GET /metrics": ratelimit.None,
		"POST /ads/click": ratelimit.Ingest, "POST /ads/impression": ratelimit.Ingest, "POST /events": ratelimit.Ingest,
		"GET /ads/click": ratelimit.Ingest, "GET /ads/impression": ratelimit.Ingest,
		"GET /t/{event}": ratelimit.Ingest, "GET /c/{id}": ratelimit.Ingest,
		// Players load VAST like they fire pixels: open, limited per client, CORS for players' pages.
		"GET /vast": ratelimit.Ingest, "GET /vast/{ad_id}": ratelimit.Ingest,
		"OPTIONS /vast": ratelimit.Ingest, "OPTIONS /vast/{ad_id}": ratelimit.Ingest,
		"GET /ads": ratelimit.Query, "GET /ads/{id}": ratelimit.Query,
		"GET /ads/analytics": ratelimit.Query, "GET /ads/{id}/timeseries": ratelimit.Query, "GET /ads/{id}/breakdown": ratelimit.Query,
		"POST /ads": ratelimit.Admin, "PUT /ads/{id}": ratelimit.Admin, "PATCH /ads/{id}": ratelimit.Admin, "DELETE /ads/{id}": ratelimit.Admin,
		// The dashboard's page and files are open (they hold no data); its status feed is a read.
		"GET /": ratelimit.None, "GET /assets/{file}": ratelimit.None, "GET /status": ratelimit.Query,
	}
	classOf := vast.RouteClass(web.RouteClass(ratelimit.ClassOf)) // as serve.go wires it
	for r := range routerRoutes(newFull(t, ratelimit.Config{})) {
		method, pattern, _ := strings.Cut(r, " ")
		// The static pixel routes (/t/impression, …) are /t/{event} to their users: they take its class.
		c, ok := want[method+" "+ingest.RouteLabel(method, pattern)]
		if !ok {
			t.Errorf("route %s has no expected rate-limit class here: decide one (ratelimit.ClassOf) and add it", r)
			continue
		}
		if got := classOf(method, pattern); got != c {
			t.Errorf("%s is class %s, want %s", r, got, c)
		}
	}
}

// The full stack over a real connection: an ingest request from a browser origin gets every header the middleware promises.
func TestFullStackHeaders(t *testing.T) {
	f := newFull(t, ratelimit.Config{Ingest: ratelimit.Rule{RPS: 1000}})
	url := f.listen(t)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url + "/ads/click")
	req.Header.SetMethod("POST")
	req.Header.Set("Origin", "https://player.example.com")
	req.Header.Set("X-Request-ID", "abc-123")
	req.SetBodyString(`{"ad_id":1}`)
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for h, v := range map[string]string{
		"X-Request-ID": "abc-123", "Access-Control-Allow-Origin": "*", "X-Content-Type-Options": "nosniff",
		"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
	} {
		if got := string(resp.Header.Peek(h)); got != v {
			t.Errorf("%s = %q, want %q", h, got, v)
		}
	}
	if resp.StatusCode() != 202 {
		t.Fatalf("status %d %s", resp.StatusCode(), resp.Body())
	}
}

// GET /vast through the whole middleware, with http.cors_origins "*": the route's credentialed CORS answer (the page's Origin echoed,
// Allow-Credentials) survives the middleware, whose "*" would make browsers refuse a credentialed XHR; a preflight gets the same.
// Also checks the answer is a VAST document with the no-store caching players need.
func TestFullStackVAST(t *testing.T) {
	f := newFull(t, ratelimit.Config{Ingest: ratelimit.Rule{RPS: 1000}})
	url := f.listen(t)
	for _, method := range []string{"GET", "OPTIONS"} {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(url + "/vast/1")
		req.Header.SetMethod(method)
		req.Header.Set("Origin", "https://player.example.com")
		req.Header.Set("Access-Control-Request-Method", "GET")
		if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"Access-Control-Allow-Origin": "https://player.example.com", "Access-Control-Allow-Credentials": "true",
			"X-Content-Type-Options": "nosniff"}
		if method == "GET" {
			want["Content-Type"], want["Cache-Control"] = "application/xml", "no-store"
			if resp.StatusCode() != 200 || !bytes.Contains(resp.Body(), []byte("<AdServingId>")) {
				t.Errorf("GET: %d %s", resp.StatusCode(), resp.Body())
			}
		} else if resp.StatusCode() != 204 {
			t.Errorf("preflight: %d %s", resp.StatusCode(), resp.Body())
		}
		for h, v := range want {
			if got := string(resp.Header.Peek(h)); got != v {
				t.Errorf("%s: %s = %q, want %q", method, h, got, v)
			}
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
}
