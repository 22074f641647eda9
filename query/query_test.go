package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestAlign(t *testing.T) {
	f := func(from, to, wantFrom, wantTo string) {
		t.Helper()
		got := Range{at(from), at(to)}.Align()
		if !got.From.Equal(at(wantFrom)) || !got.To.Equal(at(wantTo)) || got.From.Location() != time.UTC {
			t.Fatalf("Align(%s, %s) = %v, %v; want %s, %s", from, to, got.From, got.To, wantFrom, wantTo)
		}
	}
	f("2025-04-21T10:00:00Z", "2025-04-21T11:00:00Z", "2025-04-21T10:00:00Z", "2025-04-21T11:00:00Z")
	f("2025-04-21T10:00:59Z", "2025-04-21T11:00:01Z", "2025-04-21T10:00:00Z", "2025-04-21T11:01:00Z")
	f("2025-04-21T12:30:30+02:00", "2025-04-21T12:45:00+02:00", "2025-04-21T10:30:00Z", "2025-04-21T10:45:00Z")
	f("2025-04-21T10:00:00.5Z", "2025-04-21T10:00:00.7Z", "2025-04-21T10:00:00Z", "2025-04-21T10:01:00Z")
}

func TestPlanRange(t *testing.T) {
	f := func(from, to string, useHours bool, want string) {
		t.Helper()
		p := planRange(Range{at(from), at(to)}, useHours)
		var parts []string
		if p.hours != nil {
			parts = append(parts, "h "+p.hours.from.Format("15:04")+"-"+p.hours.to.Format("15:04"))
		}
		for _, m := range p.minutes {
			parts = append(parts, "m "+m.from.Format("15:04")+"-"+m.to.Format("15:04"))
		}
		if got := strings.Join(parts, ", "); got != want {
			t.Fatalf("plan(%s, %s, %v) = %s, want %s", from, to, useHours, got, want)
		}
	}
	f("2025-04-21T10:00:00Z", "2025-04-21T13:00:00Z", true, "h 10:00-13:00")
	f("2025-04-21T10:17:00Z", "2025-04-21T13:43:00Z", true, "h 11:00-13:00, m 10:17-11:00, m 13:00-13:43")
	f("2025-04-21T10:00:00Z", "2025-04-21T13:43:00Z", true, "h 10:00-13:00, m 13:00-13:43")
	f("2025-04-21T10:17:00Z", "2025-04-21T13:00:00Z", true, "h 11:00-13:00, m 10:17-11:00")
	f("2025-04-21T10:17:00Z", "2025-04-21T11:43:00Z", true, "m 10:17-11:43") // no whole hour inside
	f("2025-04-21T10:17:00Z", "2025-04-21T10:43:00Z", true, "m 10:17-10:43") //
	f("2025-04-21T10:17:00Z", "2025-04-21T12:00:00Z", true, "h 11:00-12:00, m 10:17-11:00")
	f("2025-04-21T10:00:00Z", "2025-04-21T13:00:00Z", false, "m 10:00-13:00") // minute buckets
}

func TestBuckets(t *testing.T) {
	f := func(from, to string, iv Interval, want int) {
		t.Helper()
		if got := Buckets(Range{at(from), at(to)}, iv); got != want {
			t.Fatalf("Buckets(%s, %s, %s) = %d, want %d", from, to, iv, got, want)
		}
	}
	f("2025-04-21T10:00:00Z", "2025-04-21T11:00:00Z", Minute, 60)
	f("2025-04-21T10:00:30Z", "2025-04-21T11:00:00Z", Minute, 60)
	f("2025-04-21T10:00:30Z", "2025-04-21T11:00:01Z", Minute, 61)
	f("2025-04-21T10:30:00Z", "2025-04-21T12:00:00Z", Hour, 2)
	f("2025-04-21T10:30:00Z", "2025-04-21T12:00:01Z", Hour, 3)
	f("2025-04-20T23:00:00Z", "2025-04-22T01:00:00Z", Day, 3)
	f("2025-04-21T00:00:00Z", "2025-04-22T00:00:00Z", Day, 1)
	f("2025-04-21T00:00:00Z", "2025-04-22T00:00:00Z", "week", 0)
}

// sqlCatcher records the SQL and arguments and fails the query, so the service's text can be inspected without a server. With
// ids set, Top's first query (the ranking over counts) is recorded in rank/rankArgs and answered with ids, so its second query is
// sent and caught too.
type sqlCatcher struct {
	sql      string
	args     []any
	ids      []uint64
	rank     string
	rankArgs []any
}

var errCaught = errors.New("caught")

func (c *sqlCatcher) Query(_ context.Context, q string, args ...any) (driver.Rows, error) {
	if c.ids != nil && strings.HasPrefix(q, "SELECT ad_id FROM (") {
		c.rank, c.rankArgs = q, args
		return &idRows{ids: c.ids, i: -1}, nil
	}
	c.sql, c.args = q, args
	return nil, errCaught
}

// idRows answers the ranking query with fixed ad ids.
type idRows struct {
	driver.Rows // not implemented: only what Top calls is
	ids         []uint64
	i           int
}

func (r *idRows) Next() bool { r.i++; return r.i < len(r.ids) }
func (r *idRows) Scan(dest ...any) error {
	*dest[0].(*uint64) = r.ids[r.i]
	return nil
}
func (r *idRows) Close() error { return nil }
func (r *idRows) Err() error   { return nil }

// TestSQLIsBoundAndReadsRollups: every value is a bound argument (as many ? as arguments, and no request text in the SQL), the
// tables are the rollups, and events never appears.
func TestSQLIsBoundAndReadsRollups(t *testing.T) {
	c := &sqlCatcher{}
	s := New(c, "analytics`db")
	r := Range{at("2025-04-21T10:17:00Z"), at("2025-04-21T13:43:00Z")}
	check := func(what string, wantArgs int) {
		t.Helper()
		if eventsTable.MatchString(c.sql) {
			t.Fatalf("%s reads events:\n%s", what, c.sql)
		}
		if n := strings.Count(c.sql, "?"); n != len(c.args) || n != wantArgs {
			t.Fatalf("%s: %d placeholders, %d arguments, want %d:\n%s", what, n, len(c.args), wantArgs, c.sql)
		}
		if !strings.Contains(c.sql, "`analytics\\`db`.ad_stats_minute") {
			t.Fatalf("%s: database not quoted:\n%s", what, c.sql)
		}
		for _, a := range c.args {
			switch a.(type) {
			case int64, uint64, int:
			default:
				t.Fatalf("%s: argument %T %v", what, a, a)
			}
		}
	}
	ctx := context.Background()
	if _, err := s.Analytics(ctx, 42, r); !errors.Is(err, errCaught) {
		t.Fatal(err)
	}
	check("analytics", 2+1+4+1) // hour: ad + span; minute: ad + two spans
	// A count order: the first query ranks over the count columns alone, the second reads the states of the ads it picked.
	c.ids = []uint64{7, 3, 9}
	if _, err := s.Top(ctx, r, "ctr", 10); !errors.Is(err, errCaught) {
		t.Fatal(err)
	}
	const ctrOrder = "ORDER BY if(n_impressions = 0, 0, n_clicks / n_impressions) DESC, ad_id ASC LIMIT ?"
	if strings.Count(c.rank, "?") != len(c.rankArgs) || len(c.rankArgs) != 2+4+1 || c.rankArgs[len(c.rankArgs)-1] != 10 ||
		!strings.Contains(c.rank, ctrOrder) || strings.Contains(c.rank, "viewers") || strings.Contains(c.rank, "quantiles") {
		t.Fatalf("top ranking query reads states or is not bound (%v):\n%s", c.rankArgs, c.rank)
	}
	// Spans, the three ids in each part, and the limit.
	check("top", 2+4+2*3+1)
	if strings.Count(c.sql, "ad_id IN (?, ?, ?)") != 2 || strings.Count(c.sql, ctrOrder) != 1 || c.args[2] != uint64(7) {
		t.Fatalf("top states query (%v):\n%s", c.args, c.sql)
	}
	// No ad in the window: no second query.
	c.ids, c.sql = []uint64{}, ""
	if top, err := s.Top(ctx, r, "clicks", 10); err != nil || len(top) != 0 || top == nil || c.sql != "" {
		t.Fatalf("top without ads: %v %v, sent %q", top, err, c.sql)
	}
	c.ids = nil
	// Ranking by an approximate figure needs every ad's states: one pass.
	if _, err := s.Top(ctx, r, "unique_viewers", 10); !errors.Is(err, errCaught) {
		t.Fatal(err)
	}
	check("top by uniques", 2+4+1)
	if strings.Contains(c.sql, " IN ") {
		t.Fatalf("top by uniques pre-selects ads:\n%s", c.sql)
	}
	for _, iv := range []Interval{Minute, Hour, Day} {
		if _, err := s.Timeseries(ctx, 42, r, iv); !errors.Is(err, errCaught) {
			t.Fatal(err)
		}
		if iv == Minute {
			check("timeseries "+string(iv), 3)
			if strings.Contains(c.sql, "ad_stats_hour") {
				t.Fatalf("minute buckets read the hour rollup:\n%s", c.sql)
			}
		} else {
			check("timeseries "+string(iv), 8)
		}
	}
	if _, err := s.Top(ctx, r, "ctr; DROP TABLE events", 10); err == nil || !strings.Contains(err.Error(), "sort") {
		t.Fatalf("unknown sort: %v", err)
	}
}

// BenchmarkBuildSQL measures assembling a query (the per-request work outside ClickHouse).
func BenchmarkBuildSQL(b *testing.B) {
	c := &sqlCatcher{}
	s := New(c, "adtracker")
	r := Range{at("2025-04-21T10:17:00Z"), at("2025-04-21T13:43:00Z")}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Analytics(ctx, 42, r); !errors.Is(err, errCaught) {
			b.Fatal(err)
		}
	}
}

// TestAPIQueriesCommitted keeps docs/queries/api/ equal to the SQL the service sends for representative requests, with the bound
// values written in, so scripts/chdb-check.sh runs the API's queries on a current engine too (the other tests run them on 18.16).
// -update rewrites the files.
func TestAPIQueriesCommitted(t *testing.T) {
	const dir = "../docs/queries/api"
	c := &sqlCatcher{ids: []uint64{1, 2, 3}}
	s := New(c, "")
	ctx := context.Background()
	r := Range{t0.Add(2*time.Hour + 17*time.Minute), t0.Add(30*time.Hour + 43*time.Minute)}
	cases := []struct {
		file string
		run  func() error
	}{
		{"analytics.sql", func() error { _, err := s.Analytics(ctx, 1, r); return err }},
		{"top-by-clicks.sql", func() error { _, err := s.Top(ctx, r, "clicks", 100); return err }},
		{"top-by-unique-viewers.sql", func() error { _, err := s.Top(ctx, r, "unique_viewers", 100); return err }},
		{"timeseries-minute.sql", func() error {
			_, err := s.Timeseries(ctx, 1, Range{r.From, r.From.Add(3 * time.Hour)}, Minute)
			return err
		}},
		{"timeseries-hour.sql", func() error { _, err := s.Timeseries(ctx, 1, r, Hour); return err }},
		{"timeseries-day.sql", func() error { _, err := s.Timeseries(ctx, 1, r, Day); return err }},
		{"breakdown-country.sql", func() error { _, err := s.BreakdownOf(ctx, 1, r, Country, 0); return err }},
		{"top-breakdowns-ivt.sql", func() error { _, err := s.TopBreakdowns(ctx, []uint64{1, 2, 3}, r, IVT, 0); return err }},
	}
	want := map[string]string{}
	for _, tc := range cases {
		// The catcher fails every query after recording it; any other error means the SQL was never sent.
		if err := tc.run(); !errors.Is(err, errCaught) {
			t.Fatalf("%s: %v", tc.file, err)
		}
		var sql strings.Builder
		bind := func(q string, args []any) {
			i := 0
			for _, ch := range q {
				if ch == '?' {
					if str, ok := args[i].(string); ok { // the driver binds strings quoted
						fmt.Fprintf(&sql, "'%s'", strings.ReplaceAll(str, "'", "\\'"))
					} else {
						fmt.Fprint(&sql, args[i])
					}
					i++
					continue
				}
				sql.WriteRune(ch)
			}
			sql.WriteString(";\n")
		}
		// Top by a count sends two queries: the ranking (answered here with ads 1, 2, 3), then the states of those ads.
		if c.rank != "" {
			bind(c.rank, c.rankArgs)
			c.rank, c.rankArgs = "", nil
		}
		bind(c.sql, c.args)
		want[tc.file] = "-- Generated by query/query_test.go: the SQL query.Service sends, bound values written in. Do not edit;\n" +
			"-- go test ./query -run TestAPIQueriesCommitted -update rewrites it.\n" + sql.String()
	}
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, body := range want {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	have, _ := filepath.Glob(filepath.Join(dir, "*.sql"))
	if len(have) != len(want) {
		t.Errorf("%s has %d files, want %d (-update rewrites it)", dir, len(have), len(want))
	}
	for name, body := range want {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(b) != body {
			t.Errorf("%s/%s is missing or stale (go test ./query -run TestAPIQueriesCommitted -update rewrites it)", dir, name)
		}
	}
}

func TestParseFields(t *testing.T) {
	f := func(in string, want Fields) {
		t.Helper()
		got, err := ParseFields(in)
		if err != nil || got != want {
			t.Fatalf("ParseFields(%q) = %v (%s), %v; want %v (%s)", in, got, got, err, want, want)
		}
	}
	bad := func(in, culprit string) {
		t.Helper()
		_, err := ParseFields(in)
		pe, ok := errParam(err)
		if !ok || pe.Field != "fields" || !strings.Contains(pe.Msg, fmt.Sprintf("%q", culprit)) {
			t.Fatalf("ParseFields(%q) = %v, want a fields error naming %q", in, err, culprit)
		}
	}
	f("clicks", 1<<1)
	f("clicks,impressions", 1<<0|1<<1)
	f("unique_viewers", FieldUniqueViewers)
	f("p50_playback_seconds,p95_playback_seconds", FieldP50Playback|FieldP95Playback)
	f("all", AllFields)
	f("default", DefaultFields)
	f("default,unique_viewers", DefaultFields|FieldUniqueViewers)
	f("clicks,clicks", 1<<1)
	bad("", "")
	bad("clicks,", "")
	bad("viewers", "viewers")
	bad("Clicks", "Clicks")
	bad("clicks, ctr", " ctr")
	if DefaultFields.String() != "impressions,clicks,ctr,starts,first_quartile,midpoint,third_quartile,completes,completion_rate,avg_playback_seconds,"+
		"viewable_impressions,measurable_impressions,viewability_rate,invalid_impressions,invalid_clicks,ivt_rate" {
		t.Fatalf("DefaultFields = %s", DefaultFields)
	}
	if len(FieldNames()) != len(SortKeys()) {
		t.Fatalf("%d fields, %d sort keys: every figure should be both", len(FieldNames()), len(SortKeys()))
	}
	for _, k := range SortKeys() {
		if _, ok := Field(k); !ok {
			t.Fatalf("sort key %s is not a field", k)
		}
	}
	if WithSort(0, "") != DefaultFields || WithSort(1<<1, "unique_viewers") != 1<<1|FieldUniqueViewers || WithSort(DefaultFields, "ctr") != DefaultFields {
		t.Fatal("WithSort")
	}
}

// TestFieldsSQL: a uniq or t-digest state column is named in the SQL only when a figure that needs it was asked for; a top list
// without state figures is one query over the count columns.
func TestFieldsSQL(t *testing.T) {
	c := &sqlCatcher{ids: []uint64{7, 3}}
	s := New(c, "")
	ctx := context.Background()
	r := Range{at("2025-04-21T10:17:00Z"), at("2025-04-21T13:43:00Z")}
	f := func(what string, run func() error, viewers, quantiles, twoQueries bool) {
		t.Helper()
		c.sql, c.rank = "", ""
		if err := run(); !errors.Is(err, errCaught) {
			t.Fatalf("%s: %v", what, err)
		}
		if strings.Contains(c.sql, "viewers") != viewers || strings.Contains(c.sql, "playback_ms_quantiles") != quantiles {
			t.Fatalf("%s: want viewers %v, quantiles %v in:\n%s", what, viewers, quantiles, c.sql)
		}
		if (c.rank != "") != twoQueries || strings.Contains(c.rank, "viewers") || strings.Contains(c.rank, "quantiles") {
			t.Fatalf("%s: ranking query %q, want one: %v", what, c.rank, twoQueries)
		}
		if strings.Count(c.sql, "?") != len(c.args) {
			t.Fatalf("%s: %d placeholders, %d arguments:\n%s", what, strings.Count(c.sql, "?"), len(c.args), c.sql)
		}
	}
	p95, _ := Field("p95_playback_seconds")
	for _, fc := range []struct {
		name               string
		f                  Fields
		viewers, quantiles bool
	}{
		{"zero", 0, false, false},
		{"default", DefaultFields, false, false},
		{"clicks", 1 << 1, false, false},
		{"uniques", FieldUniqueViewers, true, false},
		{"p95", p95, false, true},
		{"all", AllFields, true, true},
	} {
		f("analytics "+fc.name, func() error { _, err := s.AnalyticsFields(ctx, 1, r, fc.f); return err }, fc.viewers, fc.quantiles, false)
		f("timeseries "+fc.name, func() error { _, err := s.TimeseriesFields(ctx, 1, r, Hour, fc.f); return err }, fc.viewers, fc.quantiles, false)
		states := fc.viewers || fc.quantiles
		f("top by clicks "+fc.name, func() error { _, err := s.TopFields(ctx, r, "clicks", 10, fc.f); return err }, fc.viewers, fc.quantiles, states)
		// Sorting by a state figure reads that state, asked for or not, in one pass.
		f("top by uniques "+fc.name, func() error { _, err := s.TopFields(ctx, r, "unique_viewers", 10, fc.f); return err }, true, fc.quantiles, false)
		f("top by p95 "+fc.name, func() error { _, err := s.TopFields(ctx, r, "p95_playback_seconds", 10, fc.f); return err }, fc.viewers, true, false)
	}
	// Without states the list is the ranking query itself: ordered and limited in ClickHouse.
	c.sql = ""
	if _, err := s.TopFields(ctx, r, "ctr", 10, DefaultFields); !errors.Is(err, errCaught) {
		t.Fatal(err)
	}
	if !strings.Contains(c.sql, "ORDER BY if(n_impressions = 0, 0, n_clicks / n_impressions) DESC, ad_id ASC LIMIT ?") || c.args[len(c.args)-1] != 10 {
		t.Fatalf("top by ctr, default fields:\n%s", c.sql)
	}
}

// TestFieldsJSON: every figure lands under its own name (the bit order of Fields is the JSON order of Metrics), a figure asked for
// is present even when 0, and one not asked for is absent.
func TestFieldsJSON(t *testing.T) {
	st := Stats{AdID: 9, From: at("2025-04-21T10:00:00Z"), To: at("2025-04-21T11:00:00Z"), Metrics: Metrics{
		Impressions: 1, Clicks: 2, CTR: 3, UniqueViewers: 4, Starts: 5, FirstQuartile: 6, Midpoint: 7, ThirdQuartile: 8, Completes: 9,
		CompletionRate: 10, AvgPlaybackSeconds: 11, P50PlaybackSeconds: 12, P95PlaybackSeconds: 13, ViewableImpressions: 14,
		MeasurableImpressions: 15, ViewabilityRate: 16, InvalidImpressions: 17, InvalidClicks: 18, IVTRate: 19, measured: true, impressed: true}}
	full, _ := json.Marshal(st)
	got, _ := json.Marshal(statsView(&st, AllFields))
	if string(got) != string(full) {
		t.Fatalf("all fields:\n got %s\nwant %s", got, full)
	}
	var m map[string]any
	for i, name := range FieldNames() {
		b, _ := json.Marshal(statsView(&st, 1<<i))
		m = nil
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if len(m) != 4 || m[name] != float64(i+1) {
			t.Fatalf("field %s alone: %s", name, b)
		}
	}
	zero := Stats{AdID: 9}
	b, _ := json.Marshal(statsView(&zero, FieldUniqueViewers|1<<1))
	if !strings.HasSuffix(string(b), `"clicks":0,"unique_viewers":0}`) || strings.Contains(string(b), "impressions") {
		t.Fatalf("zeros asked for: %s", b)
	}
	if (Metrics{Clicks: 5, UniqueViewers: 6, P50PlaybackSeconds: 1}).mask(1<<1) != (Metrics{Clicks: 5}) {
		t.Fatal("mask")
	}
	// A rate without a denominator is null, not 0, when asked for.
	b, _ = json.Marshal(statsView(&zero, Fields(1<<15|1<<18)))
	if !strings.HasSuffix(string(b), `"viewability_rate":null,"ivt_rate":null}`) {
		t.Fatalf("rates without a denominator: %s", b)
	}
}
