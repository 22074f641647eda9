package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/ingest/event"
)

// Mode is what kind of request the generator sends.
type Mode string

// Modes.
const (
	ModeSingle Mode = "single" // POST /ads/impression and /ads/click, one JSON event each
	ModePixel  Mode = "pixel"  // GET /t/{event}?..., VAST tracking pixels
	ModeBatch  Mode = "batch"  // POST /events with Config.Batch events, NDJSON or a JSON array
	ModeGet    Mode = "get"    // GET Config.Paths in turn; no events (read-path latency)
)

// ParseMode checks a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeSingle, ModePixel, ModeBatch, ModeGet:
		return m, nil
	}
	return "", fmt.Errorf("mode must be single, pixel, batch or get, not %q", s)
}

// Config is one run.
type Config struct {
	URL      string // base URL, http://host:port
	Mode     Mode
	Batch    int  // events per request in batch mode (default 100)
	NDJSON   bool // batch body format; false sends a JSON array
	Rate     float64
	Conns    int           // connections = concurrent requests (default 64)
	Duration time.Duration // how long to send; with Count, whichever ends first
	Count    int64         // events to send (requests in get mode), rounded up to whole requests; 0 = until Duration
	Traffic  TrafficConfig // Ads must be set except in get mode
	Paths    []string      // get mode: request URIs (path and query), sent in turn
	// AcceptEncoding is sent as Accept-Encoding in get mode ("gzip", as players and browsers ask); empty sends none. The
	// answers are counted, never decompressed.
	AcceptEncoding string
	Timeout        time.Duration // per request (default 10 s)
	// Backoff is how long a connection pauses after a 503 in closed loop: Retry-After, but at most Backoff (default 100 ms;
	// negative: no pause). Without a pause a saturated server spends its time refusing; a full Retry-After (adtracker sends 1 s)
	// leaves it idle once the ring drains, so the measured rate would be the client's patience, not the server's capacity.
	Backoff  time.Duration
	Progress io.Writer // a line per second; nil for none
	Run      [6]byte   // id prefix of this run; zero picks a random one
}

// Result is what a run measured.
type Result struct {
	Mode      Mode
	URL       string
	Conns     int
	Rate      float64 // target requests/s; 0 = closed loop
	Batch     int
	Prefix    string    // text prefix of every event_id sent
	Start     time.Time // first scheduled send
	Elapsed   time.Duration
	Requests  uint64
	Events    uint64 // sent
	Acked     uint64 // answered 2xx (for batches: the items the answer counts as accepted)
	Refused   uint64 // answered non-2xx: the server says they are not stored
	Unknown   uint64 // no usable answer (timeout, connection error, ambiguous batch answer): may or may not be stored
	NetErrors uint64 // requests without an HTTP answer
	Status    map[int]uint64
	// Late counts open-loop requests sent more than a millisecond after their scheduled time: the generator (or the server, by
	// holding every connection) could not keep the schedule. Their latency is still measured from the scheduled time.
	Late uint64
	// Latency is measured from the scheduled send time in open loop (so a stalled server is charged for the requests it delayed,
	// avoiding coordinated omission) and from the actual send in closed loop. Service is always from the actual send.
	Latency, Service *Histogram
	// RefusedIDs and UnknownIDs let the verifier tell answered events from the others; at most TrackedRangesMax ranges in total.
	RefusedIDs, UnknownIDs []IDRange
	IDsTruncated           bool
}

// TrackedRangesMax bounds the id ranges of failed events kept for the verifier (24 MB).
const TrackedRangesMax = 1 << 20

// EventsPerRequest is how many events one request carries.
func (c *Config) EventsPerRequest() int {
	switch c.Mode {
	case ModeBatch:
		return c.Batch
	case ModeGet:
		return 0
	}
	return 1
}

func (c *Config) normalize() error {
	if c.Mode == "" {
		c.Mode = ModeSingle
	}
	if _, err := ParseMode(string(c.Mode)); err != nil {
		return err
	}
	if c.Mode == ModeBatch && c.Batch <= 0 {
		c.Batch = 100
	}
	if c.Conns <= 0 {
		c.Conns = 64
	}
	if c.Conns > MaxWorkers {
		return fmt.Errorf("at most %d connections", MaxWorkers)
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Backoff == 0 {
		c.Backoff = 100 * time.Millisecond
	}
	if c.Duration <= 0 && c.Count <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		return fmt.Errorf("rate must be a positive number of requests per second")
	}
	if c.Mode == ModeGet {
		if len(c.Paths) == 0 {
			return errors.New("get mode needs at least one path")
		}
	} else if len(c.Traffic.Ads) == 0 {
		return errors.New("no ad ids: give --ads or --ads-from-api")
	}
	if c.Run == ([6]byte{}) {
		rand.Read(c.Run[:])
	}
	return nil
}

// target splits a base URL into what the client dials and what requests carry.
func target(base string) (addr, prefix string, err error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil {
		return "", "", err
	}
	if u.Scheme != "http" || u.Host == "" {
		return "", "", fmt.Errorf("url must be http://host:port, not %q", base)
	}
	addr = u.Host
	if u.Port() == "" {
		addr += ":80"
	}
	return addr, "http://" + u.Host + u.Path, nil
}

// group is the state workers share.
type group struct {
	cfg      *Config
	client   *fasthttp.HostClient
	base     string
	epoch    time.Time
	interval float64 // ns between scheduled sends (open loop)
	deadline int64   // ns since epoch; 0 = none
	maxReq   uint64  // 0 = unlimited
	tickets  atomic.Uint64
	stop     atomic.Bool
	idsLeft  atomic.Int64 // budget of tracked id ranges
	trunc    atomic.Bool
}

func (g *group) now() int64 { return int64(time.Since(g.epoch)) }

// worker owns one connection's worth of requests; everything it touches per request is allocated once here.
type worker struct {
	g       *group
	req     *fasthttp.Request
	resp    *fasthttp.Response
	traffic *Traffic
	clock   Clock
	evs     []Event // the current request's events; single and pixel use evs[0]
	buf     []byte
	ipBuf   []byte
	uriSing [2][]byte // impression, click

	lat, svc Histogram
	reqs     atomic.Uint64 // read by the progress line
	noAnswer atomic.Uint64 // requests without an HTTP answer; read by the progress line
	acked    atomic.Uint64
	refused  atomic.Uint64 // events answered non-2xx (not stored); read by the progress line
	events   uint64
	unknown  uint64
	netErr   uint64
	late     uint64
	status   [600]uint64
	refIDs   []IDRange
	unkIDs   []IDRange
}

var (
	headerXFF  = []byte("X-Forwarded-For")
	keyAcc     = []byte(`"accepted":`)
	keyRej     = []byte(`"rejected":`)
	keyRetryAt = []byte(`"retry_from_index":`)
)

func newWorker(g *group, id int) *worker {
	c := g.cfg
	w := &worker{g: g, req: fasthttp.AcquireRequest(), resp: fasthttp.AcquireResponse()}
	tc := c.Traffic
	tc.Single = c.Mode == ModeSingle
	tc.Seed = tc.Seed*1_000_003 + uint64(id) + 1
	w.traffic = NewTraffic(tc, NewIDs(c.Run, id))
	w.buf = make([]byte, 0, 512*max(c.Batch, 1))
	w.evs = make([]Event, max(c.Batch, 1))
	w.uriSing[0] = []byte(g.base + "/ads/impression")
	w.uriSing[1] = []byte(g.base + "/ads/click")
	w.req.URI().DisablePathNormalizing = true
	switch c.Mode {
	case ModeSingle:
		w.req.Header.SetMethod(fasthttp.MethodPost)
		w.req.Header.SetContentType("application/json")
	case ModeBatch:
		w.req.Header.SetMethod(fasthttp.MethodPost)
		w.req.SetRequestURI(g.base + "/events")
		if c.NDJSON {
			w.req.Header.SetContentType("application/x-ndjson")
		} else {
			w.req.Header.SetContentType("application/json")
		}
	default:
		w.req.Header.SetMethod(fasthttp.MethodGet)
	}
	return w
}

// build prepares the next request in place.
func (w *worker) build(k uint64) {
	c := w.g.cfg
	switch c.Mode {
	case ModeSingle:
		e := &w.evs[0]
		w.traffic.Next(e)
		w.buf = AppendJSON(w.buf[:0], e, false, w.clock.Now())
		if e.Type == event.TypeClick {
			w.req.SetRequestURIBytes(w.uriSing[1])
		} else {
			w.req.SetRequestURIBytes(w.uriSing[0])
		}
		w.req.SetBodyRaw(w.buf)
		w.req.Header.SetUserAgent(e.UserAgent())
	case ModePixel:
		e := &w.evs[0]
		w.traffic.Next(e)
		w.buf = append(w.buf[:0], w.g.base...)
		w.buf = AppendPixel(w.buf, e, w.clock.Now(), w.traffic.Uint32())
		w.req.SetRequestURIBytes(w.buf)
		w.req.Header.SetUserAgent(e.UserAgent())
		// Believed only when the server lists the loader's address in http.trusted_proxies; otherwise every pixel comes from 127.0.0.1.
		w.ipBuf = appendIP(w.ipBuf[:0], e.IP)
		w.req.Header.SetBytesKV(headerXFF, w.ipBuf)
	case ModeBatch:
		for i := range w.evs {
			w.traffic.Next(&w.evs[i])
		}
		w.buf = AppendBatch(w.buf[:0], w.evs, c.NDJSON, w.clock.Now())
		w.req.SetBodyRaw(w.buf)
		w.req.Header.SetUserAgent(w.evs[0].UserAgent())
	case ModeGet:
		w.buf = append(append(w.buf[:0], w.g.base...), c.Paths[k%uint64(len(c.Paths))]...)
		w.req.SetRequestURIBytes(w.buf)
		if c.AcceptEncoding != "" {
			w.req.Header.Set(fasthttp.HeaderAcceptEncoding, c.AcceptEncoding)
		}
	}
}

// ids returns the event ids the current request carries.
func (w *worker) ids() []Event {
	switch w.g.cfg.Mode {
	case ModeBatch:
		return w.evs
	case ModeGet:
		return nil
	}
	return w.evs[:1]
}

func (w *worker) track(dst *[]IDRange, evs []Event) {
	n := len(*dst)
	if *dst = appendRange(*dst, evs); len(*dst) > n && w.g.idsLeft.Add(-1) < 0 {
		*dst = (*dst)[:n]
		w.g.trunc.Store(true)
	}
}

// parseNum reads the unsigned integer after key in body (at the start when key is nil); -1 when absent.
func parseNum(body, key []byte) int {
	i := 0
	if key != nil {
		if i = bytes.Index(body, key); i < 0 {
			return -1
		}
	}
	n, seen := 0, false
	for _, c := range body[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		n, seen = n*10+int(c-'0'), true
	}
	if !seen {
		return -1
	}
	return n
}

// classify books the answer to the current request.
func (w *worker) classify(err error) {
	evs := w.ids()
	n := uint64(len(evs))
	if err != nil {
		w.netErr++
		w.noAnswer.Add(1)
		w.unknown += n
		w.track(&w.unkIDs, evs)
		return
	}
	code := w.resp.StatusCode()
	w.status[min(max(code, 0), len(w.status)-1)]++
	ok := code >= 200 && code < 300
	if w.g.cfg.Mode != ModeBatch {
		if ok {
			w.acked.Add(n)
		} else {
			w.refused.Add(n)
			w.track(&w.refIDs, evs)
		}
		return
	}
	body := w.resp.Body()
	acc, rej := parseNum(body, keyAcc), parseNum(body, keyRej)
	switch {
	case ok && (acc < 0 || acc == len(evs) && rej <= 0):
		// All accepted (a body without counts is the no-op server's empty 202).
		w.acked.Add(n)
	case ok:
		// Some items refused: the answer says which by index, but every item we send is valid, so this is unexpected; count the
		// batch as unknown rather than trust a partial reading.
		w.unknown += n
		w.track(&w.unkIDs, evs)
	case code == fasthttp.StatusServiceUnavailable && rej == 0 && parseNum(body, keyRetryAt) >= 0:
		// The queue refused item k: items before it are stored, the rest are not.
		k := min(parseNum(body, keyRetryAt), len(evs))
		w.acked.Add(uint64(k))
		w.refused.Add(n - uint64(k))
		w.track(&w.refIDs, evs[k:])
	default:
		w.refused.Add(n)
		w.track(&w.refIDs, evs)
	}
}

func (w *worker) run(wg *sync.WaitGroup, tickets <-chan uint64) {
	defer wg.Done()
	g := w.g
	open := tickets != nil
	for !g.stop.Load() {
		var k uint64
		var sched int64
		if open {
			var ok bool
			if k, ok = <-tickets; !ok {
				return
			}
			sched = int64(float64(k) * g.interval)
		} else {
			k = g.tickets.Add(1) - 1
			if g.maxReq > 0 && k >= g.maxReq {
				return
			}
			if g.deadline > 0 && g.now() >= g.deadline {
				return
			}
		}
		w.build(k)
		t0 := g.now()
		if !open {
			sched = t0
		} else if t0-sched > int64(time.Millisecond) {
			w.late++
		}
		err := g.client.Do(w.req, w.resp)
		t1 := g.now()
		w.lat.Record(uint64(t1 - sched))
		w.svc.Record(uint64(t1 - t0))
		w.events += uint64(len(w.ids()))
		w.classify(err)
		w.reqs.Add(1)
		if !open {
			if err != nil {
				time.Sleep(10 * time.Millisecond) // a dead server must not turn the closed loop into a busy loop
			} else if d := w.retryAfter(); d > 0 {
				time.Sleep(d)
			}
		}
	}
}

// pace releases open-loop tickets at their scheduled times: ticket k is due k·interval after the start. A ticket waits in the
// channel while every worker is busy; its latency still counts from when it was due.
func (g *group) pace(tickets chan<- uint64, stop <-chan struct{}) {
	defer close(tickets)
	for k := uint64(0); ; k++ {
		if g.maxReq > 0 && k >= g.maxReq {
			return
		}
		sched := int64(float64(k) * g.interval)
		if g.deadline > 0 && sched >= g.deadline {
			return
		}
		for {
			d := time.Duration(sched - g.now())
			if d <= 0 {
				break
			}
			if d > 3*time.Millisecond {
				select {
				case <-stop:
					return
				case <-time.After(d - 2*time.Millisecond):
				}
				continue
			}
			// Go parks an idle process in epoll_wait with a whole-millisecond timeout, so this can overshoot by up to 1 ms when
			// nothing else is happening; under load, network events wake the scheduler far more often. Tickets that fell due
			// meanwhile go out together, still timed from their own schedule. (nanosleep on a locked thread was tried: it holds a
			// P in the syscall and made latency worse on 2 cores.)
			time.Sleep(d)
		}
		select {
		case tickets <- k:
		case <-stop:
			return
		}
	}
}

// retryAfter is how long to wait after the current answer: Retry-After of a 503, capped by Config.Backoff.
func (w *worker) retryAfter() time.Duration {
	if w.resp.StatusCode() != fasthttp.StatusServiceUnavailable || w.g.cfg.Backoff < 0 {
		return 0
	}
	d := time.Second
	if n := parseNum(w.resp.Header.Peek(fasthttp.HeaderRetryAfter), nil); n >= 0 {
		d = time.Duration(n) * time.Second
	}
	return min(d, w.g.cfg.Backoff)
}

// Run sends the configured traffic and returns what it measured. Cancelling ctx ends the run early; the result covers what was sent.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	c := &cfg
	if err := c.normalize(); err != nil {
		return nil, err
	}
	addr, base, err := target(c.URL)
	if err != nil {
		return nil, err
	}
	g := &group{cfg: c, base: base}
	g.client = &fasthttp.HostClient{
		Addr:                          addr,
		MaxConns:                      c.Conns,
		MaxConnWaitTimeout:            c.Timeout,
		ReadTimeout:                   c.Timeout,
		WriteTimeout:                  c.Timeout,
		MaxIdemponentCallAttempts:     1, // never resend: a retried pixel would be a second event
		ReadBufferSize:                8192,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		MaxIdleConnDuration:           time.Minute,
	}
	g.idsLeft.Store(TrackedRangesMax)
	per := uint64(max(c.EventsPerRequest(), 1))
	if c.Count > 0 {
		g.maxReq = (uint64(c.Count) + per - 1) / per
	}
	if c.Rate > 0 {
		g.interval = float64(time.Second) / c.Rate
	}
	workers := make([]*worker, c.Conns)
	for i := range workers {
		workers[i] = newWorker(g, i)
	}
	// Warm the connections so dialing is not part of the first second's latency.
	var warm sync.WaitGroup
	for range min(c.Conns, 256) {
		warm.Add(1)
		go func() {
			defer warm.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI(base + "/healthz")
			_ = g.client.Do(req, resp)
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		}()
	}
	warm.Wait()

	g.epoch = time.Now()
	if c.Duration > 0 {
		g.deadline = int64(c.Duration)
	}
	var tickets chan uint64
	stopPacer := make(chan struct{})
	if c.Rate > 0 {
		tickets = make(chan uint64, 4*c.Conns)
		go g.pace(tickets, stopPacer)
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go w.run(&wg, tickets)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		progress(ctx, g, workers, done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		g.stop.Store(true)
		close(stopPacer)
		<-done
	}
	elapsed := time.Since(g.epoch)
	<-progressDone
	g.client.CloseIdleConnections()

	res := &Result{
		Mode: c.Mode, URL: c.URL, Conns: c.Conns, Rate: c.Rate, Batch: c.EventsPerRequest(), Prefix: RunPrefix(c.Run),
		Start: g.epoch, Elapsed: elapsed, Status: map[int]uint64{},
		Latency: &Histogram{}, Service: &Histogram{}, IDsTruncated: g.trunc.Load(),
	}
	for _, w := range workers {
		res.Requests += w.reqs.Load()
		res.Events += w.events
		res.Acked += w.acked.Load()
		res.Refused += w.refused.Load()
		res.Unknown += w.unknown
		res.NetErrors += w.netErr
		res.Late += w.late
		res.Latency.Merge(&w.lat)
		res.Service.Merge(&w.svc)
		for code, n := range w.status {
			if n > 0 {
				res.Status[code] += n
			}
		}
		res.RefusedIDs = append(res.RefusedIDs, w.refIDs...)
		res.UnknownIDs = append(res.UnknownIDs, w.unkIDs...)
		fasthttp.ReleaseRequest(w.req)
		fasthttp.ReleaseResponse(w.resp)
	}
	return res, nil
}

// progress prints one line per second (progressLine): rates, refusals and latency percentiles of that second.
func progress(ctx context.Context, g *group, workers []*worker, done <-chan struct{}) {
	out := g.cfg.Progress
	if out == nil {
		<-done
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var prev, cur Histogram
	var prevReqs, prevAcked, prevRefused, prevNoAnswer uint64
	last := time.Now()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case now := <-t.C:
			cur.Reset()
			var reqs, acked, refused, noAnswer uint64
			for _, w := range workers {
				cur.Merge(&w.lat)
				reqs += w.reqs.Load()
				acked += w.acked.Load()
				refused += w.refused.Load()
				noAnswer += w.noAnswer.Load()
			}
			snap := cur
			cur.Sub(&prev)
			prev = snap
			dt := now.Sub(last).Seconds()
			last = now
			fmt.Fprint(out, progressLine(time.Since(g.epoch), float64(reqs-prevReqs)/dt, float64(acked-prevAcked)/dt,
				float64(refused-prevRefused)/dt, noAnswer-prevNoAnswer, cur.Percentile(50), cur.Percentile(99)))
			prevReqs, prevAcked, prevRefused, prevNoAnswer = reqs, acked, refused, noAnswer
		}
	}
}

// progressLine is one second of progress. It uses the summary's words: "refused" are events the server answered non-2xx (a 503
// when its queue is full: not stored, the loader pauses and sends new events), counted in events like "acked"; "no-answer" are
// requests that got no HTTP answer (their events may or may not be stored).
func progressLine(elapsed time.Duration, reqPerSec, ackedPerSec, refusedPerSec float64, noAnswer, p50, p99 uint64) string {
	return fmt.Sprintf("%5.0fs %10.0f req/s %11.0f acked ev/s %9.0f refused ev/s  no-answer %-4d p50 %s  p99 %s\n",
		elapsed.Seconds(), reqPerSec, ackedPerSec, refusedPerSec, noAnswer, fmtDur(p50), fmtDur(p99))
}

func fmtDur(ns uint64) string {
	switch {
	case ns < 1e6:
		return fmt.Sprintf("%.0fµs", float64(ns)/1e3)
	case ns < 1e9:
		return fmt.Sprintf("%.2fms", float64(ns)/1e6)
	}
	return fmt.Sprintf("%.2fs", float64(ns)/1e9)
}
