// Package ratelimit limits requests per client address with token buckets, one configuration per route class (ingest, query, admin).
package ratelimit

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/internal/httpx"
)

// Class groups routes that share a limit. A client spamming ingest must not use up its query budget and the reverse, so every class
// has its own table of buckets.
type Class uint8

// Route classes.
const (
	None   Class = iota // never limited: liveness, readiness and metrics must answer whatever a client does
	Ingest              // event routes: players and SDKs
	Query               // reads: ads catalogue and analytics
	Admin               // writes to the ads catalogue
	classCount
)

var classNames = [classCount]string{"none", "ingest", "query", "admin"}

func (c Class) String() string {
	if c >= classCount {
		return "unknown"
	}
	return classNames[c]
}

// ClassOf maps a route — its method and router pattern, never the raw path — to its class.
func ClassOf(method, pattern string) Class {
	switch pattern {
	case "/healthz", "/readyz", "/metrics":
		return None
	case "/events", "/ads/click", "/ads/impression":
		return Ingest
	}
	if strings.HasPrefix(pattern, "/t/") || strings.HasPrefix(pattern, "/c/") {
		return Ingest
	}
	switch method {
	case fasthttp.MethodGet, fasthttp.MethodHead:
		return Query
	}
	return Admin
}

// Rule is one class's bucket: RPS tokens per second refill it up to Burst. RPS 0 disables the class; Burst below 1 means ceil(RPS).
type Rule struct {
	RPS   float64
	Burst int
}

// DefaultMaxTracked bounds the buckets one class keeps (about 40 bytes each, so ~40 MB at the bound).
const DefaultMaxTracked = 1_000_000

// Config configures a Limiter.
type Config struct {
	Ingest, Query, Admin Rule
	// Exempt lists CIDRs or addresses never limited (server-to-server senders, local health checks).
	Exempt []string
	// Proxies decides the client address exactly as ingest does (http.trusted_proxies); nil means the TCP peer.
	Proxies *httpx.Proxies
	// MaxTracked bounds the buckets per class (0 = DefaultMaxTracked). Past it new clients are let through untracked — failing open
	// keeps real players served when a flood of distinct addresses fills the table — and counted in
	// adtracker_ratelimit_untracked_total.
	MaxTracked int
	// Now pins the clock (tests): every reading comes from it. Nil: Check takes the request's time (fasthttp's RequestCtx.Time),
	// Allow and the sweeps read time.Now.
	Now func() time.Time
}

// numShards spreads the per-request critical section over 64 mutexes so cores rarely wait on each other.
const numShards = 64

// bucket is stored by value so a known client costs no allocation and the GC has no pointers to scan in the map.
type bucket struct {
	tokens float64
	last   int64 // nanoseconds since the limiter's epoch
}

type shard struct {
	mu        sync.Mutex
	m         map[[16]byte]bucket
	peak      int      // largest len(m) since the map was last rebuilt
	lastSweep int64    // nanoseconds since epoch
	_         [32]byte // to 64 bytes, so neighbouring shards' mutexes do not share a cache line
}

type table struct {
	rule      Rule
	perNano   float64 // tokens per nanosecond
	burst     float64
	fullAfter int64 // nanoseconds for an empty bucket to refill; an entry idle this long equals a fresh one and can be dropped
	shardCap  int
	shards    [numShards]shard
}

// Limiter holds one table of buckets per enabled class.
type Limiter struct {
	tables     [classCount]*table
	exempt     httpx.CIDRs
	proxies    *httpx.Proxies
	now        func() time.Time
	testClock  bool // Config.Now was set: every reading comes from it, never from a request's time
	epoch      time.Time
	limited    [classCount]prometheus.Counter
	untracked  [classCount]prometheus.Counter
	collectors []prometheus.Collector
}

// New builds a Limiter; it fails on an exempt entry that is not an IP or CIDR.
func New(cfg Config) (*Limiter, error) {
	l := &Limiter{proxies: cfg.Proxies, now: cfg.Now, testClock: cfg.Now != nil}
	if l.now == nil {
		l.now = time.Now
	}
	l.epoch = l.now()
	exempt, err := httpx.ParseCIDRs("ratelimit.exempt", cfg.Exempt)
	if err != nil {
		return nil, err
	}
	l.exempt = exempt
	bound := cfg.MaxTracked
	if bound <= 0 {
		bound = DefaultMaxTracked
	}
	for c, r := range map[Class]Rule{Ingest: cfg.Ingest, Query: cfg.Query, Admin: cfg.Admin} {
		if r.RPS < 0 || math.IsNaN(r.RPS) || math.IsInf(r.RPS, 0) {
			return nil, fmt.Errorf("ratelimit.%s.rps must be a number >= 0", c)
		}
		if r.RPS == 0 {
			continue
		}
		if r.Burst < 1 {
			r.Burst = int(math.Ceil(r.RPS))
		}
		t := &table{rule: r, perNano: r.RPS / 1e9, burst: float64(r.Burst), shardCap: (bound + numShards - 1) / numShards}
		t.fullAfter = int64(math.Ceil(float64(r.Burst) / r.RPS * 1e9))
		for i := range t.shards {
			t.shards[i].m = map[[16]byte]bucket{}
		}
		l.tables[c] = t
	}

	limitedVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "adtracker_ratelimit_limited_total", Help: "Requests answered 429 by the per-client rate limit, by route class.",
	}, []string{"class"})
	untrackedVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "adtracker_ratelimit_untracked_total", Help: "Requests let through unlimited because the class's bucket table was full.",
	}, []string{"class"})
	l.collectors = []prometheus.Collector{limitedVec, untrackedVec}
	for c := Ingest; c < classCount; c++ {
		// Resolved once: WithLabelValues on the per-request path would hash the label.
		l.limited[c] = limitedVec.WithLabelValues(c.String())
		l.untracked[c] = untrackedVec.WithLabelValues(c.String())
		c := c
		l.collectors = append(l.collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "adtracker_ratelimit_tracked_clients", Help: "Client buckets held in memory, by route class.",
			ConstLabels: prometheus.Labels{"class": c.String()},
		}, func() float64 { return float64(l.Tracked(c)) }))
	}
	return l, nil
}

// Collectors returns the limiter's metrics for the server's registry.
func (l *Limiter) Collectors() []prometheus.Collector { return l.collectors }

// Enabled reports whether class c is limited at all.
func (l *Limiter) Enabled(c Class) bool { return c < classCount && l.tables[c] != nil }

func (l *Limiter) nanos() int64 { return int64(l.now().Sub(l.epoch)) }

// key is the bucket identity. An IPv6 subscriber usually holds a whole /64, so counting single IPv6 addresses would hand one client
// 2^64 buckets; IPv4 (stored IPv4-mapped) is counted per address.
func key(ip [16]byte) [16]byte {
	if isV4Mapped(ip) {
		return ip
	}
	for i := 8; i < 16; i++ {
		ip[i] = 0
	}
	return ip
}

func isV4Mapped(ip [16]byte) bool {
	for i := 0; i < 10; i++ {
		if ip[i] != 0 {
			return false
		}
	}
	return ip[10] == 0xff && ip[11] == 0xff
}

// shardOf mixes both halves of the key (an IPv4-mapped address differs only in its last 4 bytes) with a Fibonacci multiply and keeps
// the top 6 bits.
func shardOf(k [16]byte) int {
	a, b := binary.BigEndian.Uint64(k[:8]), binary.BigEndian.Uint64(k[8:])
	return int(((a*0x9e3779b97f4a7c15 ^ b) * 0x9e3779b97f4a7c15) >> (64 - 6))
}

// Allow takes a token for ip in class c. When refused, retryAfter is how long until a token is available. Exempt addresses, disabled
// classes and class None always pass. No allocation for a client already tracked; the per-shard mutex is held for one map lookup
// and store.
func (l *Limiter) Allow(c Class, ip [16]byte) (ok bool, retryAfter time.Duration) {
	return l.allowAt(c, ip, time.Time{})
}

// allowAt is Allow at time t, the request's: Check passes the time fasthttp read right before calling the handlers
// (RequestCtx.Time), which saves a clock read per request (not free on a VM clock). A zero t, or a test clock (Config.Now),
// reads the limiter's clock instead.
func (l *Limiter) allowAt(c Class, ip [16]byte, t time.Time) (ok bool, retryAfter time.Duration) {
	if c >= classCount || l.tables[c] == nil || l.exempt.Contains(ip) {
		return true, 0
	}
	if t.IsZero() || l.testClock {
		t = l.now()
	}
	ok, wait, tracked := l.tables[c].take(key(ip), int64(t.Sub(l.epoch)))
	if !tracked {
		l.untracked[c].Inc()
	}
	return ok, time.Duration(wait)
}

func (t *table) take(k [16]byte, now int64) (ok bool, wait int64, tracked bool) {
	s := &t.shards[shardOf(k)]
	s.mu.Lock()
	b, found := s.m[k]
	if !found {
		if len(s.m) >= t.shardCap {
			// Sweeping frees what has refilled; throttled so a full table of live clients does not turn every new address into an
			// O(shard) scan.
			if now-s.lastSweep >= int64(time.Second) {
				t.sweepLocked(s, now)
			}
			if len(s.m) >= t.shardCap {
				s.mu.Unlock()
				return true, 0, false
			}
		}
		b = bucket{tokens: t.burst, last: now}
	} else if now > b.last {
		b.tokens = math.Min(t.burst, b.tokens+float64(now-b.last)*t.perNano)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		ok = true
	} else {
		wait = int64(math.Ceil((1 - b.tokens) / t.perNano))
	}
	s.m[k] = b
	if len(s.m) > s.peak {
		s.peak = len(s.m)
	}
	s.mu.Unlock()
	return ok, wait, true
}

// sweepLocked drops buckets idle long enough to have refilled — dropping them changes no answer — and rebuilds a map that has
// shrunk to a quarter of its peak, because a Go map never gives back the memory of deleted entries.
func (t *table) sweepLocked(s *shard, now int64) {
	s.lastSweep = now
	for k, b := range s.m {
		if now-b.last >= t.fullAfter {
			delete(s.m, k)
		}
	}
	if s.peak >= 1024 && len(s.m) <= s.peak/4 {
		m := make(map[[16]byte]bucket, len(s.m))
		for k, b := range s.m {
			m[k] = b
		}
		s.m = m
		s.peak = len(m)
	}
}

// Sweep evicts refilled buckets in every class, one shard lock at a time.
func (l *Limiter) Sweep() {
	now := l.nanos()
	for _, t := range l.tables {
		if t == nil {
			continue
		}
		for i := range t.shards {
			s := &t.shards[i]
			s.mu.Lock()
			t.sweepLocked(s, now)
			s.mu.Unlock()
		}
	}
}

// SweepInterval is how often Run sweeps: the shortest refill time of the enabled classes, kept between 1 s and 30 s. A bucket thus
// lives at most its refill time plus this interval after its client went quiet.
func (l *Limiter) SweepInterval() time.Duration {
	d := 30 * time.Second
	for _, t := range l.tables {
		if t != nil && time.Duration(t.fullAfter) < d {
			d = time.Duration(t.fullAfter)
		}
	}
	return max(d, time.Second)
}

// Run sweeps every SweepInterval until ctx ends.
func (l *Limiter) Run(ctx context.Context) {
	tick := time.NewTicker(l.SweepInterval())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			l.Sweep()
		}
	}
}

// Tracked is the number of buckets class c holds.
func (l *Limiter) Tracked(c Class) int {
	if c >= classCount || l.tables[c] == nil {
		return 0
	}
	n := 0
	t := l.tables[c]
	for i := range t.shards {
		t.shards[i].mu.Lock()
		n += len(t.shards[i].m)
		t.shards[i].mu.Unlock()
	}
	return n
}

// Check limits the request's client (ingest's client-address rule) in class c. Over the limit it answers 429 with Retry-After (whole
// seconds, at least 1) and a JSON error, and returns false: the caller must not run the handler, so nothing is recorded.
func (l *Limiter) Check(c Class, ctx *fasthttp.RequestCtx) bool {
	if c >= classCount || l.tables[c] == nil {
		return true
	}
	ok, wait := l.allowAt(c, l.proxies.ClientIP(ctx), ctx.Time())
	if ok {
		return true
	}
	l.limited[c].Inc()
	secs := int64((wait + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	var buf [20]byte
	ctx.Response.Header.SetBytesV("Retry-After", strconv.AppendInt(buf[:0], secs, 10))
	httpx.WriteError(ctx, fasthttp.StatusTooManyRequests, "rate limit exceeded for this client address; retry after Retry-After seconds", "")
	return false
}

// Wrap returns next guarded by Check for class c.
func (l *Limiter) Wrap(c Class, next fasthttp.RequestHandler) fasthttp.RequestHandler {
	if !l.Enabled(c) {
		return next
	}
	return func(ctx *fasthttp.RequestCtx) {
		if l.Check(c, ctx) {
			next(ctx)
		}
	}
}
