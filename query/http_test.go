package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/catalog"
	"github.com/adtracker/adtracker/ingest"
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/testenv"
	chstore "github.com/adtracker/adtracker/storage/clickhouse"
	"github.com/adtracker/adtracker/storage/postgres"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// failQuerier answers every query with err; with err nil it fails the test, for requests that must be refused before any query.
type failQuerier struct {
	t   *testing.T
	err error
}

func (f failQuerier) Query(_ context.Context, q string, _ ...any) (driver.Rows, error) {
	if f.err == nil {
		f.t.Fatalf("a request that should have been refused reached ClickHouse: %s", q)
	}
	return nil, f.err
}

type apiError struct {
	Error string `json:"error"`
	Field string `json:"field"`
}

// sqlRecorder keeps the SQL of every query and answers it with an error (the handler then answers 5xx; the SQL is what is tested).
type sqlRecorder struct{ sql *[]string }

func (r sqlRecorder) Query(_ context.Context, q string, _ ...any) (driver.Rows, error) {
	*r.sql = append(*r.sql, q)
	return nil, errors.New("recorded")
}

// Without start and end a request covers whole hours, so it reads the hour rollup only; a window with ragged minutes at its ends
// also reads the minute rollup for them (docs/sql.md: those edges were most of a default top list's time).
func TestDefaultWindowReadsHoursOnly(t *testing.T) {
	now := time.Date(2025, 4, 21, 15, 37, 12, 0, time.UTC)
	var sql []string
	s := &Service{DB: sqlRecorder{&sql}, Now: func() time.Time { return now }}
	r := router.New()
	s.Register(r)
	f := func(uri string, minutes bool) {
		t.Helper()
		sql = sql[:0]
		get(r.Handler, uri)
		all := strings.Join(sql, "\n")
		if len(sql) == 0 || !strings.Contains(all, "ad_stats_hour") || strings.Contains(all, "ad_stats_minute") != minutes {
			t.Fatalf("GET %s: want the hour rollup and the minute rollup %v; SQL:\n%s", uri, minutes, all)
		}
	}
	for _, q := range []string{"", "?fields=all", "?sort=ctr&limit=10", "?ad_id=3"} {
		f("/ads/analytics"+q, false)
	}
	f("/ads/3/timeseries?interval=hour", false)
	f("/ads/analytics?start=2025-04-20T15:37:00Z", true) // end defaults to now: a ragged last hour
	f("/ads/analytics?start=2025-04-20T15:37:00Z&end=2025-04-21T15:37:00Z", true)
	f("/ads/analytics?start=2025-04-20T16:00:00Z&end=2025-04-21T16:00:00Z", false) // what the default asks
}

// A '+' typed unescaped into a URL's time offset arrives as a space and is read as the '+' it was; a space anywhere else is
// still refused.
func TestTimeOffsetSpaceIsPlus(t *testing.T) {
	now := time.Date(2025, 4, 21, 15, 0, 0, 0, time.UTC)
	s := &Service{Now: func() time.Time { return now }}
	var args fasthttp.Args
	args.Parse("start=2025-04-21T12:00:00+02:00&end=2025-04-21T13:30:00.5+02:00") // Parse decodes '+' to ' ', as for a request
	if got := string(args.Peek("start")); got != "2025-04-21T12:00:00 02:00" {
		t.Fatalf("the query string gave %q: the test no longer shows the space", got)
	}
	r, err := s.parseRange(&args)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Range{time.Date(2025, 4, 21, 10, 0, 0, 0, time.UTC), time.Date(2025, 4, 21, 11, 30, 0, 5e8, time.UTC)}); r != want {
		t.Fatalf("range %v, want %v", r, want)
	}
	for _, v := range []string{"2025-04-21 12:00:00Z", "2025-04-21T12:00:00 0200", "2025-04-21T12:00:00  02:00", " 02:00"} {
		if _, err := parseTime(v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

func TestBadParams(t *testing.T) {
	now := time.Date(2025, 4, 21, 15, 0, 0, 0, time.UTC)
	s := &Service{DB: failQuerier{t: t}, Now: func() time.Time { return now }}
	r := router.New()
	s.Register(r)
	f := func(uri, field string) {
		t.Helper()
		status, body := get(r.Handler, uri)
		var e apiError
		if status != 400 || json.Unmarshal(body, &e) != nil || e.Field != field || e.Error == "" {
			t.Fatalf("GET %s = %d %s, want 400 naming %q", uri, status, body, field)
		}
	}
	const a = "/ads/analytics?"
	f(a+"start=yesterday", "start")
	f(a+"start=2025-04-21", "start")
	f(a+"start=2025-04-21T10:00:00", "start") // no zone
	f(a+"end=2025-13-01T00:00:00Z", "end")
	f(a+"start=2025-04-21T10:00:00Z&end=2025-04-21T10:00:00Z", "end") // empty window
	f(a+"start=2025-04-21T11:00:00Z&end=2025-04-21T10:00:00Z", "end") // reversed
	f(a+"start=2025-04-22T00:00:00Z", "end")                          // start after now, end defaults to now
	f(a+"start=2024-03-16T00:00:00Z&end=2025-04-20T00:00:01Z", "end") // 400 days and a second
	f(a+"ad_id=abc", "ad_id")
	f(a+"ad_id=0", "ad_id")
	f(a+"ad_id=-3", "ad_id")
	f(a+"ad_id=", "ad_id")
	f(a+"ad_id=1.5", "ad_id")
	f(a+"ad_id=+7", "ad_id")
	f(a+"ad_id=9223372036854775808", "ad_id") // beyond bigint
	f(a+"sort=name", "sort")
	f(a+"sort=", "sort")
	f(a+"limit=0", "limit")
	f(a+"limit=1001", "limit")
	f(a+"limit=ten", "limit")
	f(a+"ad_id=1&sort=bogus", "sort") // checked even though ad_id makes it unused
	f(a+"fields=viewers", "fields")
	f(a+"fields=", "fields")
	f(a+"fields=clicks,", "fields")
	f(a+"fields=all,bogus", "fields")
	f(a+"fields=clicks&fields=nope", "fields") // every occurrence is read
	f(a+"ad_id=1&fields=CTR", "fields")
	const ts = "/ads/1/timeseries?"
	f("/ads/abc/timeseries", "id")
	f("/ads/0/timeseries", "id")
	f("/ads/18446744073709551615/timeseries", "id")
	f(ts+"interval=week", "interval")
	f(ts+"interval=Hour", "interval")
	f(ts+"start=2025-04-10T00:00:00Z&end=2025-04-17T00:00:00Z&interval=minute", "interval") // 10080 points
	f(ts+"start=2024-01-01T00:00:00Z&end=2025-04-01T00:00:00Z&interval=hour", "end")        // > 400 days
	f(ts+"start=2025-04-21T14:00:00Z&end=now", "end")
	f(ts+"start=2025-04-21T16:00:00Z", "end")
	f(ts+"fields=p99_playback_seconds", "fields")
	f(ts+"fields=", "fields")
	// A name the route does not take is refused, not ignored (before, from= and to= were answered for the default window), and
	// so is a parameter given twice; fields may repeat (above), and "_" (a cache buster) passes.
	f(a+"from=2025-04-21T10:00:00Z&to=2025-04-21T11:00:00Z", "from")
	f(a+"ad_id=1&to=2025-04-21T11:00:00Z", "to")
	f(a+"limt=5", "limt")
	f(a+"=5", "")                    // an empty name: refused, no field to name
	f(a+"interval=hour", "interval") // a timeseries parameter
	f(a+"ad_id=1&ad_id=2", "ad_id")
	f(a+"limit=5&limit=6", "limit")
	f(a+"start=2025-04-21T10:00:00Z&start=2025-04-21T11:00:00Z", "start")
	f(ts+"sort=clicks", "sort")
	f(ts+"interval=hour&interval=day", "interval")
	f("/ads/1/breakdown?by=os&by=country", "by")
	f("/ads/1/breakdown?by=os&fields=all", "fields")
	f(a+strings.Repeat("x", 5000)+"=1", strings.Repeat("x", 64)+"…")
	if status, body := get(r.Handler, a+"from=2025-04-21T10:00:00Z"); status != 400 ||
		!strings.Contains(string(body), `unknown parameter \"from\": this route takes ad_id, start, end,`) {
		t.Fatalf("unknown parameter: %d %s", status, body)
	}
	down := &Service{DB: failQuerier{t: t, err: errors.New("down")}, Now: s.Now}
	rd := router.New()
	down.Register(rd)
	if status, body := get(rd.Handler, a+"ad_id=1&fields=clicks&fields=ctr&_=1712345678901"); status != 503 {
		t.Fatalf("a valid request with a cache buster: %d %s, want it to reach the (failing) database", status, body)
	}
	// The message names the culprit.
	if status, body := get(r.Handler, a+"fields=clicks,viewers"); status != 400 || !strings.Contains(string(body), `unknown field \"viewers\"`) {
		t.Fatalf("unknown field: %d %s", status, body)
	}

	// The limits are the Service's fields.
	small := &Service{DB: failQuerier{t: t}, Now: s.Now, MaxRange: time.Hour, MaxPoints: 30}
	r2 := router.New()
	small.Register(r2)
	status, body := get(r2.Handler, a+"start=2025-04-21T10:00:00Z&end=2025-04-21T11:00:01Z")
	if status != 400 || !strings.Contains(string(body), `"field":"end"`) || !strings.Contains(string(body), "1h0m0s") {
		t.Fatalf("MaxRange 1h: %d %s", status, body)
	}
	status, body = get(r2.Handler, ts+"start=2025-04-21T10:00:00Z&end=2025-04-21T10:31:00Z&interval=minute")
	if status != 400 || !strings.Contains(string(body), `"field":"interval"`) {
		t.Fatalf("MaxPoints 30: %d %s", status, body)
	}
}

func TestDatabaseErrors(t *testing.T) {
	f := func(q Querier, status int, msg string) {
		t.Helper()
		s := &Service{DB: q, Timeout: 2 * time.Second}
		r := router.New()
		s.Register(r)
		for _, uri := range []string{"/ads/analytics?ad_id=1", "/ads/analytics", "/ads/1/timeseries?interval=hour"} {
			got, body := get(r.Handler, uri)
			var e apiError
			if got != status || json.Unmarshal(body, &e) != nil || e.Error != msg {
				t.Fatalf("GET %s = %d %s, want %d %q", uri, got, body, status, msg)
			}
		}
	}
	// A real driver pointed at a port nothing listens on: ClickHouse down.
	dead, err := ch.Open(&ch.Options{Addr: []string{fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}, DialTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	f(dead, 503, errUnavailable)
	f(failQuerier{t: t, err: context.DeadlineExceeded}, 503, errUnavailable)
	f(failQuerier{t: t, err: &ch.Exception{Code: 60, Message: "Table adtracker.ad_stats_minute doesn't exist"}}, 503, errUnavailable)
	f(failQuerier{t: t, err: &ch.Exception{Code: 62, Message: "Syntax error"}}, 500, "analytics query failed")
	f(failQuerier{t: t, err: errors.New("connection reset by peer")}, 503, errUnavailable)
}

// fakeRepo is the catalogue's ads table for the router test: every ad exists.
type fakeRepo struct{ catalog.Repo }

func (fakeRepo) Get(_ context.Context, id int64) (postgres.Ad, error) {
	return postgres.Ad{ID: id, Name: "catalogue ad", Status: "active", Version: 1}, nil
}

// TestRoutesCoexist registers everything serve.go puts under /ads and checks each path reaches its own handler.
func TestRoutesCoexist(t *testing.T) {
	r := router.New()
	r.HandleMethodNotAllowed = true
	(&ingest.Handlers{}).Register(r)
	catalog.RegisterRoutes(r, &catalog.Handlers{Repo: fakeRepo{}})
	(&Service{DB: failQuerier{t: t}}).Register(r)
	f := func(uri string, status int, contains string) {
		t.Helper()
		got, body := get(r.Handler, uri)
		if got != status || !strings.Contains(string(body), contains) {
			t.Fatalf("GET %s = %d %s, want %d containing %q", uri, got, body, status, contains)
		}
	}
	f("/ads/5", 200, `"name":"catalogue ad"`)               // catalogue
	f("/ads/analytics?ad_id=x", 400, `"field":"ad_id"`)     // analytics, not the catalogue's /ads/{id}
	f("/ads/5/timeseries?interval=year", 400, `"interval"`) // timeseries
	f("/ads/click", 405, "POST")                            // ingest's guard
	f("/ads/impression", 405, "POST")                       //
	f("/ads/analytics/extra", 404, "")                      // nothing registered there
	f("/ads/abc/timeseries", 400, `"field":"id"`)           //
	f("/ads/analytics?start=2020-01-01T00:00:00Z", 400, "") // range too long: still ours
}

// goldenDB holds a small data set inserted in one batch: one part per rollup, so even the t-digest percentiles are reproducible.
func goldenDB(t *testing.T) (*chstore.DB, []ev) {
	t.Helper()
	db := openMigrated(t, 0)
	g := gen{seed: 77, n: 3000, ads: []float64{3, 2, 1}, pools: []int{400, 200, 50}, span: 3 * time.Hour}
	evs, batches := g.build(1 << 20)
	insert(t, db, batches)
	return db, evs
}

func TestGolden(t *testing.T) {
	db, evs := goldenDB(t)
	s := New(db.Conn, db.Database)
	r := router.New()
	s.Register(r)
	at := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }
	f := func(name, uri string) {
		t.Helper()
		status, body := get(r.Handler, uri)
		if status != 200 {
			t.Fatalf("GET %s = %d %s", uri, status, body)
		}
		golden(t, name, body)
	}
	// Every figure (fields=all): what the API answered before fields existed, unchanged.
	f("analytics.golden.json", "/ads/analytics?fields=all&ad_id=1&start="+at(13*time.Minute)+"&end="+at(2*time.Hour+47*time.Minute))
	f("top.golden.json", "/ads/analytics?fields=all&sort=ctr&limit=2&start="+at(0)+"&end="+at(3*time.Hour))
	f("timeseries.golden.json", "/ads/2/timeseries?fields=all&interval=hour&start="+at(-time.Hour)+"&end="+at(3*time.Hour+30*time.Minute))
	// The defaults: the exact figures only. The same requests as above without fields.
	f("analytics-default.golden.json", "/ads/analytics?ad_id=1&start="+at(13*time.Minute)+"&end="+at(2*time.Hour+47*time.Minute))
	f("top-default.golden.json", "/ads/analytics?sort=ctr&limit=2&start="+at(0)+"&end="+at(3*time.Hour))
	f("timeseries-default.golden.json", "/ads/2/timeseries?interval=hour&start="+at(-time.Hour)+"&end="+at(3*time.Hour+30*time.Minute))
	// A selection, and a sort by a figure not selected: the list shows it.
	f("top-fields.golden.json", "/ads/analytics?fields=clicks,p50_playback_seconds&sort=unique_viewers&limit=2&start="+at(0)+"&end="+at(3*time.Hour))
	f("timeseries-fields.golden.json", "/ads/2/timeseries?fields=unique_viewers&interval=hour&start="+at(-time.Hour)+"&end="+at(3*time.Hour+30*time.Minute))

	// The golden numbers are the real ones: recompute the analytics file's counts from the events.
	var st Stats
	status, body := get(r.Handler, "/ads/analytics?fields=all&ad_id=1&start="+at(13*time.Minute)+"&end="+at(2*time.Hour+47*time.Minute))
	if status != 200 || json.Unmarshal(body, &st) != nil {
		t.Fatalf("%d %s", status, body)
	}
	checkMetrics(t, &errStats{}, "golden analytics", st.Metrics, sumByAd(evs, t0.Add(13*time.Minute), t0.Add(2*time.Hour+47*time.Minute))[1])
}

// golden compares got (indented, field order kept) with testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, got, "", "  "); err != nil {
		t.Fatalf("%s: %v in %s", name, err, got)
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("%s differs from the golden file (go test -run %s -update rewrites it):\n got %s\nwant %s", name, t.Name(), buf.Bytes(), want)
	}
}

// TestFreshness: an event stored a moment ago is in the default window (24 whole hours, the current one last) at once, because the
// window ends with the current hour and the views fill the rollups in the insert itself.
func TestFreshness(t *testing.T) {
	db := openMigrated(t, 0)
	var b event.Batch
	var e event.Event
	now := time.Now().UTC()
	for i, typ := range []event.Type{event.TypeImpression, event.TypeImpression, event.TypeClick} {
		e.Reset()
		e.ID[0], e.ID[6], e.ID[8] = byte(i+1), 0x40, 0x80
		e.Type, e.AdID, e.EventTime, e.ReceiveTime = typ, 42, now.Unix(), now.Unix()
		e.SetViewerID([]byte("fresh"))
		b.Append(&e)
	}
	if err := chstore.NewSink(db).Insert(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	r := router.New()
	New(db.Conn, db.Database).Register(r)
	status, body := get(r.Handler, "/ads/analytics?ad_id=42&fields=all")
	var st Stats
	if status != 200 || json.Unmarshal(body, &st) != nil {
		t.Fatalf("%d %s", status, body)
	}
	if st.Impressions != 2 || st.Clicks != 1 || st.CTR != 0.5 || st.UniqueViewers != 1 || !st.To.After(now) || st.To.Sub(st.From) < 24*time.Hour {
		t.Fatalf("fresh events not visible in the default window: %s", body)
	}
	status, body = get(r.Handler, "/ads/analytics")
	if status != 200 || !strings.Contains(string(body), `"ad_id":42,`) {
		t.Fatalf("top list without the fresh ad: %d %s", status, body)
	}
	status, body = get(r.Handler, "/ads/42/timeseries?interval=minute&start="+now.Add(-5*time.Minute).Format(time.RFC3339))
	if status != 200 || !strings.Contains(string(body), `"impressions":2,"clicks":1`) {
		t.Fatalf("timeseries without the fresh events: %d %s", status, body)
	}
}

// TestFields: the defaults return the exact figures only, with the same values as fields=all; a figure not asked for is absent
// while one asked for is present even when 0; a list shows the figure it is sorted by; and ClickHouse reads far fewer bytes
// without the states (system.query_log), which is why the defaults leave them out.
func TestFields(t *testing.T) {
	db, _ := goldenDB(t)
	s := New(db.Conn, db.Database)
	r := router.New()
	s.Register(r)
	at := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }
	window := "&start=" + at(-time.Hour) + "&end=" + at(3*time.Hour+30*time.Minute)
	getJSON := func(uri string, v any) {
		t.Helper()
		status, body := get(r.Handler, uri)
		if status != 200 || json.Unmarshal(body, v) != nil {
			t.Fatalf("GET %s = %d %s", uri, status, body)
		}
	}
	stateKeys := []string{"unique_viewers", "p50_playback_seconds", "p95_playback_seconds"}
	// same checks that def holds exactly the default figures, each equal to all's.
	same := func(label string, def, all map[string]any) {
		t.Helper()
		for _, k := range stateKeys {
			if _, ok := def[k]; ok {
				t.Fatalf("%s: default answer has %s: %v", label, k, def)
			}
			if _, ok := all[k]; !ok {
				t.Fatalf("%s: fields=all lacks %s: %v", label, k, all)
			}
		}
		if len(def) != len(all)-len(stateKeys) {
			t.Fatalf("%s: %d keys by default, %d with fields=all", label, len(def), len(all))
		}
		for k, v := range def {
			if k != "points" && fmt.Sprint(all[k]) != fmt.Sprint(v) {
				t.Fatalf("%s: %s = %v by default, %v with fields=all", label, k, v, all[k])
			}
		}
	}
	for _, uri := range []string{"/ads/analytics?ad_id=1" + window, "/ads/analytics?ad_id=7" + window} { // 7: no traffic, zeros
		var def, all map[string]any
		getJSON(uri, &def)
		getJSON(uri+"&fields=all", &all)
		same(uri, def, all)
	}
	for _, sort := range []string{"clicks", "ctr", "completion_rate"} {
		var def, all []map[string]any
		uri := "/ads/analytics?sort=" + sort + window
		getJSON(uri, &def)
		getJSON(uri+"&fields=all", &all)
		if len(def) != 3 || len(all) != 3 {
			t.Fatalf("%s: %d and %d ads", uri, len(def), len(all))
		}
		for i := range def {
			same(fmt.Sprintf("%s item %d", uri, i), def[i], all[i])
		}
	}
	var defS, allS, uniqS Series
	var defP, uniqP struct {
		Points []map[string]any `json:"points"`
	}
	uri := "/ads/2/timeseries?interval=hour" + window
	getJSON(uri, &defP)
	getJSON(uri+"&fields=unique_viewers", &uniqP)
	getJSON(uri, &defS)
	getJSON(uri+"&fields=all", &allS)
	getJSON(uri+"&fields=unique_viewers", &uniqS)
	if allS.Points[0].Impressions != 0 || len(defS.Points) != 5 || len(allS.Points) != 5 || len(uniqP.Points) != 5 {
		t.Fatalf("series: %d, %d, %d points", len(defS.Points), len(allS.Points), len(uniqP.Points))
	}
	for i := range allS.Points {
		w := allS.Points[i].Metrics
		if defS.Points[i].Metrics != w.mask(DefaultFields) || uniqS.Points[i].Metrics != w.mask(FieldUniqueViewers) {
			t.Fatalf("point %d: default %+v, uniques %+v, all %+v", i, defS.Points[i].Metrics, uniqS.Points[i].Metrics, w)
		}
		// The first and last hours have no events: a figure asked for says 0 there, one not asked for is not there at all.
		if _, ok := defP.Points[i]["unique_viewers"]; ok {
			t.Fatalf("default point %d has unique_viewers: %v", i, defP.Points[i])
		}
		p := uniqP.Points[i]
		if _, ok := p["unique_viewers"]; !ok || len(p) != 2 || (w.Impressions == 0) != (p["unique_viewers"] == 0.0) {
			t.Fatalf("fields=unique_viewers point %d: %v", i, p)
		}
	}
	// Sorted by a figure not asked for: present, and the order is by it.
	var top []map[string]any
	getJSON("/ads/analytics?fields=clicks&sort=p95_playback_seconds"+window, &top)
	for i, st := range top {
		if len(st) != 5 || st["clicks"] == nil || st["p95_playback_seconds"] == nil || (i > 0 && st["p95_playback_seconds"].(float64) > top[i-1]["p95_playback_seconds"].(float64)) {
			t.Fatalf("sorted by p95 with fields=clicks: %v", top)
		}
	}

	// What ClickHouse reads: the same questions, tagged with query ids and logged.
	ctx := context.Background()
	win := Range{t0.Add(-time.Hour), t0.Add(3*time.Hour + 30*time.Minute)}
	prefix := fmt.Sprintf("fields-%d-", time.Now().UnixNano())
	// One call can send two queries (ranking, then states), and ClickHouse refuses an id that the previous query still
	// holds while it is being cleaned up: every query gets its own id, "<prefix><call>.<n>".
	tagged := &taggedQuerier{db: db.Conn}
	s.DB = tagged
	run := func(name string, fn func(ctx context.Context) error) {
		t.Helper()
		tagged.id = prefix + name
		if err := fn(ctx); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for _, f := range []struct {
		name string
		f    Fields
	}{{"default", DefaultFields}, {"all", AllFields}} {
		run("top-"+f.name, func(ctx context.Context) error { _, err := s.TopFields(ctx, win, "clicks", 100, f.f); return err })
		run("series-"+f.name, func(ctx context.Context) error { _, err := s.TimeseriesFields(ctx, 1, win, Minute, f.f); return err })
	}
	// The server logs a query's finish after the client has its result, so a flush right away can miss the last one: flush
	// and read until all four are there.
	read := map[string]uint64{}
	for try := 0; len(read) < 4 && try < 100; try++ {
		if try > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		if err := db.Conn.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
			t.Fatal(err)
		}
		rows, err := db.Conn.Query(ctx, "SELECT substring(query_id, 1, position(query_id, '.') - 1) AS call, sum(read_bytes) FROM system.query_log WHERE type = 2 AND startsWith(query_id, ?) GROUP BY call", prefix)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			var n uint64
			if err := rows.Scan(&id, &n); err != nil {
				t.Fatal(err)
			}
			read[strings.TrimPrefix(id, prefix)] = n
		}
		rows.Close()
	}
	for _, q := range []string{"top", "series"} {
		d, a := read[q+"-default"], read[q+"-all"]
		if d == 0 || a < 3*d {
			t.Fatalf("%s: read %d bytes with the default fields, %d with all: the states should be most of it (%v)", q, d, a, read)
		}
		t.Logf("%s: ClickHouse read %d bytes for the default fields, %d for all", q, d, a)
	}
}

// taggedQuerier gives each query its own query id and asks ClickHouse to log it.
type taggedQuerier struct {
	db Querier
	id string
	n  int
}

func (q *taggedQuerier) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	q.n++
	ctx = ch.Context(ctx, ch.WithQueryID(fmt.Sprintf("%s.%d", q.id, q.n)), ch.WithSettings(ch.Settings{"log_queries": 1}))
	return q.db.Query(ctx, query, args...)
}
