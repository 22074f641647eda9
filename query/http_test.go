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

	"github.com/adtracker/adtracker/catalog"
	"github.com/adtracker/adtracker/ingest"
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
	f("analytics.golden.json", "/ads/analytics?ad_id=1&start="+at(13*time.Minute)+"&end="+at(2*time.Hour+47*time.Minute))
	f("top.golden.json", "/ads/analytics?sort=ctr&limit=2&start="+at(0)+"&end="+at(3*time.Hour))
	f("timeseries.golden.json", "/ads/2/timeseries?interval=hour&start="+at(-time.Hour)+"&end="+at(3*time.Hour+30*time.Minute))

	// The golden numbers are the real ones: recompute the analytics file's counts from the events.
	var st Stats
	status, body := get(r.Handler, "/ads/analytics?ad_id=1&start="+at(13*time.Minute)+"&end="+at(2*time.Hour+47*time.Minute))
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

// TestFreshness: an event stored a moment ago is in the default window (the last 24 h up to now) at once, because the window's end
// is rounded up to the next minute and the views fill the rollups in the insert itself.
func TestFreshness(t *testing.T) {
	db := openMigrated(t, 0)
	var b ingest.Batch
	var e ingest.Event
	now := time.Now().UTC()
	for i, typ := range []ingest.Type{ingest.TypeImpression, ingest.TypeImpression, ingest.TypeClick} {
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
	status, body := get(r.Handler, "/ads/analytics?ad_id=42")
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
