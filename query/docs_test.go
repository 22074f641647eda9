package query

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/migrations"
	chstore "github.com/adtracker/adtracker/storage/clickhouse"
)

// TestDocsQueries runs every analyst example under docs/queries/ on ClickHouse 18.16 over traffic in the last hours (the examples
// look back from now()) and around the fixed window of 09_exact_window.sql; each must return rows. scripts/chdb-check.sh runs the
// same files on a current engine.
func TestDocsQueries(t *testing.T) {
	db := openMigrated(t, 0)
	window := Range{time.Date(2025, 4, 21, 9, 17, 0, 0, time.UTC), time.Date(2025, 4, 21, 14, 43, 0, 0, time.UTC)}
	_, fixed := gen{seed: 9, n: 20_000, ads: []float64{5, 3, 2}, pools: []int{3000, 2000, 500}, span: 8 * time.Hour,
		origin: time.Date(2025, 4, 21, 8, 0, 0, 0, time.UTC)}.build(5000)
	_, recent := gen{seed: 10, n: 20_000, ads: []float64{5, 3, 2}, pools: []int{3000, 2000, 500}, span: 3 * time.Hour,
		origin: time.Now().UTC().Add(-3 * time.Hour)}.build(5000)
	insert(t, db, append(fixed, recent...))

	files, err := filepath.Glob("../docs/queries/*.sql")
	if err != nil || len(files) < 8 {
		t.Fatalf("want 8-10 example queries under docs/queries, found %d (%v)", len(files), err)
	}
	ctx := context.Background()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		stmts := migrations.Statements(string(b))
		if len(stmts) == 0 {
			t.Fatalf("%s: no statement", f)
		}
		if !strings.HasPrefix(strings.TrimSpace(string(b)), "--") {
			t.Errorf("%s: start with a comment saying what the query answers", f)
		}
		for i, s := range stmts {
			rows, err := db.Conn.Query(ctx, s)
			if err != nil {
				t.Fatalf("%s statement %d fails on ClickHouse 18.16: %v", f, i+1, err)
			}
			n := 0
			var got []map[string]any
			cols := rows.Columns()
			for rows.Next() {
				n++
				if filepath.Base(f) == "09_exact_window.sql" {
					vals := make([]any, len(cols))
					for j, ct := range rows.ColumnTypes() {
						vals[j] = newOf(ct.ScanType())
					}
					if err := rows.Scan(vals...); err != nil {
						t.Fatal(err)
					}
					m := map[string]any{}
					for j, c := range cols {
						m[c] = deref(vals[j])
					}
					got = append(got, m)
				}
			}
			err = rows.Err()
			rows.Close()
			if err != nil || n == 0 {
				t.Fatalf("%s statement %d returned %d rows on generated traffic (%v)", f, i+1, n, err)
			}
			if got != nil {
				compareWindow(t, db.Conn, db.Database, window, got)
			}
		}
	}
}

// compareWindow checks 09_exact_window.sql against the service for the same window: both combine hour and minute rollups, so
// even the uniq figures must be identical.
func compareWindow(t *testing.T, q Querier, database string, w Range, rows []map[string]any) {
	t.Helper()
	s := New(q, database)
	for _, r := range rows {
		ad := r["ad_id"].(uint64)
		st, err := s.Analytics(context.Background(), ad, w)
		if err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprint(r["n_impressions"], r["n_clicks"], r["n_completes"], r["unique_viewers"])
		want := fmt.Sprint(st.Impressions, st.Clicks, st.Completes, st.UniqueViewers)
		if got != want {
			t.Fatalf("09_exact_window.sql ad %d: %s, the service says %s", ad, got, want)
		}
	}
}

// TestBackfill follows docs/sql.md's upgrade procedure: events stored before 0002 existed, then the migration, the documented
// backfill statements, and new events through the views; every figure must then cover all events exactly once.
func TestBackfill(t *testing.T) {
	db := openMigrated(t, 1) // only 0001: an installation from before the rollups
	evs, batches := gen{seed: 11, n: 60_000, ads: []float64{4, 3, 2, 1}, pools: []int{5000, 3000, 800, 100}, span: 30 * time.Hour}.build(10_000)
	half := len(batches) / 2
	insertLegacy(t, db, batches[:half]) // the 0001 columns: what that release's sink wrote
	migrate(t, db, 0)
	stmts := append(backfillStatements(t, "backfill", 2), backfillStatements(t, "backfill-breakdown", 1)...)
	for i, stmt := range stmts {
		if err := db.Conn.Exec(context.Background(), stmt); err != nil {
			t.Fatalf("docs/sql.md backfill statement %d: %v", i+1, err)
		}
	}
	insert(t, db, batches[half:])

	s := New(db.Conn, db.Database)
	ctx := context.Background()
	es := &errStats{}
	for _, r := range []Range{{t0, t0.Add(30 * time.Hour)}, {t0.Add(95 * time.Minute), t0.Add(27*time.Hour + 13*time.Minute)}} {
		expected := sumByAd(evs, r.From, r.To)
		for ad := uint64(1); ad <= 4; ad++ {
			st, err := s.Analytics(ctx, ad, r)
			if err != nil {
				t.Fatal(err)
			}
			checkMetrics(t, es, fmt.Sprintf("after backfill %v ad %d", r, ad), st.Metrics, expected[ad])
		}
	}
	for _, iv := range []Interval{Minute, Hour} {
		r := Range{t0.Add(3*time.Hour + 7*time.Minute), t0.Add(5*time.Hour + 50*time.Minute)}
		ser, err := s.Timeseries(ctx, 2, r, iv)
		if err != nil {
			t.Fatal(err)
		}
		expected := sumByBucket(evs, 2, r.From, r.To, iv.Duration())
		for _, p := range ser.Points {
			checkMetrics(t, es, fmt.Sprintf("after backfill %s %v", iv, p.T), p.Metrics, expected[p.T.Unix()])
		}
	}
	// The breakdown covers every event once per dimension: old ones (backfilled) under '' and 'none', new ones through the view.
	perAd := map[uint64]uint64{}
	for _, e := range evs {
		perAd[e.ad]++
	}
	for ad, n := range perAd {
		for _, dim := range []string{"device_type", "os", "browser", "country", "ivt"} {
			var got uint64
			if err := db.Conn.QueryRow(ctx, "SELECT sum(events) FROM ad_breakdown_hour WHERE ad_id = ? AND dimension = ?", ad, dim).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != n {
				t.Errorf("after backfill: ad %d breakdown by %s counts %d events, want %d", ad, dim, got, n)
			}
		}
	}
}

// backfillStatements returns the n statements between the <!-- name:start --> and <!-- name:end --> markers of docs/sql.md.
func backfillStatements(t *testing.T, name string, n int) []string {
	t.Helper()
	b, err := os.ReadFile("../docs/sql.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok1 := strings.Cut(string(b), "<!-- "+name+":start -->")
	block, _, ok2 := strings.Cut(rest, "<!-- "+name+":end -->")
	if !ok1 || !ok2 {
		t.Fatalf("docs/sql.md lost its %s markers", name)
	}
	block = strings.TrimSpace(block)
	block = strings.TrimPrefix(block, "```sql")
	block = strings.TrimSuffix(block, "```")
	stmts := migrations.Statements(block)
	if len(stmts) != n {
		t.Fatalf("docs/sql.md %s: %d statements, want %d", name, len(stmts), n)
	}
	return stmts
}

// insertLegacy stores batches with the columns of 0001 only, as a release before 0003 did.
func insertLegacy(t *testing.T, db *chstore.DB, batches []*event.Batch) {
	t.Helper()
	ctx := context.Background()
	for _, b := range batches {
		ins, err := db.Conn.PrepareBatch(ctx, "INSERT INTO events (event_id, type, ad_id, event_time, receive_time, ip, user_agent, "+
			"playback_ms, viewer_id, session_id)")
		if err != nil {
			t.Fatal(err)
		}
		var e event.Event
		err = b.Each(&e, func(e *event.Event) error {
			return ins.Append(uuid.UUID(e.ID), int8(e.Type), e.AdID, time.Unix(e.EventTime, 0), time.Unix(e.ReceiveTime, 0),
				string(e.IP[:]), string(e.UA()), e.PlaybackMs, string(e.ViewerID()), string(e.SessionID()))
		})
		if err == nil {
			err = ins.Send()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func newOf(t reflect.Type) any { return reflect.New(t).Interface() }

func deref(p any) any { return reflect.ValueOf(p).Elem().Interface() }
