package ratelimit

import (
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/adtracker/adtracker/internal/httpx"
	"github.com/adtracker/adtracker/internal/testenv"
)

// fakeClock is advanced by hand; atomic because concurrent tests read it from many goroutines.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func newLimiter(t testing.TB, cfg Config) (*Limiter, *fakeClock) {
	t.Helper()
	clk := &fakeClock{}
	clk.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	cfg.Now = clk.now
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l, clk
}

func ip(s string) [16]byte { return netip.MustParseAddr(s).As16() }

// v4 returns the n-th IPv4 address of 10.0.0.0/8, IPv4-mapped as ingest stores it.
func v4(n uint32) [16]byte {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], 0x0a000000|n)
	return netip.AddrFrom4(a).As16()
}

func TestBucket(t *testing.T) {
	l, clk := newLimiter(t, Config{Ingest: Rule{RPS: 2, Burst: 3}})
	a := ip("192.0.2.1")
	f := func(wantOK bool, wantRetry time.Duration) {
		t.Helper()
		ok, retry := l.Allow(Ingest, a)
		if ok != wantOK || retry != wantRetry {
			t.Fatalf("Allow = %v, %v; want %v, %v", ok, retry, wantOK, wantRetry)
		}
	}
	f(true, 0)
	f(true, 0)
	f(true, 0) // burst of 3 spent
	f(false, 500*time.Millisecond)
	clk.advance(200 * time.Millisecond) // 0.4 token
	f(false, 300*time.Millisecond)
	clk.advance(300 * time.Millisecond) // 1 token
	f(true, 0)
	f(false, 500*time.Millisecond)
	clk.advance(time.Hour) // refills to the burst, not beyond
	f(true, 0)
	f(true, 0)
	f(true, 0)
	f(false, 500*time.Millisecond)
	// Another client and another class have their own buckets.
	if ok, _ := l.Allow(Ingest, ip("192.0.2.2")); !ok {
		t.Fatal("second client limited by the first")
	}
	if ok, _ := l.Allow(Query, a); !ok {
		t.Fatal("disabled class limited")
	}
}

func TestClassesExemptAndIPv6(t *testing.T) {
	l, _ := newLimiter(t, Config{
		Ingest: Rule{RPS: 1, Burst: 1}, Query: Rule{RPS: 1}, Admin: Rule{RPS: 0, Burst: 5},
		Exempt: []string{"127.0.0.0/8", "::1", "198.51.100.7"},
	})
	f := func(c Class, addr string, wantSecond bool) {
		t.Helper()
		a := ip(addr)
		if ok, _ := l.Allow(c, a); !ok {
			t.Fatalf("%s %s: first request refused", c, addr)
		}
		if ok, _ := l.Allow(c, a); ok != wantSecond {
			t.Fatalf("%s %s: second request allowed=%v, want %v", c, addr, ok, wantSecond)
		}
	}
	f(Ingest, "192.0.2.9", false)
	f(Query, "192.0.2.9", false) // Burst 0 → ceil(RPS) = 1, and its own budget
	f(Admin, "192.0.2.9", true)  // RPS 0 disables
	f(None, "192.0.2.9", true)
	f(Ingest, "127.0.0.1", true)
	f(Ingest, "127.8.9.10", true)
	f(Ingest, "::1", true)
	f(Ingest, "198.51.100.7", true)
	f(Ingest, "198.51.100.8", false)
	// One /64 is one client; the next /64 is another.
	if ok, _ := l.Allow(Ingest, ip("2001:db8:1:2::1")); !ok {
		t.Fatal("first v6 refused")
	}
	if ok, _ := l.Allow(Ingest, ip("2001:db8:1:2:ffff::9")); ok {
		t.Fatal("same /64 not shared")
	}
	if ok, _ := l.Allow(Ingest, ip("2001:db8:1:3::1")); !ok {
		t.Fatal("neighbouring /64 shared")
	}
	// ::ffff:a.b.c.d is IPv4 and counted per address.
	if ok, _ := l.Allow(Ingest, ip("203.0.113.1")); !ok {
		t.Fatal("v4 refused")
	}
	if ok, _ := l.Allow(Ingest, ip("203.0.113.2")); !ok {
		t.Fatal("v4 neighbour shared a bucket")
	}
	if _, err := New(Config{Exempt: []string{"10.0.0.0/33"}}); err == nil || !strings.Contains(err.Error(), "ratelimit.exempt") {
		t.Fatalf("bad exempt accepted: %v", err)
	}
	if _, err := New(Config{Ingest: Rule{RPS: -1}}); err == nil {
		t.Fatal("negative rps accepted")
	}
}

func TestClassOf(t *testing.T) {
	f := func(method, pattern string, want Class) {
		t.Helper()
		if got := ClassOf(method, pattern); got != want {
			t.Fatalf("ClassOf(%s %s) = %s, want %s", method, pattern, got, want)
		}
	}
	f("GET", "/healthz", None)
	f("GET", "/readyz", None)
	f("GET", "/metrics", None)
	f("POST", "/ads/click", Ingest)
	f("POST", "/ads/impression", Ingest)
	f("POST", "/events", Ingest)
	f("GET", "/t/{event}", Ingest)
	f("GET", "/c/{id}", Ingest)
	f("GET", "/ads", Query)
	f("GET", "/ads/{id}", Query)
	f("GET", "/ads/analytics", Query)
	f("GET", "/ads/{id}/timeseries", Query)
	f("POST", "/ads", Admin)
	f("PUT", "/ads/{id}", Admin)
	f("PATCH", "/ads/{id}", Admin)
	f("DELETE", "/ads/{id}", Admin)
}

// With a frozen clock exactly Burst requests pass however many goroutines race for the bucket.
func TestConcurrentExactBurst(t *testing.T) {
	l, _ := newLimiter(t, Config{Ingest: Rule{RPS: 1, Burst: 500}})
	a := ip("192.0.2.44")
	var passed atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				if ok, _ := l.Allow(Ingest, a); ok {
					passed.Add(1)
				}
				l.Allow(Ingest, v4(uint32(g*1000+i))) // other clients in other shards at the same time
			}
		}()
	}
	wg.Wait()
	if passed.Load() != 500 {
		t.Fatalf("%d requests passed, want exactly the burst of 500", passed.Load())
	}
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A million distinct clients are all tracked, then swept once their buckets have refilled, and the tables give their memory back.
func TestMillionAddressesEvicted(t *testing.T) {
	const n = 1_000_000
	// One request empties a bucket of one token, which refills in 4 s.
	l, clk := newLimiter(t, Config{Ingest: Rule{RPS: 0.25, Burst: 1}, MaxTracked: 2 * n})
	base := heapAlloc()
	for i := uint32(0); i < n; i++ {
		if ok, _ := l.Allow(Ingest, v4(i)); !ok {
			t.Fatalf("client %d refused on its first request", i)
		}
	}
	if got := l.Tracked(Ingest); got != n {
		t.Fatalf("tracked %d, want %d", got, n)
	}
	peak := heapAlloc()
	t.Logf("1M buckets: %.1f MB heap, %.0f bytes per client", float64(peak-base)/1e6, float64(peak-base)/n)
	if per := float64(peak-base) / n; per > 70 {
		t.Fatalf("%.0f bytes per client, want at most 64 (16-byte slots, tables at least a quarter full)", per)
	}

	clk.advance(3 * time.Second) // not refilled yet, nothing may go
	l.Sweep()
	if got := l.Tracked(Ingest); got != n {
		t.Fatalf("sweep before refill dropped buckets: %d left", got)
	}
	if ok, _ := l.Allow(Ingest, v4(n/2)); ok {
		t.Fatal("a client kept through the sweep got a token before its bucket refilled")
	}
	clk.advance(time.Second)
	l.Sweep()
	if got := l.Tracked(Ingest); got != 0 { // a refused request takes nothing: v4(n/2)'s bucket refilled at 4 s too
		t.Fatalf("after refill time %d buckets left", got)
	}
	after := heapAlloc()
	if grew := int64(after) - int64(base); grew > int64(peak-base)/10 {
		t.Fatalf("heap still %d bytes above the start after eviction (peak was %d above): maps not rebuilt", grew, peak-base)
	}
	// The table still works after rebuilding.
	if ok, _ := l.Allow(Ingest, v4(7)); !ok {
		t.Fatal("refused after sweep")
	}
}

// A table at its bound lets new clients through untracked (counted), keeps the bound, and makes room once old buckets have refilled.
func TestMaxTrackedBound(t *testing.T) {
	const n, bound = 1_000_000, 64 * 1000
	l, clk := newLimiter(t, Config{Ingest: Rule{RPS: 10, Burst: 10}, MaxTracked: bound})
	for i := uint32(0); i < n; i++ {
		if ok, _ := l.Allow(Ingest, v4(i)); !ok {
			t.Fatalf("client %d refused on its first request", i)
		}
	}
	// Exactly the bound: every shard filled up, so the hash spreads sequential addresses over all 64 shards.
	if got := l.Tracked(Ingest); got != bound {
		t.Fatalf("tracked %d, want the bound %d", got, bound)
	}
	if got := testenv.CounterValue(t, l.untracked[Ingest]); got != n-bound {
		t.Fatalf("untracked counter %v, want %d", got, n-bound)
	}
	// Refill time is 1 s: after it the first new client of a full shard sweeps it and is tracked.
	clk.advance(time.Second)
	newcomer := v4(n + 1)
	l.Allow(Ingest, newcomer)
	l.Allow(Ingest, newcomer)
	s, c, k, h := l.tables[Ingest].locate(newcomer)
	s.mu.Lock()
	_, tracked := c.find(k, h)
	left := s.v4.n + s.v6.n
	s.mu.Unlock()
	if !tracked || left != 1 {
		t.Fatalf("full shard not swept inline: newcomer tracked=%v, shard holds %d", tracked, left)
	}
}

func TestCheckAnswers429AndUsesProxyRule(t *testing.T) {
	proxies, err := httpx.ParseProxies([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := newLimiter(t, Config{Ingest: Rule{RPS: 0.5, Burst: 1}, Proxies: proxies})
	do := func(peer, xff string) *fasthttp.RequestCtx {
		var ctx fasthttp.RequestCtx
		var req fasthttp.Request
		req.Header.SetMethod("POST")
		req.SetRequestURI("/ads/click")
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP(peer), Port: 5000}, nil)
		called := false
		l.Wrap(Ingest, func(*fasthttp.RequestCtx) { called = true })(&ctx)
		if called != (ctx.Response.StatusCode() == 200) {
			t.Fatalf("handler called=%v with status %d", called, ctx.Response.StatusCode())
		}
		return &ctx
	}
	f := func(peer, xff string, wantStatus int) {
		t.Helper()
		ctx := do(peer, xff)
		if got := ctx.Response.StatusCode(); got != wantStatus {
			t.Fatalf("peer %s xff %q: status %d, want %d", peer, xff, got, wantStatus)
		}
		if wantStatus == 429 {
			if ra := string(ctx.Response.Header.Peek("Retry-After")); ra != "2" {
				t.Fatalf("Retry-After %q, want 2", ra)
			}
			body := string(ctx.Response.Body())
			if !strings.HasPrefix(body, `{"error":"rate limit exceeded`) || !strings.HasPrefix(string(ctx.Response.Header.ContentType()), "application/json") {
				t.Fatalf("429 body %q type %q", body, ctx.Response.Header.ContentType())
			}
		}
	}
	// Behind the trusted proxy each X-Forwarded-For client has its own bucket.
	f("10.1.1.1", "203.0.113.5", 200)
	f("10.1.1.1", "203.0.113.5", 429)
	f("10.1.1.1", "203.0.113.6", 200)
	f("10.2.2.2", "203.0.113.6", 429) // another proxy, same client
	// An untrusted peer's header is ignored: forging it does not buy a new bucket.
	f("198.51.100.1", "203.0.113.7", 200)
	f("198.51.100.1", "203.0.113.8", 429)
	if got := testenv.CounterValue(t, l.limited[Ingest]); got != 3 {
		t.Fatalf("limited counter %v, want 3", got)
	}
}

func BenchmarkAllowKnownClient(b *testing.B) {
	l, err := New(Config{Ingest: Rule{RPS: 1e9, Burst: 1e9}})
	if err != nil {
		b.Fatal(err)
	}
	a := ip("192.0.2.1")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l.Allow(Ingest, a)
	}
}

// Many clients from all cores: the sharded tables are what keeps this from serialising.
func BenchmarkAllowParallel(b *testing.B) {
	l, err := New(Config{Ingest: Rule{RPS: 1e9, Burst: 1e9}})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		base := next.Add(1) << 16
		i := uint32(0)
		for pb.Next() {
			l.Allow(Ingest, v4(base|i&0x3ff))
			i++
		}
	})
}

// A request is limited at its own time, the one fasthttp read before calling the handlers, not at a fresh clock reading: at one
// request time the bucket does not refill however long the wall clock runs, and through a real fasthttp server (which sets that
// time) the refill runs from the request's time.
func TestCheckUsesTheRequestTime(t *testing.T) {
	l, err := New(Config{Ingest: Rule{RPS: 1000, Burst: 2}})
	if err != nil {
		t.Fatal(err)
	}
	a, at := ip("192.0.2.1"), time.Now()
	for i, want := range []bool{true, true, false} {
		if ok, _ := l.allowAt(Ingest, a, at); ok != want {
			t.Fatalf("take %d at one time: %v, want %v", i, ok, want)
		}
	}
	time.Sleep(20 * time.Millisecond) // 20 tokens' worth of wall clock
	if ok, _ := l.allowAt(Ingest, a, at); ok {
		t.Fatal("refilled from the wall clock although the request's time did not move")
	}
	if ok, _ := l.allowAt(Ingest, a, at.Add(5*time.Millisecond)); !ok {
		t.Fatal("not refilled 5 ms later in request time")
	}

	// Through a real server: the first request waits 1.1 s between fasthttp's clock read and the limiter. Limited at its own
	// time, it leaves the bucket refilling from then, so the next request, sent after its answer, finds a token again and the
	// one after it none. A limiter that read the clock (or took a frozen time) would refuse the second one.
	l, err = New(Config{Ingest: Rule{RPS: 2, Burst: 1}})
	if err != nil {
		t.Fatal(err)
	}
	limited := l.Wrap(Ingest, func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(fasthttp.StatusAccepted) })
	var first atomic.Bool
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if first.CompareAndSwap(false, true) {
			time.Sleep(1100 * time.Millisecond)
		}
		limited(ctx)
	}}
	go func() { _ = srv.Serve(ln) }() // returns at Shutdown
	defer func() { _ = srv.Shutdown() }()
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	for i, want := range []int{202, 202, 429} {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://adtracker/ads/impression")
		req.Header.SetMethod("POST")
		if err := c.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() != want || (want == 429 && len(resp.Header.Peek("Retry-After")) == 0) {
			t.Errorf("request %d: %d (Retry-After %q), want %d", i, resp.StatusCode(), resp.Header.Peek("Retry-After"), want)
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
}

// BenchmarkAllowAtRequestTime is BenchmarkAllowKnownClient with the request's time given, as Check passes fasthttp's: the
// difference between the two is the clock read a request no longer makes.
func BenchmarkAllowAtRequestTime(b *testing.B) {
	l, err := New(Config{Ingest: Rule{RPS: 1e9, Burst: 1e9}})
	if err != nil {
		b.Fatal(err)
	}
	a, at := ip("192.0.2.1"), time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l.allowAt(Ingest, a, at)
	}
}

// BenchmarkAllowManyClients is the pixel traffic's shape: each request from another of 100,000 viewers, so the table is larger
// than the caches and a lookup's cost is its memory misses, not its hashing.
func BenchmarkAllowManyClients(b *testing.B) {
	l, err := New(Config{Ingest: Rule{RPS: 50, Burst: 200}})
	if err != nil {
		b.Fatal(err)
	}
	const clients = 100_000
	addrs := make([][16]byte, clients)
	for i := range addrs {
		// Scattered like real viewers' addresses, not one run of a /16.
		addrs[i] = v4(uint32(i) * 2654435761 >> 8)
	}
	at := time.Now()
	for i := range addrs {
		l.allowAt(Ingest, addrs[i], at)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.allowAt(Ingest, addrs[uint32(i)*40503%clients], at.Add(time.Duration(i)*20*time.Microsecond))
	}
}

// Rules at the edges of what a float allows still answer sanely: a rate above one token per nanosecond never limits a burst of
// 2^30, and a rate of one token in 31,000 years lets the first request through and then asks to retry after decades, without the
// time arithmetic overflowing into a pass.
func TestExtremeRules(t *testing.T) {
	l, clk := newLimiter(t, Config{Ingest: Rule{RPS: 1e12, Burst: 1 << 30}, Query: Rule{RPS: 1e-12, Burst: 1}})
	a := ip("192.0.2.7")
	for i := 0; i < 100_000; i++ {
		if ok, _ := l.Allow(Ingest, a); !ok {
			t.Fatalf("request %d refused at 1e12 rps", i)
		}
	}
	if ok, _ := l.Allow(Query, a); !ok {
		t.Fatal("first request refused")
	}
	for _, step := range []time.Duration{0, time.Hour, 24 * 365 * time.Hour} {
		clk.advance(step)
		ok, retry := l.Allow(Query, a)
		if ok || retry < 30*365*24*time.Hour {
			t.Fatalf("after %v more: allowed=%v, retry after %v; want refused for decades", step, ok, retry)
		}
	}
}
