package ingest

import (
	"bytes"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/httpx"
	"github.com/adtracker/adtracker/internal/testenv"
	"github.com/adtracker/adtracker/loadgen"
	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

var update = flag.Bool("update", false, "rewrite golden files")

type fakeQueue struct {
	events []event.Event
	err    error
	room   int // > 0: refuse with err once this many events are queued
}

func (q *fakeQueue) Enqueue(e *event.Event) error {
	if q.err != nil && (q.room == 0 || len(q.events) >= q.room) {
		return q.err
	}
	q.events = append(q.events, *e)
	return nil
}

type fakeCatalog map[uint64]Ad

func (c fakeCatalog) Lookup(id uint64) (Ad, bool) { a, ok := c[id]; return a, ok }

var hNow = time.Date(2025, 4, 21, 15, 0, 30, 0, time.UTC)

func newTestHandlers(q *fakeQueue, trusted ...string) *router.Router {
	p, err := httpx.ParseProxies(trusted)
	if err != nil {
		panic(err)
	}
	h := &Handlers{
		Decoder: &decode.Decoder{Now: func() time.Time { return hNow }},
		Queue:   q,
		Catalog: fakeCatalog{1: {Accepts: true, TargetURL: "https://example.com/landing?x=1"}, 2: {Accepts: true}, 3: {Accepts: false, TargetURL: "https://example.com/old"}},
		Proxies: p,
		IDs:     event.NewIDs(),
	}
	r := router.New()
	h.Register(r)
	return r
}

type reply struct {
	status int
	body   string
	header *fasthttp.ResponseHeader
}

func do(r *router.Router, method, uri, contentType, body string, hdr ...string) reply {
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	if contentType != "" {
		req.Header.SetContentType(contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	req.SetBodyString(body)
	ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 5555}, nil)
	r.Handler(&ctx)
	var h fasthttp.ResponseHeader
	ctx.Response.Header.CopyTo(&h)
	return reply{ctx.Response.StatusCode(), string(ctx.Response.Body()), &h}
}

const hSeedBody = `{"ad_id": 1, "timestamp": "2025-04-21T15:00:00Z", "ip": "203.0.113.1", "video_playback_time": 12}`

func TestSingleEventAccepted(t *testing.T) {
	q := &fakeQueue{}
	r := newTestHandlers(q)
	rep := do(r, "POST", "/ads/click", "application/json", hSeedBody, "User-Agent", "player/1.0")
	if rep.status != 202 || !strings.HasPrefix(rep.body, `{"status":"queued","event_id":"`) {
		t.Fatalf("%d %s", rep.status, rep.body)
	}
	if len(q.events) != 1 {
		t.Fatalf("%d events enqueued", len(q.events))
	}
	e := q.events[0]
	if e.Type != event.TypeClick || e.AdID != 1 || e.EventTime != hNow.Unix()-30 || e.ReceiveTime != hNow.Unix() ||
		e.PlaybackMs != 12000 || e.IPString() != "203.0.113.1" || string(e.UA()) != "player/1.0" || e.ID.IsZero() {
		t.Fatalf("event %+v ip %s", e, e.IPString())
	}
	if !strings.Contains(rep.body, e.ID.String()) {
		t.Fatalf("answer %s does not carry the stored id %s", rep.body, e.ID)
	}
	// A client id is kept and marked for duplicate detection.
	do(r, "POST", "/ads/impression", "", `{"ad_id":2,"event_id":"0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d"}`)
	e = q.events[1]
	if e.Type != event.TypeImpression || e.ID.String() != "0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d" || e.Flags&event.FlagClientID == 0 {
		t.Fatalf("client id event %+v", e)
	}
	// Without an ip in the body the peer address is used.
	if e.IPString() != "192.0.2.10" {
		t.Fatalf("peer ip %s", e.IPString())
	}
}

// Each bad input answers a 4xx JSON error naming the field, and nothing reaches the queue.
func TestBadInputChangesNothing(t *testing.T) {
	f := func(method, uri, body string, status int, want string) {
		t.Helper()
		q := &fakeQueue{}
		rep := do(newTestHandlers(q), method, uri, "application/json", body)
		if rep.status != status || rep.body != want {
			t.Fatalf("%s %s %s: got %d %s, want %d %s", method, uri, body, rep.status, rep.body, status, want)
		}
		if len(q.events) != 0 {
			t.Fatalf("%s %s %s: %d events enqueued", method, uri, body, len(q.events))
		}
		if ct := string(rep.header.ContentType()); ct != httpx.ContentJSON {
			t.Fatalf("content type %q", ct)
		}
	}
	f("POST", "/ads/click", `{"ad_id": 1`, 400, `{"error":"invalid json: unexpected end of input at offset 11","field":"body"}`)
	f("POST", "/ads/click", `{"timestamp":"2025-04-21T15:00:00Z"}`, 400, `{"error":"ad_id is required","field":"ad_id"}`)
	f("POST", "/ads/click", `{"ad_id":0}`, 400, `{"error":"ad_id must be a positive integer","field":"ad_id"}`)
	f("POST", "/ads/click", `{"ad_id":-4}`, 400, `{"error":"ad_id must be a positive integer","field":"ad_id"}`)
	f("POST", "/ads/click", `{"ad_id":1,"video_playback_time":-1}`, 400, `{"error":"video_playback_time must not be negative","field":"video_playback_time"}`)
	f("POST", "/ads/click", `{"ad_id":1,"event_id":"nope"}`, 400, `{"error":"event_id must be a uuid","field":"event_id"}`)
	f("POST", "/ads/click", `{"ad_id":1,"ip":"300.1.1.1"}`, 400, `{"error":"ip must be an ipv4 or ipv6 address","field":"ip"}`)
	f("POST", "/ads/click", `{"ad_id":1,"timestamp":"2025-04-21T16:00:00Z"}`, 400, `{"error":"timestamp is too far in the future","field":"timestamp"}`)
	f("POST", "/ads/click", `{"ad_id":1,"timestamp":"2025-01-01T00:00:00Z"}`, 400, `{"error":"timestamp is too old","field":"timestamp"}`)
	f("POST", "/ads/click", `{"ad_id":99}`, 422, `{"error":"unknown ad_id","field":"ad_id"}`)
	f("POST", "/ads/click", `{"ad_id":3}`, 422, `{"error":"ad is archived","field":"ad_id"}`)
	f("POST", "/events", `[{"type":"bogus","ad_id":1}]`, 400, `{"error":"no valid event in batch","accepted":0,"rejected":1,"errors_omitted":0,"errors":[{"index":0,"error":"type is not a known event type","field":"type"}]}`)
	f("POST", "/events", `[]`, 400, `{"error":"batch has no events","field":"body"}`)
	f("POST", "/events", `{"type":"start"}`, 400, `{"error":"body must be a json array","field":"body"}`)
	f("GET", "/t/sideways?ad_id=1", "", 400, `{"error":"unknown event in path","field":"event"}`)
	f("GET", "/t/start?ad_id=x", "", 400, `{"error":"ad_id must be a positive integer","field":"ad_id"}`)
	f("GET", "/t/start?ad_id=1&pt=-5", "", 400, `{"error":"pt must be seconds or hh:mm:ss.mmm","field":"pt"}`)
	f("GET", "/c/99", "", 404, `{"error":"unknown ad","field":"id"}`)
	f("GET", "/c/3", "", 404, `{"error":"unknown ad","field":"id"}`)
	f("GET", "/ads/click", "", 405, `{"error":"method not allowed; use POST"}`)
}

// A batch is NDJSON when its Content-Type says so, or when it comes as text/plain or untyped and starts with an object (what
// navigator.sendBeacon sends for a string); application/json is an array, and a lone object there is refused as before.
func TestBatchFormatFromTypeAndBody(t *testing.T) {
	const ndjson = "{\"type\":\"start\",\"ad_id\":1}\n{\"type\":\"complete\",\"ad_id\":1}\n"
	const array = `[{"type":"start","ad_id":1},{"type":"complete","ad_id":1}]`
	for _, c := range []struct {
		contentType, body string
		status            int
		want              string
	}{
		{"application/x-ndjson", ndjson, 202, `"accepted":2`},
		{"text/plain;charset=UTF-8", ndjson, 202, `"accepted":2`}, // sendBeacon(url, string)
		{"Text/Plain", "\xef\xbb\xbf \r\n" + ndjson, 202, `"accepted":2`},
		{"", ndjson, 202, `"accepted":2`},
		{"text/plain;charset=UTF-8", array, 202, `"accepted":2`},
		{"application/json", array, 202, `"accepted":2`},
		{"", array, 202, `"accepted":2`},
		{"application/json", ndjson, 400, `"body must be a json array"`},
		{"application/json", `{"type":"start","ad_id":1}`, 400, `"body must be a json array"`},
		{"text/plain", "{\"type\":\"start\",\"ad_id\":1}\nnot json\n", 202, `"accepted":1,"rejected":1`},
		{"text/plain", `"x"`, 400, `"body must be a json array"`},
	} {
		q := &fakeQueue{}
		rep := do(newTestHandlers(q), "POST", "/events", c.contentType, c.body)
		if rep.status != c.status || !strings.Contains(rep.body, c.want) {
			t.Errorf("Content-Type %q, body %q: %d %s; want %d with %s", c.contentType, c.body, rep.status, rep.body, c.status, c.want)
		}
	}
}

func TestBatchPartialAcceptance(t *testing.T) {
	q := &fakeQueue{}
	r := newTestHandlers(q)
	body := `[{"type":"start","ad_id":1},{"type":"midpoint","ad_id":99},{"type":"complete","ad_id":2,"video_playback_time":30}]`
	rep := do(r, "POST", "/events", "application/json", body)
	golden(t, "batch_partial.json", rep.status, rep.body)
	if len(q.events) != 2 || q.events[0].Type != event.TypeStart || q.events[1].Type != event.TypeComplete || q.events[1].PlaybackMs != 30000 {
		t.Fatalf("enqueued %+v", q.events)
	}
	nd := "{\"type\":\"firstQuartile\",\"ad_id\":1}\n\n{\"type\":\"click\",\"ad_id\":2}\n"
	rep = do(r, "POST", "/events", "application/x-ndjson", nd)
	if rep.status != 202 || rep.body != `{"accepted":2,"rejected":0,"errors_omitted":0,"errors":[]}` || len(q.events) != 4 {
		t.Fatalf("ndjson: %d %s (%d events)", rep.status, rep.body, len(q.events))
	}
}

func TestOverloadAnswers503WithRetryAfter(t *testing.T) {
	q := &fakeQueue{err: errors.New("ingest queue full")}
	r := newTestHandlers(q)
	rep := do(r, "POST", "/ads/impression", "", `{"ad_id":1}`)
	if rep.status != 503 || string(rep.header.Peek("Retry-After")) == "" || rep.body != `{"error":"ingest queue full"}` {
		t.Fatalf("%d %s retry-after=%q", rep.status, rep.body, rep.header.Peek("Retry-After"))
	}
	rep = do(r, "POST", "/events", "", `[{"type":"start","ad_id":1},{"type":"start","ad_id":2}]`)
	golden(t, "batch_overload.json", rep.status, rep.body)
	// A click redirect still sends the user on, and counts the miss.
	rep = do(r, "GET", "/c/1", "", "")
	if rep.status != 302 || string(rep.header.Peek("Location")) != "https://example.com/landing?x=1" {
		t.Fatalf("redirect under overload: %d %q", rep.status, rep.header.Peek("Location"))
	}
}

// A batch the queue refuses part-way: the items before the refusal are accepted, the answer names the first item to resend, the
// overload metric counts that one and every item after it, and the items after it are neither decoded nor judged (the invalid
// last item is not reported: the client resends it and hears about it then).
func TestBatchRefusedPartWay(t *testing.T) {
	q := &fakeQueue{err: errors.New("ingest queue full"), room: 2}
	r := newTestHandlers(q)
	before := testenv.CounterValue(t, rejected[reasonOverload])
	rep := do(r, "POST", "/events", "", `[{"type":"start","ad_id":1},{"type":"start","ad_id":2},
		{"type":"start","ad_id":1},{"type":"start","ad_id":2},{"type":"start","ad_id":0}]`)
	if rep.status != 503 || rep.body != `{"error":"ingest queue full","retry_from_index":2,"accepted":2,"rejected":0,"errors_omitted":0,"errors":[]}` {
		t.Fatalf("%d %s", rep.status, rep.body)
	}
	if got := testenv.CounterValue(t, rejected[reasonOverload]) - before; got != 3 || len(q.events) != 2 {
		t.Fatalf("overload metric +%v, queued %d; want +3, 2", got, len(q.events))
	}
	q.room, q.events = 1, nil
	before = testenv.CounterValue(t, rejected[reasonOverload])
	rep = do(r, "POST", "/events", "application/x-ndjson", "{\"type\":\"start\",\"ad_id\":1}\n\n{\"type\":\"start\",\"ad_id\":2}\n{\"type\":\"start\"}\n")
	if rep.status != 503 || !strings.Contains(rep.body, `"retry_from_index":1,"accepted":1,"rejected":0`) ||
		testenv.CounterValue(t, rejected[reasonOverload])-before != 2 {
		t.Fatalf("ndjson: %d %s", rep.status, rep.body)
	}
}

func TestPixel(t *testing.T) {
	q := &fakeQueue{}
	r := newTestHandlers(q)
	rep := do(r, "GET", "/t/thirdQuartile?ad_id=2&t=2025-04-21T15:00:10.500Z&pt=00:00:22.500&vid=viewer-9&cb=12345678", "", "")
	if rep.status != 200 || !bytes.Equal([]byte(rep.body), gif) || string(rep.header.ContentType()) != "image/gif" ||
		!strings.Contains(string(rep.header.Peek("Cache-Control")), "no-store") {
		t.Fatalf("%d %q", rep.status, rep.body)
	}
	e := q.events[0]
	if e.Type != event.TypeThirdQuartile || e.AdID != 2 || e.PlaybackMs != 22500 || string(e.ViewerID()) != "viewer-9" || e.EventTime != hNow.Unix()-20 {
		t.Fatalf("pixel event %+v", e)
	}
}

func TestClickRedirectRecordsOneClick(t *testing.T) {
	q := &fakeQueue{}
	r := newTestHandlers(q)
	rep := do(r, "GET", "/c/1?vid=v1", "", "")
	if rep.status != 302 || string(rep.header.Peek("Location")) != "https://example.com/landing?x=1" {
		t.Fatalf("%d %q", rep.status, rep.header.Peek("Location"))
	}
	if len(q.events) != 1 || q.events[0].Type != event.TypeClick || q.events[0].AdID != 1 || string(q.events[0].ViewerID()) != "v1" {
		t.Fatalf("recorded %+v", q.events)
	}
}

func TestClientIPFromTrustedProxy(t *testing.T) {
	f := func(trusted []string, xff, want string) {
		t.Helper()
		q := &fakeQueue{}
		r := newTestHandlers(q, trusted...)
		do(r, "POST", "/ads/impression", "", `{"ad_id":1}`, "X-Forwarded-For", xff)
		if got := q.events[0].IPString(); got != want {
			t.Fatalf("trusted %v, XFF %q: ip %s, want %s", trusted, xff, got, want)
		}
	}
	f(nil, "198.51.100.7", "192.0.2.10")                                                // peer not trusted: header ignored
	f([]string{"192.0.2.0/24"}, "198.51.100.7", "198.51.100.7")                         // trusted peer
	f([]string{"192.0.2.0/24"}, "6.6.6.6, 198.51.100.7", "198.51.100.7")                // right-most untrusted wins over a forged left entry
	f([]string{"192.0.2.0/24", "10.0.0.0/8"}, "198.51.100.7, 10.1.2.3", "198.51.100.7") // chained trusted proxies are skipped
	f([]string{"192.0.2.10"}, "2001:db8::1", "2001:db8::1")
	f([]string{"192.0.2.10"}, "garbage", "192.0.2.10")
	if _, err := httpx.ParseProxies([]string{"not-an-ip"}); err == nil {
		t.Fatal("bad proxy accepted")
	}
}

func TestSingleHandlerAllocs(t *testing.T) {
	r := newTestHandlers(&fakeQueue{})
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/ads/click")
	req.SetBodyString(hSeedBody)
	ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP("192.0.2.10")}, nil)
	h := &Handlers{Decoder: &decode.Decoder{Now: func() time.Time { return hNow }}, Queue: nopQueue{}, Catalog: fakeCatalog{1: {Accepts: true}},
		Proxies: &httpx.Proxies{}, IDs: event.NewIDs()}
	handler := h.single(event.TypeClick)
	handler(&ctx) // warm the pools
	_ = r
	allocs := testing.AllocsPerRun(1000, func() {
		ctx.Response.Reset()
		handler(&ctx)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per accepted event", allocs)
	}
}

type nopQueue struct{}

func (nopQueue) Enqueue(*event.Event) error { return nil }

func BenchmarkSingleHandler(b *testing.B) {
	h := &Handlers{Decoder: &decode.Decoder{Now: func() time.Time { return hNow }}, Queue: nopQueue{}, Catalog: fakeCatalog{1: {Accepts: true}},
		Proxies: &httpx.Proxies{}, IDs: event.NewIDs()}
	handler := h.single(event.TypeClick)
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/ads/click")
	req.SetBodyString(hSeedBody)
	ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP("192.0.2.10")}, nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ctx.Response.Reset()
		handler(&ctx)
	}
}

// BenchmarkPixelHandler is a VAST tracking pixel as the load generator fires it (loadgen.AppendPixel): the handler of the event's
// static route, the query, the GIF answer.
func BenchmarkPixelHandler(b *testing.B) {
	h := &Handlers{Decoder: &decode.Decoder{Now: func() time.Time { return hNow }}, Queue: nopQueue{}, Catalog: fakeCatalog{1: {Accepts: true}},
		Proxies: &httpx.Proxies{}, IDs: event.NewIDs()}
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	req.Header.SetMethod("GET")
	req.SetRequestURI("/t/firstQuartile?ad_id=1&t=2025-04-21T15:00:10.500Z&pt=7.500&vid=v0123456789abcdef&sid=s0123456789abcdef" +
		"&eid=0190d0b4-7a1c-7cc1-8a3e-5f0e6a7b8c9d&cb=12345678")
	ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP("192.0.2.10")}, nil)
	pixel := h.pixelOf(event.TypeFirstQuartile) // what GET /t/firstQuartile runs
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ctx.Response.Reset()
		pixel(&ctx)
		if ctx.Response.StatusCode() != fasthttp.StatusOK {
			b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

func golden(t *testing.T, name string, status int, body string) {
	t.Helper()
	got := []byte(strings.TrimSpace(string(rune('0'+status/100))+string(rune('0'+status/10%10))+string(rune('0'+status%10))+" "+body) + "\n")
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./ingest -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s:\n got %s\nwant %s", name, got, want)
	}
}

// Two lines through the handler: the stored address is the one the proxy vouched for.
func TestForgedFirstForwardedLineNotStored(t *testing.T) {
	q := &fakeQueue{}
	r := newTestHandlers(q, "192.0.2.10")
	rep := do(r, "POST", "/ads/impression", "", `{"ad_id":1}`, "X-Forwarded-For", "6.6.6.6", "X-Forwarded-For", "203.0.113.77")
	if rep.status != 202 || len(q.events) != 1 || q.events[0].IPString() != "203.0.113.77" {
		t.Fatalf("%d %s: stored %v", rep.status, rep.body, q.events)
	}
}

// BenchmarkBatchHandler is a batch of 1,000 as the load generator sends it (loadgen.AppendBatch, NDJSON): every item carries its
// own event_id and address and leaves the user agent to the request's header, which a browser SDK's batches do too. ns/op is
// per batch.
func BenchmarkBatchHandler(b *testing.B) {
	h := &Handlers{Decoder: &decode.Decoder{Now: func() time.Time { return hNow }}, Queue: nopQueue{}, Catalog: fakeCatalog{1: {Accepts: true}},
		Proxies: &httpx.Proxies{}, IDs: event.NewIDs()}
	evs := make([]loadgen.Event, 1000)
	tr := loadgen.NewTraffic(loadgen.TrafficConfig{Ads: []uint64{1}}, loadgen.NewIDs([6]byte{1}, 0))
	for i := range evs {
		tr.Next(&evs[i])
	}
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/events")
	req.Header.SetContentType("application/x-ndjson")
	req.Header.SetUserAgent(evs[0].UserAgent())
	req.SetBody(loadgen.AppendBatch(nil, evs, true, []byte(hNow.Format(time.RFC3339Nano))))
	ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP("192.0.2.10")}, nil)
	h.batch(&ctx)
	if ctx.Response.StatusCode() != fasthttp.StatusAccepted {
		b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx.Response.Reset()
		h.batch(&ctx)
	}
}

// Through a real fasthttp server, which reads the clock before calling the handlers: the handlers give that time to the decoder
// (stampReceived) instead of letting it read the clock again, and what is stored is that second, on every route that decodes
// and on the click redirect. Each request waits 1.1 s between fasthttp's clock read and the handler, so a handler or decoder
// that read the clock itself would store a later second.
func TestServedRequestsKeepTheirReceiveTime(t *testing.T) {
	q := &fakeQueue{}
	h := &Handlers{Decoder: &decode.Decoder{}, Queue: q, Catalog: fakeCatalog{1: {Accepts: true, TargetURL: "https://example.com/"}},
		Proxies: &httpx.Proxies{}, IDs: event.NewIDs()} // the decoder's clock is not pinned: the request's time is what counts
	r := router.New()
	h.Register(r)
	var served []int64 // the second fasthttp read for each request
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		served = append(served, ctx.Time().Unix())
		time.Sleep(1100 * time.Millisecond)
		r.Handler(ctx)
	}}
	go func() { _ = srv.Serve(ln) }() // returns at Shutdown
	defer func() { _ = srv.Shutdown() }()
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	hourAgoT := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	hourAgo := hourAgoT.Format(time.RFC3339)
	before := time.Now().Unix()
	for _, r := range []struct{ method, uri, ctype, body string }{
		{"POST", "/ads/impression", "application/json", `{"ad_id":1,"timestamp":"` + hourAgo + `"}`},
		{"GET", "/t/start?ad_id=1&t=" + hourAgo, "", ""},
		{"POST", "/events", "application/x-ndjson", `{"type":"complete","ad_id":1,"timestamp":"` + hourAgo + `"}` + "\n"},
		{"GET", "/c/1", "", ""},
	} {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.Header.SetMethod(r.method)
		req.SetRequestURI("http://adtracker" + r.uri)
		if r.ctype != "" {
			req.Header.SetContentType(r.ctype)
		}
		req.SetBodyString(r.body)
		if err := c.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() >= 400 {
			t.Fatalf("%s %s: %d %s", r.method, r.uri, resp.StatusCode(), resp.Body())
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	if len(q.events) != 4 || len(served) != 4 {
		t.Fatalf("%d events stored, %d requests served", len(q.events), len(served))
	}
	for i, e := range q.events {
		wantEvent := hourAgoT.Unix()
		if i == 3 {
			wantEvent = e.ReceiveTime // the click is now
		}
		if e.ReceiveTime != served[i] || e.ReceiveTime < before || e.EventTime != wantEvent {
			t.Errorf("event %d: receive %d, event %d; want receive %d (the served second, not before %d) and event %d", i,
				e.ReceiveTime, e.EventTime, served[i], before, wantEvent)
		}
	}
}

// waitingQueue is a fakeQueue that can wait: it records the deadlines it is given.
type waitingQueue struct {
	fakeQueue
	deadlines []time.Time
}

func (q *waitingQueue) EnqueueBy(e *event.Event, deadline time.Time) error {
	q.deadlines = append(q.deadlines, deadline)
	return q.Enqueue(e)
}

// With EnqueueWait set, a queue that can wait gets one deadline per request — EnqueueWait after the request arrived — for every
// item of a batch alike, so a request waits EnqueueWait at most in all; with it 0 the queue is not asked to wait.
func TestEnqueueWaitDeadlinePerRequest(t *testing.T) {
	for _, wait := range []time.Duration{0, 250 * time.Millisecond} {
		q := &waitingQueue{}
		h := &Handlers{Decoder: &decode.Decoder{Now: func() time.Time { return hNow }}, Queue: q,
			Catalog: fakeCatalog{1: {Accepts: true}}, Proxies: &httpx.Proxies{}, IDs: event.NewIDs(), EnqueueWait: wait}
		r := router.New()
		h.Register(r)
		// Served for real: the request's time is fasthttp's, which a bare RequestCtx does not have.
		ln := fasthttputil.NewInmemoryListener()
		srv := &fasthttp.Server{Handler: r.Handler}
		go func() { _ = srv.Serve(ln) }() // returns at Shutdown
		c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.Header.SetMethod("POST")
		req.SetRequestURI("http://adtracker/events")
		req.Header.SetContentType("application/x-ndjson")
		item := `{"type":"start","ad_id":1,"timestamp":"2025-04-21T15:00:00Z"}` + "\n"
		req.SetBodyString(item + item + item)
		before := time.Now()
		if err := c.Do(req, resp); err != nil || resp.StatusCode() != fasthttp.StatusAccepted {
			t.Fatalf("wait %v: %v %d %s", wait, err, resp.StatusCode(), resp.Body())
		}
		after := time.Now()
		_ = srv.Shutdown()
		if len(q.events) != 3 {
			t.Fatalf("wait %v: %d events queued", wait, len(q.events))
		}
		if wait == 0 {
			if len(q.deadlines) != 0 {
				t.Fatalf("asked to wait with EnqueueWait 0: %v", q.deadlines)
			}
			continue
		}
		if len(q.deadlines) != 3 {
			t.Fatalf("%d deadlines for 3 items", len(q.deadlines))
		}
		for _, d := range q.deadlines {
			if !d.Equal(q.deadlines[0]) || d.Before(before.Add(wait).Truncate(time.Second)) || d.After(after.Add(wait)) {
				t.Fatalf("deadlines %v, want one deadline %v after the request (between %v and %v)", q.deadlines, wait, before, after)
			}
		}
	}
}

// Every event type has a static pixel route in each spelling, so a pixel's path parameter costs the router nothing: with only
// /t/{event}, the router turned the name into a string and an interface among the request's user values on every request (three
// allocations). Names nothing tracks still reach /t/{event} and its 400.
func TestPixelStaticRoutes(t *testing.T) {
	q := &fakeQueue{}
	r := newTestHandlers(q)
	for _, typ := range event.Types() {
		for _, name := range []string{typ.String(), typ.VASTName()} {
			rep := do(r, "GET", "/t/"+name+"?ad_id=1&po=5", "", "")
			if rep.status != fasthttp.StatusOK || len(q.events) == 0 || q.events[len(q.events)-1].Type != typ {
				t.Fatalf("GET /t/%s: %d %s, %d events queued, want one of type %v", name, rep.status, rep.body, len(q.events), typ)
			}
			q.events = q.events[:0]
		}
	}
	if rep := do(r, "GET", "/t/firstquartile?ad_id=1", "", ""); rep.status != fasthttp.StatusBadRequest || len(q.events) != 0 {
		t.Fatalf("GET /t/firstquartile: %d %s, %d events queued; want 400 and nothing queued", rep.status, rep.body, len(q.events))
	}

	h := &Handlers{Decoder: &decode.Decoder{Now: func() time.Time { return hNow }}, Queue: nopQueue{}, Catalog: fakeCatalog{1: {Accepts: true}},
		Proxies: &httpx.Proxies{}, IDs: event.NewIDs()}
	rt := router.New()
	h.Register(rt)
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	req.Header.SetMethod("GET")
	req.SetRequestURI("/t/firstQuartile?ad_id=1&t=2025-04-21T15:00:10.500Z&pt=7.500&vid=v0123456789abcdef&cb=12345678")
	ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP("192.0.2.10")}, nil)
	allocs := testing.AllocsPerRun(200, func() {
		ctx.Response.Reset()
		ctx.ResetUserValues()
		rt.Handler(&ctx)
	})
	if ctx.Response.StatusCode() != fasthttp.StatusOK || allocs >= 1 {
		t.Fatalf("GET /t/firstQuartile through the router: %d, %.1f allocations a request; want 200 and none", ctx.Response.StatusCode(), allocs)
	}
}

// The static pixel routes are counted under /t/{event}, as when it was the only pixel route; every other route keeps its pattern.
func TestRouteLabel(t *testing.T) {
	for _, c := range []struct{ method, pattern, want string }{
		{"GET", "/t/impression", PixelRoute},
		{"GET", "/t/first_quartile", PixelRoute},
		{"GET", "/t/firstQuartile", PixelRoute},
		{"GET", PixelRoute, PixelRoute},
		{"GET", "/t/firstquartile", "/t/firstquartile"},
		{"POST", "/t/impression", "/t/impression"},
		{"POST", "/ads/impression", "/ads/impression"},
		{"GET", "/c/{id}", "/c/{id}"},
	} {
		if got := RouteLabel(c.method, c.pattern); got != c.want {
			t.Errorf("RouteLabel(%s, %s) = %s, want %s", c.method, c.pattern, got, c.want)
		}
	}
}
