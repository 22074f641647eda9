package loadgen

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/noop"
	"github.com/adtracker/adtracker/internal/testenv"
)

// fakeIngest decodes requests with the real decoder, like adtracker's handlers, and remembers every event id it accepted.
type fakeIngest struct {
	mu       sync.Mutex
	ids      map[event.UUID]event.Type
	xff      map[string]bool
	bad      []string
	answer   func(ctx *fasthttp.RequestCtx, n int) bool // optional override; true when it answered
	batches  [][]event.UUID                             // ids of each /events request, in body order
	requests atomic.Int64
}

func (f *fakeIngest) handle(ctx *fasthttp.RequestCtx) {
	f.requests.Add(1)
	d := &decode.Decoder{}
	var got []event.Event
	fail := func(msg string) {
		f.mu.Lock()
		f.bad = append(f.bad, msg)
		f.mu.Unlock()
		ctx.SetStatusCode(400)
	}
	path := string(ctx.Path())
	switch {
	case path == "/healthz":
		return
	case path == "/ads/impression" || path == "/ads/click":
		typ := event.TypeImpression
		if path == "/ads/click" {
			typ = event.TypeClick
		}
		var e event.Event
		if ferr := d.DecodeJSON(ctx.PostBody(), typ, &e); ferr != nil {
			fail(ferr.Msg)
			return
		}
		got = append(got, e)
	case path == "/events":
		ndjson := bytes.HasPrefix(ctx.Request.Header.ContentType(), []byte("application/x-ndjson"))
		top := d.DecodeBatch(ctx.PostBody(), ndjson, &event.Event{}, func(i int, e *event.Event, ferr *decode.FieldError) {
			if ferr != nil {
				fail(ferr.Msg)
				return
			}
			got = append(got, *e)
		})
		if top != nil {
			fail(top.Msg)
			return
		}
	case strings.HasPrefix(path, "/t/"):
		var e event.Event
		if ferr := d.DecodePixel(ctx.URI().QueryString(), event.ParseType([]byte(path[3:])), &e); ferr != nil {
			fail(ferr.Msg)
			return
		}
		got = append(got, e)
		f.mu.Lock()
		f.xff[string(ctx.Request.Header.Peek("X-Forwarded-For"))] = true
		f.mu.Unlock()
	default:
		ctx.SetStatusCode(404)
		return
	}
	if path == "/events" {
		ids := make([]event.UUID, len(got))
		for i := range got {
			ids[i] = got[i].ID
		}
		f.mu.Lock()
		f.batches = append(f.batches, ids)
		f.mu.Unlock()
	}
	if f.answer != nil && f.answer(ctx, len(got)) {
		return
	}
	f.mu.Lock()
	for _, e := range got {
		if _, dup := f.ids[e.ID]; dup {
			f.bad = append(f.bad, "duplicate id "+e.ID.String())
		}
		f.ids[e.ID] = e.Type
	}
	f.mu.Unlock()
	ctx.SetStatusCode(202)
	if path == "/events" {
		ctx.SetBodyString(`{"accepted":` + strconv.Itoa(len(got)) + `,"rejected":0,"errors":[]}`)
	}
}

func startServer(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }() // returns only at Shutdown, which the cleanup calls
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

func newFake() *fakeIngest {
	return &fakeIngest{ids: map[event.UUID]event.Type{}, xff: map[string]bool{}}
}

func TestRunEveryModeDeliversDecodableEvents(t *testing.T) {
	f := func(mode Mode, batch int, ndjson bool, count int64) {
		t.Helper()
		fake := newFake()
		url := startServer(t, fake.handle)
		res, err := Run(context.Background(), Config{
			URL: url, Mode: mode, Batch: batch, NDJSON: ndjson, Conns: 8, Count: count,
			Traffic: TrafficConfig{Ads: []uint64{5, 6, 7}, Seed: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(fake.bad) > 0 {
			t.Fatalf("%s: server rejected: %v", mode, fake.bad[:min(3, len(fake.bad))])
		}
		if res.Events < uint64(count) || res.Events >= uint64(count)+uint64(max(batch, 1)) {
			t.Fatalf("%s: sent %d events for --count %d", mode, res.Events, count)
		}
		if res.Acked != res.Events || uint64(len(fake.ids)) != res.Acked || res.Refused+res.Unknown+res.NetErrors != 0 {
			t.Fatalf("%s: acked %d of %d, server stored %d, refused %d unknown %d", mode, res.Acked, res.Events, len(fake.ids),
				res.Refused, res.Unknown)
		}
		for id, typ := range fake.ids {
			if !strings.HasPrefix(id.String(), res.Prefix) {
				t.Fatalf("%s: id %s lacks the run prefix %s", mode, id, res.Prefix)
			}
			if mode == ModeSingle && typ != event.TypeImpression && typ != event.TypeClick {
				t.Fatalf("single mode sent a %s", typ)
			}
		}
		if res.Latency.Count() != res.Requests || res.Status[202] != res.Requests {
			t.Fatalf("%s: %d latencies and %v statuses for %d requests", mode, res.Latency.Count(), res.Status, res.Requests)
		}
		if mode == ModePixel && len(fake.xff) < 100 {
			t.Fatalf("pixel: only %d distinct X-Forwarded-For addresses", len(fake.xff))
		}
	}
	f(ModeSingle, 0, false, 2000)
	f(ModePixel, 0, false, 2000)
	f(ModeBatch, 100, true, 5000)
	f(ModeBatch, 37, false, 1000)
}

// A 503 to a batch says from which item on nothing was stored; the loader books the items before it as acked and the rest as
// refused, and hands the refused ids to the verifier.
func TestBatchPartialRefusal(t *testing.T) {
	fake := newFake()
	fake.answer = func(ctx *fasthttp.RequestCtx, n int) bool {
		ctx.SetStatusCode(503)
		ctx.SetBodyString(`{"error":"ingest queue full","retry_from_index":30,"accepted":30,"rejected":0,"errors":[]}`)
		return true
	}
	url := startServer(t, fake.handle)
	res, err := Run(context.Background(), Config{URL: url, Mode: ModeBatch, Batch: 100, NDJSON: true, Conns: 2, Count: 1000,
		Traffic: TrafficConfig{Ads: []uint64{1}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Acked != 300 || res.Refused != 700 || CountIDs(res.RefusedIDs) != 700 || res.Status[503] != 10 {
		t.Fatalf("acked %d refused %d (%d ids) statuses %v; want 300, 700, 10×503", res.Acked, res.Refused, CountIDs(res.RefusedIDs), res.Status)
	}
	// The refused ids are exactly the ones the server saw at index 30 and later.
	refused := map[event.UUID]bool{}
	for _, r := range res.RefusedIDs {
		r.Each(func(u event.UUID) { refused[u] = true })
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(refused) != 700 || len(fake.batches) != 10 {
		t.Fatalf("%d distinct refused ids, %d batches seen", len(refused), len(fake.batches))
	}
	for _, b := range fake.batches {
		for i, id := range b {
			if refused[id] != (i >= 30) {
				t.Fatalf("item %d of a batch: refused=%v", i, refused[id])
			}
		}
	}
}

// A server that stops answering leaves the events unknown (maybe stored), never acked.
func TestUnansweredAreUnknown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close() // accept and hang up
		}
	}()
	res, err := Run(context.Background(), Config{URL: "http://" + ln.Addr().String(), Mode: ModeSingle, Conns: 2, Count: 20,
		Timeout: time.Second, Traffic: TrafficConfig{Ads: []uint64{1}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Acked != 0 || res.Unknown != 20 || res.NetErrors != 20 || CountIDs(res.UnknownIDs) != 20 {
		t.Fatalf("acked %d unknown %d net errors %d ids %d; want 0 20 20 20", res.Acked, res.Unknown, res.NetErrors, CountIDs(res.UnknownIDs))
	}
}

// Open loop: latency counts from the scheduled send, so it is never below the service time, and the run takes its schedule.
func TestOpenLoopLatencyIncludesSchedule(t *testing.T) {
	fake := newFake()
	url := startServer(t, fake.handle)
	res, err := Run(context.Background(), Config{URL: url, Mode: ModeSingle, Conns: 4, Count: 200, Rate: 1000,
		Traffic: TrafficConfig{Ads: []uint64{1}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 200 || res.Latency.Percentile(50) < res.Service.Percentile(50) || res.Latency.Max() < res.Service.Max() {
		t.Fatalf("requests %d, latency p50 %d max %d vs service p50 %d max %d", res.Requests, res.Latency.Percentile(50),
			res.Latency.Max(), res.Service.Percentile(50), res.Service.Max())
	}
	// The 200th request is scheduled 199 ms after the first: the run cannot be shorter.
	if res.Elapsed < 199*time.Millisecond {
		t.Fatalf("200 requests at 1000/s took %v", res.Elapsed)
	}
	s := res.Summary()
	if s.Service == nil || s.TargetRate != 1000 {
		t.Fatalf("summary %+v lacks open-loop fields", s)
	}
}

// Closed loop honours Retry-After after a 503, up to Backoff: with a 1-hour Retry-After and a 30 ms cap, two connections that each
// get a 503 on every request send their requests 30 ms apart, not back to back and not an hour apart.
func TestBackoffAfter503(t *testing.T) {
	fake := newFake()
	fake.answer = func(ctx *fasthttp.RequestCtx, n int) bool {
		ctx.Response.Header.Set("Retry-After", "3600")
		ctx.SetStatusCode(503)
		return true
	}
	url := startServer(t, fake.handle)
	res, err := Run(context.Background(), Config{URL: url, Mode: ModeSingle, Conns: 2, Count: 10, Backoff: 30 * time.Millisecond,
		Traffic: TrafficConfig{Ads: []uint64{1}}})
	if err != nil {
		t.Fatal(err)
	}
	// 5 requests per connection, 4 waits of 30 ms between them (the last wait comes after the last request).
	if res.Status[503] != 10 || res.Elapsed < 120*time.Millisecond || res.Elapsed > time.Minute {
		t.Fatalf("statuses %v in %v", res.Status, res.Elapsed)
	}
}

func TestIDRanges(t *testing.T) {
	g := NewIDs([6]byte{9, 9, 9, 9, 9, 9}, 3)
	evs := make([]Event, 10)
	for i := range evs {
		evs[i].ID = g.Next()
	}
	var rs []IDRange
	rs = appendRange(rs, evs[:4])
	rs = appendRange(rs, evs[4:6]) // continues the first range
	rs = appendRange(rs, evs[7:])  // a gap: a new range
	if len(rs) != 2 || CountIDs(rs) != 9 {
		t.Fatalf("ranges %+v", rs)
	}
	var got []event.UUID
	for _, r := range rs {
		r.Each(func(u event.UUID) { got = append(got, u) })
	}
	want := append(append([]Event{}, evs[:6]...), evs[7:]...)
	for i := range want {
		if got[i] != want[i].ID {
			t.Fatalf("id %d: %s, want %s", i, got[i], want[i].ID)
		}
	}
	if r := RangeOf(evs[5].ID); r.Len() != 1 || r.From != 6 {
		t.Fatalf("RangeOf: %+v", r)
	}
}

func TestGetModeRotatesPaths(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	url := startServer(t, func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		seen[string(ctx.RequestURI())+" "+string(ctx.Request.Header.Peek("Accept-Encoding"))]++
		mu.Unlock()
	})
	res, err := Run(context.Background(), Config{URL: url, Mode: ModeGet, Conns: 1, Count: 10, Paths: []string{"/a?x=1", "/b"}})
	if err != nil {
		t.Fatal(err)
	}
	if seen["/a?x=1 "] != 5 || seen["/b "] != 5 || res.Events != 0 || res.Status[200] != 10 {
		t.Fatalf("seen %v, events %d, status %v", seen, res.Events, res.Status)
	}
	// As a player asks for its VAST tag: every request carries the Accept-Encoding given.
	clear(seen)
	if _, err := Run(context.Background(), Config{URL: url, Mode: ModeGet, Conns: 2, Count: 6, Paths: []string{"/vast/1"}, AcceptEncoding: "gzip"}); err != nil {
		t.Fatal(err)
	}
	delete(seen, "/healthz ") // the run's check that the server is up
	if seen["/vast/1 gzip"] != 6 || len(seen) != 1 {
		t.Fatalf("seen %v", seen)
	}
}

func TestConfigErrors(t *testing.T) {
	f := func(c Config, want string) {
		t.Helper()
		if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%+v: error %v, want %q", c, err, want)
		}
	}
	f(Config{URL: "http://127.0.0.1:1", Mode: "bulk"}, "mode must be")
	f(Config{URL: "http://127.0.0.1:1"}, "no ad ids")
	f(Config{URL: "https://x", Traffic: TrafficConfig{Ads: []uint64{1}}}, "http://host:port")
	f(Config{URL: "http://127.0.0.1:1", Mode: ModeGet}, "at least one path")
	f(Config{URL: "http://127.0.0.1:1", Rate: -1, Traffic: TrafficConfig{Ads: []uint64{1}}}, "rate")
}

func TestParseAds(t *testing.T) {
	f := func(in string, want []uint64, ok bool) {
		t.Helper()
		got, err := ParseAds(in)
		if (err == nil) != ok || len(got) != len(want) {
			t.Fatalf("ParseAds(%q) = %v, %v", in, got, err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("ParseAds(%q) = %v", in, got)
			}
		}
	}
	f("1,2, 3", []uint64{1, 2, 3}, true)
	f("7", []uint64{7}, true)
	f("", nil, false)
	f("1,x", nil, false)
	f("0", nil, false)
}

func TestFetchAdsFollowsPages(t *testing.T) {
	url := startServer(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.QueryArgs().Peek("after")) == "" {
			ctx.Response.Header.Set("Link", `</ads?status=active&limit=2&after=2>; rel="next"`)
			ctx.SetBodyString(`[{"id":1,"name":"a"},{"id":2,"name":"b"}]`)
			return
		}
		ctx.SetBodyString(`[{"id":9}]`)
	})
	ids, err := FetchAds(url)
	if err != nil || len(ids) != 3 || ids[2] != 9 {
		t.Fatalf("FetchAds = %v, %v", ids, err)
	}
}

// sendOne is the loop body: build, send, time, book.
func (w *worker) sendOne(k uint64) {
	w.build(k)
	t0 := w.g.now()
	err := w.g.client.Do(w.req, w.resp)
	w.lat.Record(uint64(w.g.now() - t0))
	w.classify(err)
}

func benchWorker(tb testing.TB, mode Mode, batch int) *worker {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := noop.NewServer()
	go func() { _ = srv.Serve(ln) }() // returns only at Shutdown, which the cleanup calls
	tb.Cleanup(func() { srv.Shutdown() })
	c := &Config{URL: "http://" + ln.Addr().String(), Mode: mode, Batch: batch, NDJSON: true, Conns: 1,
		Traffic: TrafficConfig{Ads: []uint64{1, 2, 3, 4}}}
	if err := c.normalize(); err != nil {
		tb.Fatal(err)
	}
	_, base, _ := target(c.URL)
	g := &group{cfg: c, base: base, epoch: time.Now()}
	g.client = &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: 1, MaxIdemponentCallAttempts: 1, NoDefaultUserAgentHeader: true}
	g.idsLeft.Store(TrackedRangesMax)
	return newWorker(g, 0)
}

// The send loop must not allocate per request: everything is built in the worker's buffers and fasthttp reuses its own. The noop
// server runs in this process, so its allocations would count too; it has none either once warm.
func TestSendLoopAllocs(t *testing.T) {
	if testenv.RaceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	for _, mode := range []Mode{ModeSingle, ModePixel, ModeBatch} {
		w := benchWorker(t, mode, 50)
		for k := uint64(0); k < 100; k++ {
			w.sendOne(k)
		}
		if n := testing.AllocsPerRun(500, func() { w.sendOne(1) }); n > 0.05 {
			t.Errorf("%s: %.2f allocations per request", mode, n)
		}
		if w.acked.Load() == 0 || w.netErr > 0 {
			t.Fatalf("%s: acked %d, errors %d", mode, w.acked.Load(), w.netErr)
		}
	}
}

func BenchmarkSendSingle(b *testing.B) {
	w := benchWorker(b, ModeSingle, 0)
	b.ReportAllocs()
	for k := uint64(0); b.Loop(); k++ {
		w.sendOne(k)
	}
}

func BenchmarkSendBatch100(b *testing.B) {
	w := benchWorker(b, ModeBatch, 100)
	b.ReportAllocs()
	for k := uint64(0); b.Loop(); k++ {
		w.sendOne(k)
	}
}
