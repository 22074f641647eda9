package query

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/valyala/fasthttp"

	"github.com/fasthttp/router"
)

// Tolerances of the approximate figures.
//
// uniq keeps an exact hash set up to 65536 distinct values and samples beyond; ClickHouse documents its error as ~1-2 %. The data
// set's largest ad has ~70k distinct viewers, so both regimes are exercised; 2 % is the documented bound.
//
// quantilesTDigest (ClickHouse's t-digest, epsilon 0.01) bounds the error in rank, not in value: the estimate for q lies where the
// true CDF is within about ±1 % of q for a single digest. Our states are digests merged per minute and then across minutes and
// hours, which adds some rank error, so the check is |rank(estimate) - q| <= 2 %, plus one sample's worth of rank (1/n) because
// with few values the digest interpolates between neighbours. The measured worst case is logged (go test -v -run TestService).
const (
	uniqTolerance = 0.02
	rankTolerance = 0.02
)

// errStats collects the worst errors seen, for the log.
type errStats struct {
	mu              sync.Mutex
	uniq, rank      float64
	uniqAt, rankAt  string
	uniqChecks, rks int
}

func (e *errStats) note(uniq float64, uniqAt string, rank float64, rankAt string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if uniqAt != "" {
		e.uniqChecks++
		if uniq > e.uniq {
			e.uniq, e.uniqAt = uniq, uniqAt
		}
	}
	if rankAt != "" {
		e.rks++
		if rank > e.rank {
			e.rank, e.rankAt = rank, rankAt
		}
	}
}

// rankError returns how far the estimate v (ms) is from quantile q in rank terms over the sorted values.
func rankError(sorted []uint32, v float64, q float64) float64 {
	n := float64(len(sorted))
	below := float64(sort.Search(len(sorted), func(i int) bool { return float64(sorted[i]) >= v })) / n
	atOrBelow := float64(sort.Search(len(sorted), func(i int) bool { return float64(sorted[i]) > v })) / n
	switch {
	case q < below:
		return below - q
	case q > atOrBelow:
		return q - atOrBelow
	}
	return 0
}

// checkMetrics compares got with the figures computed from the events: counts and rates exactly, uniques and percentiles within
// the tolerances above.
func checkMetrics(t *testing.T, es *errStats, label string, got Metrics, w *want) {
	t.Helper()
	if w == nil {
		w = &want{}
	}
	c := w.counts
	exact := Metrics{
		Impressions: c[1], Clicks: c[2], Starts: c[3], FirstQuartile: c[4], Midpoint: c[5], ThirdQuartile: c[6], Completes: c[7],
	}
	if c[1] > 0 {
		exact.CTR = float64(c[2]) / float64(c[1])
	}
	if c[3] > 0 {
		exact.CompletionRate = float64(c[7]) / float64(c[3])
	}
	if len(w.playback) > 0 {
		exact.AvgPlaybackSeconds = float64(w.pbSum) / float64(len(w.playback)) / 1000
	}
	g := got
	g.UniqueViewers, g.P50PlaybackSeconds, g.P95PlaybackSeconds = 0, 0, 0
	// The generated traffic is valid and has no viewability events: no viewability rate, an IVT rate of 0 with impressions.
	if measured, impressed := g.RatesDefined(); measured || impressed && c[1] == 0 {
		t.Fatalf("%s: rates defined (viewability %v, ivt %v) for valid traffic without viewability events", label, measured, impressed)
	}
	g.measured, g.impressed = false, false
	if g != exact {
		t.Fatalf("%s: exact figures differ\n got  %+v\n want %+v", label, g, exact)
	}
	n := uint64(len(w.viewers))
	relErr := 0.0
	if n > 0 {
		relErr = math.Abs(float64(got.UniqueViewers)-float64(n)) / float64(n)
	} else if got.UniqueViewers != 0 {
		relErr = math.Inf(1)
	}
	if relErr > uniqTolerance {
		t.Fatalf("%s: unique_viewers %d, exact %d (error %.2f%% > %.0f%%)", label, got.UniqueViewers, n, relErr*100, uniqTolerance*100)
	}
	uniqAt := ""
	if n > 0 {
		uniqAt = fmt.Sprintf("%s (%d exact)", label, n)
	}
	if len(w.playback) == 0 {
		if got.P50PlaybackSeconds != 0 || got.P95PlaybackSeconds != 0 {
			t.Fatalf("%s: percentiles %v/%v without playback", label, got.P50PlaybackSeconds, got.P95PlaybackSeconds)
		}
		es.note(relErr, uniqAt, 0, "")
		return
	}
	worst := 0.0
	for _, qv := range []struct {
		q float64
		v float64
	}{{0.5, got.P50PlaybackSeconds}, {0.95, got.P95PlaybackSeconds}} {
		re := rankError(w.playback, qv.v*1000, qv.q)
		if re > rankTolerance+1/float64(len(w.playback)) {
			t.Fatalf("%s: p%.0f = %.3f s is %.2f%% off in rank over %d values (tolerance %.0f%%)",
				label, qv.q*100, qv.v, re*100, len(w.playback), rankTolerance*100)
		}
		worst = max(worst, re)
	}
	rankAt := ""
	if len(w.playback) >= 1000 { // the log reports the large sets, where the digest compresses; small ones are nearly exact
		rankAt = fmt.Sprintf("%s (%d values)", label, len(w.playback))
	}
	es.note(relErr, uniqAt, worst, rankAt)
}

// recorder wraps the real connection and keeps every SQL text the service sends.
type recorder struct {
	Querier
	mu  sync.Mutex
	sql []string
}

func (r *recorder) Query(ctx context.Context, q string, args ...any) (driver.Rows, error) {
	r.mu.Lock()
	r.sql = append(r.sql, q)
	r.mu.Unlock()
	return r.Querier.Query(ctx, q, args...)
}

var eventsTable = regexp.MustCompile(`(?i)\bevents\b`)

func TestService(t *testing.T) {
	db := openMigrated(t, 0)
	g := gen{seed: 5, n: 300_000, ads: []float64{40, 20, 15, 15, 9.99, 0.01}, pools: []int{400000, 40000, 5000, 20000, 1000, 50}, span: 52 * time.Hour}
	evs, batches := g.build(30_000)
	start := time.Now()
	insert(t, db, batches)
	t.Logf("inserted %d events in %d batches through the sink in %v", len(evs), len(batches), time.Since(start).Round(time.Millisecond))

	rec := &recorder{Querier: db.Conn}
	s := New(rec, db.Database)
	ctx := context.Background()
	es := &errStats{}
	h := func(d time.Duration) time.Time { return t0.Add(d) }
	const m, hr = time.Minute, time.Hour

	// Each range with the window the service must report after rounding outwards to whole minutes.
	ranges := []struct {
		name             string
		in, aligned      Range
		hourRollup, mins int // expected plan: whether the hour rollup answers, and how many minute spans
	}{
		{"all data, hour aligned", Range{h(0), h(52 * hr)}, Range{h(0), h(52 * hr)}, 1, 0},
		{"whole hours", Range{h(2 * hr), h(26 * hr)}, Range{h(2 * hr), h(26 * hr)}, 1, 0},
		{"unaligned minutes", Range{h(2*hr + 17*m), h(30*hr + 43*m)}, Range{h(2*hr + 17*m), h(30*hr + 43*m)}, 1, 2},
		{"start on the hour, end mid-hour", Range{h(3 * hr), h(7*hr + 5*m)}, Range{h(3 * hr), h(7*hr + 5*m)}, 1, 1},
		{"inside one hour", Range{h(5*hr + 10*m), h(5*hr + 50*m)}, Range{h(5*hr + 10*m), h(5*hr + 50*m)}, 0, 1},
		{"seconds round outwards", Range{h(1*hr + 30*time.Second), h(2*hr + 59*m + 10*time.Second)}, Range{h(1 * hr), h(3 * hr)}, 1, 0},
		{"across midnight", Range{h(23*hr + 59*m), h(24*hr + 1*m)}, Range{h(23*hr + 59*m), h(24*hr + 1*m)}, 0, 1},
		{"partly before the data", Range{h(-3 * hr), h(1*hr + 1*m)}, Range{h(-3 * hr), h(1*hr + 1*m)}, 1, 1},
		{"no data", Range{h(-30 * hr), h(-20 * hr)}, Range{h(-30 * hr), h(-20 * hr)}, 1, 0},
		{"two hours, edges in both", Range{h(9*hr + 59*m), h(11*hr + 1*m)}, Range{h(9*hr + 59*m), h(11*hr + 1*m)}, 1, 2},
	}
	checkRange := func(i int, topKeys []string) {
		rc := ranges[i]
		expected := sumByAd(evs, rc.aligned.From, rc.aligned.To)
		for ad := uint64(1); ad <= 7; ad++ { // 7 has no traffic at all
			got, err := s.Analytics(ctx, ad, rc.in)
			if err != nil {
				t.Fatalf("%s ad %d: %v", rc.name, ad, err)
			}
			if got.AdID != ad || !got.From.Equal(rc.aligned.From) || !got.To.Equal(rc.aligned.To) {
				t.Fatalf("%s ad %d: window %d %v..%v, want %v..%v", rc.name, ad, got.AdID, got.From, got.To, rc.aligned.From, rc.aligned.To)
			}
			checkMetrics(t, es, fmt.Sprintf("%s ad %d", rc.name, ad), got.Metrics, expected[ad])
		}
		// Top: the sort keys, a limit that cuts and one that does not.
		for _, key := range topKeys {
			for _, limit := range []int{3, MaxTopLimit} {
				top, err := s.Top(ctx, rc.in, key, limit)
				if err != nil {
					t.Fatalf("%s top %s: %v", rc.name, key, err)
				}
				checkTop(t, es, fmt.Sprintf("%s top by %s limit %d", rc.name, key, limit), top, expected, key, limit, rc.aligned)
				if stateSorts[key] {
					continue
				}
				// The default figures come from one query over the count columns: the same list, the same exact figures.
				def, err := s.TopFields(ctx, rc.in, key, limit, DefaultFields)
				if err != nil {
					t.Fatalf("%s top %s default fields: %v", rc.name, key, err)
				}
				if len(def) != len(top) {
					t.Fatalf("%s top by %s limit %d: %d ads with the default fields, %d with all", rc.name, key, limit, len(def), len(top))
				}
				for i := range def {
					if w := top[i]; def[i].AdID != w.AdID || !def[i].From.Equal(w.From) || !def[i].To.Equal(w.To) || def[i].Metrics != w.mask(DefaultFields) {
						t.Fatalf("%s top by %s limit %d item %d: default fields %+v, all %+v", rc.name, key, limit, i, def[i], w)
					}
				}
			}
		}
	}
	for i, rc := range ranges {
		p := planRange(rc.in.Align(), true)
		if (p.hours != nil) != (rc.hourRollup == 1) || len(p.minutes) != rc.mins {
			t.Fatalf("%s: plan %+v, want hour rollup %d and %d minute spans", rc.name, p, rc.hourRollup, rc.mins)
		}
		keys := []string{"clicks"}
		if i < 3 { // every sort key on the first ranges; the ranges differ in the plan, not in how a key sorts
			keys = SortKeys()
		}
		checkRange(i, keys)
	}

	series := []struct {
		ad   uint64
		r    Range
		iv   Interval
		n    int
		name string
	}{
		{1, Range{h(2*hr + 17*m), h(5*hr + 43*m)}, Minute, 206, "minutes"},
		{2, Range{h(2*hr + 17*m), h(30*hr + 43*m)}, Hour, 29, "hours with partial edges"},
		{3, Range{h(-24 * hr), h(72 * hr)}, Day, 4, "days around the data"},
		{3, Range{h(20*hr + 30*m), h(50*hr + 15*m)}, Day, 3, "days with partial edges"},
		{6, Range{h(0), h(52 * hr)}, Hour, 52, "sparse ad"},
		{6, Range{h(0), h(3 * hr)}, Minute, 180, "sparse ad by minute"},
		{7, Range{h(0), h(10 * hr)}, Hour, 10, "ad without traffic"},
		{4, Range{h(10*hr + 30*time.Second), h(11*hr + 59*m + 1*time.Second)}, Hour, 2, "seconds"},
	}
	checkSeries := func() {
		for _, sc := range series {
			got, err := s.Timeseries(ctx, sc.ad, sc.r, sc.iv)
			if err != nil {
				t.Fatalf("%s: %v", sc.name, err)
			}
			if got.AdID != sc.ad || got.Interval != sc.iv || len(got.Points) != sc.n || Buckets(sc.r, sc.iv) != sc.n {
				t.Fatalf("%s: ad %d %s, %d points (Buckets says %d), want %d", sc.name, got.AdID, got.Interval, len(got.Points), Buckets(sc.r, sc.iv), sc.n)
			}
			a := sc.r.Align()
			step := sc.iv.Duration()
			expected := sumByBucket(evs, sc.ad, a.From, a.To, step)
			zeros := 0
			for i, p := range got.Points {
				if wantT := a.From.Truncate(step).Add(time.Duration(i) * step); !p.T.Equal(wantT) {
					t.Fatalf("%s: point %d at %v, want %v", sc.name, i, p.T, wantT)
				}
				w := expected[p.T.Unix()]
				if w == nil {
					zeros++
				}
				checkMetrics(t, es, fmt.Sprintf("%s point %v", sc.name, p.T), p.Metrics, w)
				delete(expected, p.T.Unix())
			}
			if len(expected) != 0 {
				t.Fatalf("%s: %d buckets with events are missing from the series", sc.name, len(expected))
			}
			if (sc.ad == 6 || sc.ad == 7 || sc.iv == Day && sc.n == 4) && zeros == 0 {
				t.Fatalf("%s: expected zero-filled buckets, found none", sc.name)
			}
		}
	}
	checkSeries()
	t.Logf("worst unique_viewers error %.3f%% at %s (%d checks); worst percentile rank error over >= 1000 values %.3f%% at %s (%d checks)",
		es.uniq*100, es.uniqAt, es.uniqChecks, es.rank*100, es.rankAt, es.rks)

	// Through HTTP too: the handler reports what the service computes.
	r := router.New()
	s.Register(r)
	rc := ranges[2]
	status, body := get(r.Handler, fmt.Sprintf("/ads/analytics?fields=all&ad_id=2&start=%s&end=%s", rc.in.From.Format(time.RFC3339), rc.in.To.Format(time.RFC3339)))
	if status != 200 {
		t.Fatalf("GET /ads/analytics: %d %s", status, body)
	}
	var viaHTTP Stats
	if err := json.Unmarshal(body, &viaHTTP); err != nil {
		t.Fatal(err)
	}
	if viaHTTP.AdID != 2 || !viaHTTP.From.Equal(rc.aligned.From) || !viaHTTP.To.Equal(rc.aligned.To) {
		t.Fatalf("GET /ads/analytics: %s", body)
	}
	checkMetrics(t, es, "via HTTP", viaHTTP.Metrics, sumByAd(evs, rc.aligned.From, rc.aligned.To)[2])

	// The service reads only the rollups: no SQL text it sent names events, and with events emptied every answer is still right.
	for _, q := range rec.sql {
		if eventsTable.MatchString(q) {
			t.Fatalf("the service queried the events table:\n%s", q)
		}
	}
	if err := db.Conn.Exec(ctx, "TRUNCATE TABLE events"); err != nil {
		t.Fatal(err)
	}
	var left uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&left); err != nil || left != 0 {
		t.Fatalf("events not emptied: %d %v", left, err)
	}
	for i := range ranges[:4] {
		checkRange(i, []string{"clicks", "ctr"})
	}
	checkSeries()
}

// checkTop checks a top list: the ads with traffic, ordered by key (ties by id), cut at limit, each with exact figures.
func checkTop(t *testing.T, es *errStats, label string, got []Stats, expected map[uint64]*want, key string, limit int, win Range) {
	t.Helper()
	ids := make([]uint64, 0, len(expected))
	for id := range expected {
		ids = append(ids, id)
	}
	// The expected order uses exact figures, except for the approximate keys, where it must be the order of the values the
	// service reported (they are checked against the exact ones below).
	val := func(id uint64) float64 {
		w := expected[id]
		c := w.counts
		switch key {
		case "impressions":
			return float64(c[1])
		case "clicks":
			return float64(c[2])
		case "ctr":
			if c[1] == 0 {
				return 0
			}
			return float64(c[2]) / float64(c[1])
		case "starts":
			return float64(c[3])
		case "first_quartile":
			return float64(c[4])
		case "midpoint":
			return float64(c[5])
		case "third_quartile":
			return float64(c[6])
		case "completes":
			return float64(c[7])
		case "completion_rate":
			if c[3] == 0 {
				return 0
			}
			return float64(c[7]) / float64(c[3])
		case "avg_playback_seconds":
			if len(w.playback) == 0 {
				return 0
			}
			return float64(w.pbSum) / float64(len(w.playback))
		}
		for _, s := range got {
			if s.AdID == id {
				switch key {
				case "unique_viewers":
					return float64(s.UniqueViewers)
				case "p50_playback_seconds":
					return s.P50PlaybackSeconds
				case "p95_playback_seconds":
					return s.P95PlaybackSeconds
				}
			}
		}
		return math.Inf(-1) // not returned: must sort after every returned ad
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := val(ids[i]), val(ids[j])
		if a != b {
			return a > b
		}
		return ids[i] < ids[j]
	})
	if len(ids) > limit {
		ids = ids[:limit]
	}
	if len(got) != len(ids) {
		t.Fatalf("%s: %d ads, want %d", label, len(got), len(ids))
	}
	for i, s := range got {
		if s.AdID != ids[i] {
			for _, id := range ids {
				t.Logf("expected ad %d value %v", id, val(id))
			}
			for _, s := range got {
				t.Logf("got ad %d %+v", s.AdID, s.Metrics)
			}
			t.Fatalf("%s: position %d is ad %d, want %d", label, i, s.AdID, ids[i])
		}
		if !s.From.Equal(win.From) || !s.To.Equal(win.To) {
			t.Fatalf("%s: window %v..%v", label, s.From, s.To)
		}
		checkMetrics(t, es, fmt.Sprintf("%s ad %d", label, s.AdID), s.Metrics, expected[s.AdID])
	}
}

// get runs one GET through h without a network and returns the status and body.
func get(h fasthttp.RequestHandler, uri string) (int, []byte) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(fasthttp.MethodGet)
	ctx.Request.SetRequestURI(uri)
	h(&ctx)
	return ctx.Response.StatusCode(), append([]byte(nil), ctx.Response.Body()...)
}
