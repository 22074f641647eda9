package vast

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/catalog"
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/httpx"
	"github.com/adtracker/adtracker/internal/testenv"
	"github.com/adtracker/adtracker/ratelimit"
	"github.com/adtracker/adtracker/storage/postgres"
)

// fakeCatalog hands out a fixed snapshot, swappable like the real catalogue's.
type fakeCatalog struct{ snap *catalog.Snapshot }

func (f *fakeCatalog) Snapshot() *catalog.Snapshot { return f.snap }

func row(id int64, status string, weight int, video string) postgres.SnapshotRow {
	return postgres.SnapshotRow{ID: id, Status: status, TargetURL: "https://example.com/", Version: 1, Name: "ad",
		VideoURL: video, DurationSeconds: 15, VideoMimeType: "video/mp4", VideoWidth: 640, VideoHeight: 360,
		VideoDelivery: "progressive", Weight: weight}
}

const video = "https://cdn.example.com/v.mp4"

func snapshot(rows ...postgres.SnapshotRow) *catalog.Snapshot {
	return catalog.NewSnapshot(rows, time.Now())
}

type answer struct {
	status int
	header map[string]string
	body   []byte
}

// routers holds each handler's router, built once (tests here run sequentially).
var routers = map[*Handler]*router.Router{}

// do runs one request through h's routes as the server would (the router only; the middleware is tested in package server).
func do(t *testing.T, h *Handler, method, uri string, headers ...string) answer {
	t.Helper()
	r := routers[h]
	if r == nil {
		r = router.New()
		h.Register(r)
		routers[h] = r
	}
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetHost("track.example.com")
	for _, kv := range headers {
		k, v, _ := strings.Cut(kv, ": ")
		req.Header.Set(k, v)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(203, 0, 113, 9), Port: 4000}, nil)
	r.Handler(&ctx)
	a := answer{status: ctx.Response.StatusCode(), header: map[string]string{}, body: append([]byte(nil), ctx.Response.Body()...)}
	for _, k := range []string{"Content-Type", "Cache-Control", "Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Vary",
		"Access-Control-Allow-Methods", "Allow"} {
		if v := ctx.Response.Header.Peek(k); len(v) > 0 {
			a.header[k] = string(v)
		}
	}
	return a
}

func newHandler(t *testing.T, cfg Config) *Handler {
	t.Helper()
	if cfg.PublicURL == "" && cfg.Catalog == nil {
		cfg.PublicURL = testBase
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func wantDoc(t *testing.T, a answer) doc {
	t.Helper()
	if a.status != 200 || a.header["Content-Type"] != "application/xml" || a.header["Cache-Control"] != "no-store" {
		t.Fatalf("status %d headers %v", a.status, a.header)
	}
	return parse(t, a.body)
}

func TestServeAd(t *testing.T) {
	cat := &fakeCatalog{snapshot(row(1, "active", 1, video), row(2, "archived", 1, video), row(3, "paused", 1, video),
		row(4, "active", 1, ""))}
	h := newHandler(t, Config{Catalog: cat, PublicURL: testBase + "/"})
	first := wantDoc(t, do(t, h, "GET", "/vast/1"))
	second := wantDoc(t, do(t, h, "GET", "/vast/1"))
	if len(first.Ads) != 1 || first.Ads[0].ID != "1" {
		t.Fatalf("ads %+v", first.Ads)
	}
	s1, s2 := first.Ads[0].InLine.AdServingID, second.Ads[0].InLine.AdServingID
	if _, err := event.ParseUUID([]byte(s1)); err != nil || s1 == s2 {
		t.Errorf("serve ids %q, %q: want two distinct UUIDs", s1, s2)
	}
	if got := first.Ads[0].InLine.Creatives[0].Linear.ClickThrough; got != testBase+"/c/1?sv="+s1 {
		t.Errorf("ClickThrough %q (public_url's trailing slash must not double)", got)
	}
	// Unknown, archived, paused, without a video: the empty VAST, 200, never an error for the player.
	for _, uri := range []string{"/vast/2", "/vast/3", "/vast/4", "/vast/99", "/vast/9223372036854775807"} {
		a := do(t, h, "GET", uri)
		if a.status != 200 || string(a.body) != Empty || a.header["Content-Type"] != "application/xml" {
			t.Errorf("%s: %d %q", uri, a.status, a.body)
		}
	}
	// A malformed id is the caller's bug: 400 JSON naming it.
	for _, uri := range []string{"/vast/abc", "/vast/0", "/vast/-1", "/vast/01", "/vast/1.5", "/vast/9223372036854775808"} {
		a := do(t, h, "GET", uri)
		var e map[string]string
		if a.status != 400 || json.Unmarshal(a.body, &e) != nil || e["field"] != "ad_id" || !strings.HasPrefix(a.header["Content-Type"], "application/json") {
			t.Errorf("%s: %d %s", uri, a.status, a.body)
		}
	}
}

func TestServeBeforeCatalogueLoads(t *testing.T) {
	h := newHandler(t, Config{Catalog: &fakeCatalog{}, PublicURL: testBase})
	for _, uri := range []string{"/vast", "/vast/1"} {
		if a := do(t, h, "GET", uri); a.status != 200 || string(a.body) != Empty {
			t.Errorf("%s: %d %q", uri, a.status, a.body)
		}
	}
}

func TestServeWeighted(t *testing.T) {
	cat := &fakeCatalog{snapshot(row(1, "active", 1, video), row(2, "active", 3, video), row(3, "active", 0, video),
		row(4, "paused", 100, video), row(5, "active", 100, ""))}
	h := newHandler(t, Config{Catalog: cat, PublicURL: testBase})
	counts := map[string]int{}
	const n = 4000
	wantDoc(t, do(t, h, "GET", "/vast"))
	for range n {
		// The ad id read off the document's start (parsing every draw as XML would make this test slow under -race).
		b := do(t, h, "GET", "/vast").body
		_, rest, _ := bytes.Cut(b, []byte(`<Ad id="`))
		id, _, _ := bytes.Cut(rest, []byte(`"`))
		counts[string(id)]++
	}
	if counts["3"]+counts["4"]+counts["5"] != 0 || counts["1"]+counts["2"] != n {
		t.Fatalf("draws %v: weight 0, paused and video-less ads must never be chosen", counts)
	}
	// Weight 3 against 1: 3000 expected of 4000; 2800..3200 is more than six standard deviations wide.
	if counts["2"] < 2800 || counts["2"] > 3200 {
		t.Errorf("draws %v, want about 1:3", counts)
	}
	// Weight 0 ads still serve by id.
	if d := wantDoc(t, do(t, h, "GET", "/vast/3")); len(d.Ads) != 1 {
		t.Error("weight 0 ad not served by id")
	}
	none := newHandler(t, Config{Catalog: &fakeCatalog{snapshot(row(1, "paused", 1, video), row(2, "active", 0, video))}, PublicURL: testBase})
	if a := do(t, none, "GET", "/vast"); a.status != 200 || string(a.body) != Empty {
		t.Errorf("no eligible ad: %d %q", a.status, a.body)
	}
}

// Templates are rendered once per ad version: a new snapshot with the same version reuses them, a new version re-renders.
func TestTemplateCachePerVersion(t *testing.T) {
	cat := &fakeCatalog{snapshot(row(1, "active", 1, video), row(2, "active", 1, video))}
	h := newHandler(t, Config{Catalog: cat, PublicURL: testBase})
	do(t, h, "GET", "/vast/1")
	t1, t2 := h.cur.Load().ads[1], h.cur.Load().ads[2]
	do(t, h, "GET", "/vast/1")
	if h.cur.Load().ads[1] != t1 {
		t.Fatal("the same snapshot re-rendered")
	}
	changed := row(1, "active", 1, video)
	changed.Version, changed.Name = 2, "renamed"
	cat.snap = snapshot(changed, row(2, "active", 1, video))
	d := wantDoc(t, do(t, h, "GET", "/vast/1"))
	if d.Ads[0].InLine.AdTitle != "renamed" || h.cur.Load().ads[1] == t1 {
		t.Error("a new version was not re-rendered")
	}
	if h.cur.Load().ads[2] != t2 {
		t.Error("an unchanged ad was re-rendered")
	}
}

// Without http.public_url the base comes from the request: Host, and the scheme a trusted proxy reports.
func TestBaseFromRequest(t *testing.T) {
	cat := &fakeCatalog{snapshot(row(1, "active", 1, video))}
	untrusted := newHandler(t, Config{Catalog: cat})
	click := func(a answer) string { return wantDoc(t, a).Ads[0].InLine.Creatives[0].Linear.ClickThrough }
	if got := click(do(t, untrusted, "GET", "/vast/1", "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.example")); !strings.HasPrefix(got, "http://track.example.com/c/1?sv=") {
		t.Errorf("untrusted peer: ClickThrough %q", got)
	}
	proxies, err := httpx.ParseProxies([]string{"203.0.113.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	trusted := newHandler(t, Config{Catalog: cat, Proxies: proxies})
	if got := click(do(t, trusted, "GET", "/vast/1", "X-Forwarded-Proto: https", "X-Forwarded-Host: ads.example.net")); !strings.HasPrefix(got, "https://ads.example.net/c/1?sv=") {
		t.Errorf("trusted proxy: ClickThrough %q", got)
	}
	// Another Host than the cached set's: rendered for that answer, the cache keeps its own base.
	if got := click(do(t, trusted, "GET", "/vast/1")); !strings.HasPrefix(got, "http://track.example.com/c/1?sv=") {
		t.Errorf("second host: ClickThrough %q", got)
	}
	if a := do(t, untrusted, "GET", "/vast/1", "Host: a\"b"); a.status != 400 || !bytes.Contains(a.body, []byte("public_url")) {
		t.Errorf("bad Host: %d %s", a.status, a.body)
	}
}

func TestParsePublicURL(t *testing.T) {
	for in, want := range map[string]string{"https://t.example.com": "https://t.example.com", "http://t.example.com:8080/": "http://t.example.com:8080",
		"https://example.com/adtracker/": "https://example.com/adtracker"} {
		if got, err := ParsePublicURL(in); err != nil || got != want {
			t.Errorf("%q: %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"t.example.com", "ftp://t.example.com", "https://", "https://t.example.com/?a=1", "https://t.example.com/#x",
		"https://u:p@t.example.com", "https://t.example.com/a b", "https://t.example.com/<x>"} {
		if _, err := ParsePublicURL(in); !errors.Is(err, ErrPublicURL) {
			t.Errorf("%q accepted", in)
		}
		if _, err := New(Config{PublicURL: in}); !errors.Is(err, ErrPublicURL) {
			t.Errorf("New accepted %q", in)
		}
	}
}

func TestCORS(t *testing.T) {
	cat := &fakeCatalog{snapshot(row(1, "active", 1, video))}
	listed := newHandler(t, Config{Catalog: cat, PublicURL: testBase, CORSOrigins: []string{"https://player.example.com"}})
	anyOrigin := newHandler(t, Config{Catalog: cat, PublicURL: testBase, CORSOrigins: []string{"*"}})
	off := newHandler(t, Config{Catalog: cat, PublicURL: testBase})
	for _, h := range []*Handler{listed, anyOrigin} {
		for _, uri := range []string{"/vast/1", "/vast", "/vast/77", "/vast/x"} {
			a := do(t, h, "GET", uri, "Origin: https://player.example.com")
			if a.header["Access-Control-Allow-Origin"] != "https://player.example.com" || a.header["Access-Control-Allow-Credentials"] != "true" ||
				a.header["Vary"] != "Origin" {
				t.Errorf("%s: headers %v", uri, a.header)
			}
		}
		pre := do(t, h, "OPTIONS", "/vast/1", "Origin: https://player.example.com", "Access-Control-Request-Method: GET")
		if pre.status != 204 || pre.header["Access-Control-Allow-Origin"] != "https://player.example.com" ||
			pre.header["Access-Control-Allow-Credentials"] != "true" || !strings.Contains(pre.header["Access-Control-Allow-Methods"], "GET") {
			t.Errorf("preflight: %d %v", pre.status, pre.header)
		}
	}
	if a := do(t, listed, "GET", "/vast/1", "Origin: https://other.example.com"); a.header["Access-Control-Allow-Origin"] != "" || a.status != 200 {
		t.Errorf("unlisted origin: %d %v", a.status, a.header)
	}
	if a := do(t, listed, "OPTIONS", "/vast", "Origin: https://other.example.com", "Access-Control-Request-Method: GET"); a.status != 403 {
		t.Errorf("unlisted preflight: %d", a.status)
	}
	if a := do(t, off, "GET", "/vast/1", "Origin: https://player.example.com"); a.header["Access-Control-Allow-Origin"] != "" || a.header["Vary"] != "" {
		t.Errorf("CORS off: %v", a.header)
	}
	if a := do(t, listed, "OPTIONS", "/vast/1"); a.status != 204 || a.header["Allow"] == "" {
		t.Errorf("plain OPTIONS: %d %v", a.status, a.header)
	}
}

func TestRouteClass(t *testing.T) {
	c := RouteClass(ratelimit.ClassOf)
	for _, p := range []string{PathAny, PathAd, "/vast/17"} {
		for _, m := range []string{"GET", "OPTIONS"} {
			if got := c(m, p); got != ratelimit.Ingest {
				t.Errorf("%s %s: %s", m, p, got)
			}
		}
	}
	if c("GET", "/vastly") != ratelimit.ClassOf("GET", "/vastly") || c("GET", "/ads") != ratelimit.Query {
		t.Error("other routes changed class")
	}
}

// After the first answer built the set, serving allocates nothing: the serve id is made on the stack and the template copied into
// fasthttp's reused body buffer.
func TestServeDoesNotAllocate(t *testing.T) {
	if testenv.RaceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	cat := &fakeCatalog{snapshot(row(1, "active", 1, video), row(2, "active", 2, video))}
	h := newHandler(t, Config{Catalog: cat, PublicURL: testBase})
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/vast")
	ctx.SetUserValue("ad_id", "1")
	h.serveAd(&ctx)
	for _, fn := range []func(*fasthttp.RequestCtx){h.serveAd, h.serveAny} {
		if n := testing.AllocsPerRun(200, func() { ctx.Response.Reset(); fn(&ctx) }); n != 0 {
			t.Errorf("%v allocations per answer", n)
		}
	}
}

func BenchmarkServeAd(b *testing.B) {
	cat := &fakeCatalog{snapshot(row(1, "active", 1, video))}
	h, _ := New(Config{Catalog: cat, PublicURL: testBase})
	var ctx fasthttp.RequestCtx
	ctx.SetUserValue("ad_id", "1")
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		h.serveAd(&ctx)
	}
}

// BenchmarkServeAdGzip is BenchmarkServeAd for a player that accepts gzip, with the compression http.compress puts around the
// VAST routes (server.Options.Compress): the difference is what compressing a tag costs.
func BenchmarkServeAdGzip(b *testing.B) {
	cat := &fakeCatalog{snapshot(row(1, "active", 1, video))}
	h, _ := New(Config{Catalog: cat, PublicURL: testBase})
	serve := httpx.Compress(h.serveAd)
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	ctx.SetUserValue("ad_id", "1")
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		serve(&ctx)
	}
	if string(ctx.Response.Header.ContentEncoding()) != "gzip" {
		b.Fatal("not compressed")
	}
	b.ReportMetric(float64(len(ctx.Response.Body())), "bytes/answer")
}
