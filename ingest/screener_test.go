package ingest

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/enrich"
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/ingest/screen"
	"github.com/adtracker/adtracker/internal/geotest"
	"github.com/adtracker/adtracker/internal/httpx"
)

const (
	iPhone    = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)

// screenedQueue refuses the next refuse events, then stores.
type screenedQueue struct {
	fakeQueue
	refuse int
}

func (q *screenedQueue) Enqueue(e *event.Event) error {
	if q.refuse > 0 {
		q.refuse--
		return errors.New("ingest queue full")
	}
	return q.fakeQueue.Enqueue(e)
}

func newScreenedHandlers(t testing.TB, q Enqueuer, trusted ...string) *router.Router {
	t.Helper()
	geo, err := enrich.OpenGeo(geotest.Countries(t, map[string]string{"203.0.113.0/24": "NZ", "192.0.2.0/24": "US"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = geo.Close() })
	s, err := screen.New(screen.Config{DenyCIDRs: []string{"198.51.100.0/24"}, DenyUserAgents: []string{"badplayer"},
		ClickWindow: 30 * time.Minute, ClickTableBytes: 1 << 16}, enrich.New(geo))
	if err != nil {
		t.Fatal(err)
	}
	p, err := httpx.ParseProxies(trusted)
	if err != nil {
		t.Fatal(err)
	}
	h := &Handlers{
		Decoder: &decode.Decoder{Now: func() time.Time { return hNow }},
		Queue:   q,
		Catalog: fakeCatalog{1: {Accepts: true, TargetURL: "https://example.com/landing"}, 2: {Accepts: true}},
		Proxies: p, IDs: event.NewIDs(), Screen: s,
	}
	r := router.New()
	h.Register(r)
	return r
}

// Every ingest route screens and enriches what it stores; flagged events are stored (answered like any other), never dropped.
func TestHandlersScreenEveryRoute(t *testing.T) {
	q := &screenedQueue{}
	r := newScreenedHandlers(t, q)
	f := func(want event.IVT, status int, method, uri, body string, hdr ...string) {
		t.Helper()
		n := len(q.events)
		rep := do(r, method, uri, "application/json", body, hdr...)
		if rep.status != status || len(q.events) != n+1 {
			t.Fatalf("%s %s: %d %s, %d events stored", method, uri, rep.status, rep.body, len(q.events)-n)
		}
		if got := q.events[n].IVT; got != want {
			t.Errorf("%s %s %q: stored %s, want %s", method, uri, hdr, got, want)
		}
	}
	const none = event.IVTNone
	f(none, 202, "POST", "/ads/impression", `{"ad_id":1}`, "User-Agent", iPhone)
	f(event.IVTCrawler, 202, "POST", "/ads/impression", `{"ad_id":1}`, "User-Agent", googlebot)
	f(event.IVTCrawler, 202, "POST", "/ads/impression", `{"ad_id":1,"user_agent":"python-requests/2.31.0"}`, "User-Agent", iPhone)
	f(event.IVTDenyUserAgent, 202, "POST", "/ads/impression", `{"ad_id":1}`, "User-Agent", "BadPlayer/3 "+iPhone)
	f(event.IVTDenyIP, 202, "POST", "/ads/impression", `{"ad_id":1,"ip":"198.51.100.20"}`, "User-Agent", iPhone)
	f(event.IVTPrefetch, 200, "GET", "/t/impression?ad_id=2", "", "User-Agent", iPhone, "Sec-Purpose", "prefetch;prerender")
	f(event.IVTPrefetch, 200, "GET", "/t/start?ad_id=2", "", "User-Agent", iPhone, "X-Moz", "prefetch")
	f(event.IVTCrawler, 202, "POST", "/events", `[{"type":"midpoint","ad_id":2}]`, "User-Agent", "curl/8.5.0")
	f(event.IVTCrawler, 302, "GET", "/c/1?vid=bot-viewer", "", "User-Agent", googlebot)

	// The stored event carries the enrichment of the viewer.
	do(r, "POST", "/ads/impression", "", `{"ad_id":1,"ip":"203.0.113.9"}`, "User-Agent", iPhone)
	e := q.events[len(q.events)-1]
	if e.Device != event.DeviceMobile || string(e.OSFamily()) != "iOS" || string(e.BrowserFamily()) != "Safari" || string(e.CountryCode()) != "NZ" {
		t.Fatalf("enrichment: device %q os %q browser %q country %q", e.Device, e.OSFamily(), e.BrowserFamily(), e.CountryCode())
	}
}

// The same client clicking the same ad again: the first click counts, the rest are stored as duplicate_click, whichever route
// they come by; the viewer id identifies the client, else address + user agent.
func TestHandlersFlagRepeatedClicks(t *testing.T) {
	q := &screenedQueue{}
	r := newScreenedHandlers(t, q)
	for i, c := range []struct {
		method, uri, body string
		want              event.IVT
	}{
		{"GET", "/c/1?vid=viewer-1", "", event.IVTNone},
		{"GET", "/c/1?vid=viewer-1", "", event.IVTDuplicateClick},
		{"POST", "/ads/click", `{"ad_id":1,"viewer_id":"viewer-1"}`, event.IVTDuplicateClick},
		{"GET", "/t/click?ad_id=1&vid=viewer-1", "", event.IVTDuplicateClick},
		{"POST", "/events", `[{"type":"click","ad_id":1,"viewer_id":"viewer-1"}]`, event.IVTDuplicateClick},
		{"GET", "/c/1?vid=viewer-2", "", event.IVTNone},
		{"POST", "/ads/click", `{"ad_id":2}`, event.IVTNone}, // no viewer id: peer address + user agent
		{"POST", "/ads/click", `{"ad_id":2}`, event.IVTDuplicateClick},
		{"POST", "/ads/click", `{"ad_id":2,"ip":"192.0.2.99"}`, event.IVTNone},
	} {
		do(r, c.method, c.uri, "application/json", c.body, "User-Agent", iPhone)
		if len(q.events) != i+1 {
			t.Fatalf("%d: %d events stored", i, len(q.events))
		}
		if got := q.events[i].IVT; got != c.want {
			t.Errorf("%d %s %s %s: %s, want %s", i, c.method, c.uri, c.body, got, c.want)
		}
	}
}

// A click the queue refuses (503, or a redirect that went on unrecorded) is not remembered, so its retry is the counted click.
func TestHandlersRefusedClickRetryIsNotDuplicate(t *testing.T) {
	q := &screenedQueue{refuse: 1}
	r := newScreenedHandlers(t, q)
	if rep := do(r, "POST", "/ads/click", "", `{"ad_id":1,"viewer_id":"v"}`, "User-Agent", iPhone); rep.status != 503 {
		t.Fatalf("first try: %d %s", rep.status, rep.body)
	}
	if rep := do(r, "POST", "/ads/click", "", `{"ad_id":1,"viewer_id":"v"}`, "User-Agent", iPhone); rep.status != 202 {
		t.Fatalf("retry: %d %s", rep.status, rep.body)
	}
	q.refuse = 1
	if rep := do(r, "GET", "/c/1?vid=w", "", "", "User-Agent", iPhone); rep.status != 302 {
		t.Fatalf("redirect: %d", rep.status)
	}
	do(r, "GET", "/c/1?vid=w", "", "", "User-Agent", iPhone)
	if len(q.events) != 2 || q.events[0].IVT != event.IVTNone || q.events[1].IVT != event.IVTNone {
		t.Fatalf("stored %d events: %v %v", len(q.events), q.events[0].IVT, q.events[len(q.events)-1].IVT)
	}
}

// Behind a trusted proxy the screen sees the forwarded client address, not the proxy's.
func TestHandlersDenyForwardedAddress(t *testing.T) {
	q := &screenedQueue{}
	r := newScreenedHandlers(t, q, "192.0.2.10")
	do(r, "POST", "/ads/impression", "", `{"ad_id":1}`, "User-Agent", iPhone, "X-Forwarded-For", "198.51.100.7")
	do(r, "POST", "/ads/impression", "", `{"ad_id":1}`, "User-Agent", iPhone, "X-Forwarded-For", "203.0.113.7")
	if len(q.events) != 2 || q.events[0].IVT != event.IVTDenyIP || q.events[1].IVT != event.IVTNone || string(q.events[1].CountryCode()) != "NZ" {
		t.Fatalf("stored %+v", q.events)
	}
}

func screenedSingle(t testing.TB) (fasthttp.RequestHandler, *fasthttp.RequestCtx) {
	geo, err := enrich.OpenGeo(geotest.Countries(t, map[string]string{"203.0.113.0/24": "NZ"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = geo.Close() })
	s, err := screen.New(screen.Config{DenyCIDRs: []string{"198.51.100.0/24"}, ClickWindow: time.Hour, ClickTableBytes: 8 << 20}, enrich.New(geo))
	if err != nil {
		t.Fatal(err)
	}
	h := &Handlers{Decoder: &decode.Decoder{Now: func() time.Time { return hNow }}, Queue: nopQueue{}, Catalog: fakeCatalog{1: {Accepts: true}},
		Proxies: &httpx.Proxies{}, IDs: event.NewIDs(), Screen: s}
	ctx := new(fasthttp.RequestCtx)
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/ads/click")
	req.Header.Set("User-Agent", iPhone)
	req.SetBodyString(hSeedBody)
	ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP("192.0.2.10")}, nil)
	return h.single(event.TypeClick), ctx
}

func TestScreenedHandlerAllocs(t *testing.T) {
	handler, ctx := screenedSingle(t)
	handler(ctx) // warm the pools and caches
	if n := testing.AllocsPerRun(1000, func() { ctx.Response.Reset(); handler(ctx) }); n != 0 {
		t.Fatalf("%v allocations per screened event", n)
	}
}

// BenchmarkSingleHandlerScreened is BenchmarkSingleHandler with screening and enrichment on (a click: duplicate table too).
func BenchmarkSingleHandlerScreened(b *testing.B) {
	handler, ctx := screenedSingle(b)
	b.ReportAllocs()
	b.ResetTimer() // the 8 MiB click table is set-up, not per event
	for i := 0; i < b.N; i++ {
		ctx.Response.Reset()
		handler(ctx)
	}
}

// Server-side ad insertion: from a trusted stitcher, X-Device-IP and X-Device-User-Agent are the viewer's, and the screen judges
// the viewer, not the stitcher (whose own user agent is an HTTP library and whose address may be in a data centre).
func TestHandlersScreenSSAIViewer(t *testing.T) {
	q := &screenedQueue{}
	r := newScreenedHandlers(t, q, "192.0.2.10") // do() sends from 192.0.2.10
	stitcher := []string{"User-Agent", "Go-http-client/1.1"}
	f := func(want event.IVT, method, uri, body string, hdr ...string) {
		t.Helper()
		n := len(q.events)
		rep := do(r, method, uri, "application/json", body, append(append([]string{}, stitcher...), hdr...)...)
		if len(q.events) != n+1 {
			t.Fatalf("%s %s: %d %s, nothing stored", method, uri, rep.status, rep.body)
		}
		if got := q.events[n].IVT; got != want {
			t.Errorf("%s %s %q: stored %s, want %s", method, uri, hdr, got, want)
		}
	}
	f(event.IVTNone, "GET", "/t/impression?ad_id=2", "", httpx.HeaderDeviceIP, "203.0.113.50", httpx.HeaderDeviceUserAgent, iPhone)
	f(event.IVTCrawler, "GET", "/t/impression?ad_id=2", "", httpx.HeaderDeviceIP, "203.0.113.50", httpx.HeaderDeviceUserAgent, googlebot)
	f(event.IVTDenyIP, "GET", "/t/impression?ad_id=2", "", httpx.HeaderDeviceIP, "198.51.100.50", httpx.HeaderDeviceUserAgent, iPhone)
	f(event.IVTNone, "POST", "/ads/click", `{"ad_id":1}`, httpx.HeaderDeviceIP, "203.0.113.51", httpx.HeaderDeviceUserAgent, iPhone)
	f(event.IVTDuplicateClick, "GET", "/c/1", "", httpx.HeaderDeviceIP, "203.0.113.51", httpx.HeaderDeviceUserAgent, iPhone)
	f(event.IVTNone, "GET", "/c/1", "", httpx.HeaderDeviceIP, "203.0.113.52", httpx.HeaderDeviceUserAgent, iPhone) // another viewer
	e := q.events[0]
	if e.Device != event.DeviceMobile || string(e.OSFamily()) != "iOS" || string(e.CountryCode()) != "NZ" {
		t.Fatalf("SSAI viewer enrichment: %q %q %q", e.Device, e.OSFamily(), e.CountryCode())
	}
}
