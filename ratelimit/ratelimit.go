// Package ratelimit limits requests per client address with token buckets, one configuration per route class (ingest, query, admin).
package ratelimit

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
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

// DefaultMaxTracked bounds the clients one class keeps (16-byte slots in tables a quarter to half full: ~32–64 bytes each, so
// ~32–64 MB at the bound).
const DefaultMaxTracked = 1_000_000

// Config configures a Limiter.
type Config struct {
	Ingest, Query, Admin Rule
	// Exempt lists CIDRs or addresses never limited (server-to-server senders, local health checks).
	Exempt []string
	// Proxies decides the client address exactly as ingest does (http.trusted_proxies); nil means the TCP peer.
	Proxies *httpx.Proxies
	// MaxTracked bounds the clients per class (0 = DefaultMaxTracked). Past it new clients are let through untracked — failing
	// open keeps real players served when a flood of distinct addresses fills the table — and counted in
	// adtracker_ratelimit_untracked_total.
	MaxTracked int
	// Now pins the clock (tests): every reading comes from it. Nil: Check takes the request's time (fasthttp's RequestCtx.Time),
	// Allow and the sweeps read time.Now.
	Now func() time.Time
}

// numShards spreads the per-request critical section over 64 mutexes so cores rarely wait on each other.
const numShards = 64

// shardBits is log2(numShards): a key's shard is the top shardBits of its hash, its slot the low bits.
const shardBits = 6

// shard holds one slice of the clients, IPv4 addresses and IPv6 /64s in separate tables so each key fits one word and no
// address of one family can share a bucket with one of the other.
type shard struct {
	mu        sync.Mutex
	v4, v6    clients
	lastSweep int64    // nanoseconds since epoch
	_         [32]byte // to 128 bytes, so neighbouring shards' mutexes do not share a cache line
}

// table is one class's clients. A client's state is the time its bucket is full again (fullAt): a request passes when the
// bucket holds a token, that is when fullAt − now ≤ (Burst − 1) intervals, and moves fullAt one interval on (from now if the
// bucket was full). This is the token bucket of Rule, kept as one number instead of a count and a time.
type table struct {
	interval  int64        // nanoseconds per token (1/RPS), at least 1
	tolerance int64        // (Burst − 1) intervals: how far fullAt may run ahead of now with a token left
	fullAfter int64        // nanoseconds for an empty bucket to refill
	seed      maphash.Seed // the hash seed of every shard's tables (clients.hash)
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
		l.tables[c] = newTable(r, (bound+numShards-1)/numShards)
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

// newTable builds the table of an enabled rule (RPS > 0, Burst ≥ 1). Intervals are whole nanoseconds, and the interval and
// the tolerance are capped at 2^60 ns (~36 years) so fullAt never overflows: an RPS above 1e9 counts as 1e9, and a rule slower
// than a token in ~36 years, or whose burst takes longer than that to refill, is held to those 36 years.
func newTable(r Rule, shardCap int) *table {
	const limit = float64(1 << 60)
	t := &table{shardCap: shardCap}
	t.interval = int64(math.Max(1, math.Min(limit, math.Round(1e9/r.RPS))))
	t.tolerance = int64(math.Min(limit, float64(r.Burst-1)*float64(t.interval)))
	t.fullAfter = int64(math.Min(limit, math.Ceil(float64(r.Burst)/r.RPS*1e9)))
	t.seed = maphash.MakeSeed()
	for i := range t.shards {
		t.shards[i].v4.seed, t.shards[i].v6.seed = t.seed, t.seed
	}
	return t
}

// clientKey is the client's identity within its family. An IPv6 subscriber usually holds a whole /64, so counting single IPv6
// addresses would hand one client 2^64 buckets: its key is the /64. IPv4 (stored IPv4-mapped) is counted per address.
func clientKey(ip [16]byte) (k uint64, v6 bool) {
	hi, lo := binary.BigEndian.Uint64(ip[:8]), binary.BigEndian.Uint64(ip[8:])
	if hi == 0 && lo>>32 == 0xffff {
		return lo & 0xffffffff, false
	}
	return hi, true
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
	ok, wait, tracked := l.tables[c].take(ip, int64(t.Sub(l.epoch)))
	if !tracked {
		l.untracked[c].Inc()
	}
	return ok, time.Duration(wait)
}

// locate finds ip's shard, the family's table in it, its key and the key's hash.
func (t *table) locate(ip [16]byte) (s *shard, c *clients, k, h uint64) {
	k, isV6 := clientKey(ip)
	h = maphash.Comparable(t.seed, k) // what the shard's clients.hash(k) computes
	s = &t.shards[h>>(64-shardBits)]
	if isV6 {
		return s, &s.v6, k, h
	}
	return s, &s.v4, k, h
}

// take spends a token of ip's bucket at now. tracked is false when the shard was full and the client passed untracked.
func (t *table) take(ip [16]byte, now int64) (ok bool, wait int64, tracked bool) {
	// A time before the epoch (a request read before New) counts as the epoch, so a stored fullAt is never 0, the empty mark.
	now = max(now, 0)
	s, c, k, h := t.locate(ip)
	s.mu.Lock()
	i, found := c.find(k, h)
	if !found {
		if s.v4.n+s.v6.n >= t.shardCap {
			// Sweeping frees what has refilled; throttled so a full table of live clients does not turn every new address into an
			// O(shard) scan.
			if now-s.lastSweep >= int64(time.Second) {
				t.sweepLocked(s, now)
			}
			if s.v4.n+s.v6.n >= t.shardCap {
				s.mu.Unlock()
				return true, 0, false
			}
		}
		i = c.insert(k, h, now) // a full bucket: fullAt = now
	}
	st := &c.slots[i]
	from := max(st.fullAt, now)
	if from-now <= t.tolerance {
		st.fullAt = from + t.interval
		ok = true
	} else {
		wait = from - now - t.tolerance
	}
	s.mu.Unlock()
	return ok, wait, true
}

// sweepLocked drops the clients whose buckets have refilled — dropping them changes no answer — and gives back the memory of
// tables that have emptied.
func (t *table) sweepLocked(s *shard, now int64) {
	s.lastSweep = now
	s.v4.sweep(now)
	s.v6.sweep(now)
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
		n += t.shards[i].v4.n + t.shards[i].v6.n
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
