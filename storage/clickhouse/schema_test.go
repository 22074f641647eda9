package clickhouse

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/migrations"
)

// seedBase is the first hour of the seeded traffic.
var seedBase = time.Date(2025, 4, 21, 15, 0, 0, 0, time.UTC)

// seedMinutes are the minutes (after seedBase) of the mixed traffic; two more hold special cases (see seeded).
const (
	seedMinutes      = 90
	progressOnlyMin  = 100 // a minute with nothing but valid creative_view events
	invalidOnlyMin   = 101 // a minute with nothing but invalid events
	seedViewerGroups = 37
)

// seedFigures are the figures the rollups must hold for the seeded traffic of one ad.
type seedFigures struct {
	// valid traffic
	impressions, clicks, starts, completes, viewables, notViewables, undetermined, playbackCount uint64
	viewers                                                                                      map[string]bool
	// every event / invalid traffic
	total, invImpressions, invClicks, invEvents uint64
	// breakdown: "dimension/value" → events, impressions, clicks, starts, completes, viewables, not_viewables; valid and all are
	// the same counts over valid traffic and over every event
	breakdown  map[string][7]uint64
	valid, all [7]uint64
}

// seeded returns a batch of screened and enriched events of ad (every IVT reason, device class, several OS, browser and country
// values, the empty ones included, and the VAST 4.3 types) and the figures the rollups must show for it.
func seeded(ad uint64, n int) (*event.Batch, seedFigures) {
	types := []event.Type{event.TypeImpression, event.TypeClick, event.TypeStart, event.TypeComplete, event.TypeViewable,
		event.TypeNotViewable, event.TypeViewUndetermined, event.TypeProgress, event.TypeCreativeView, event.TypeImpression}
	devices := []event.Device{event.DeviceDesktop, event.DeviceMobile, event.DeviceTablet, event.DeviceTV, event.DeviceOther, event.DeviceUnknown}
	oses := []string{"Windows", "iOS", "Android", "", "Linux"}
	browsers := []string{"Chrome", "Safari", "Firefox", "Edge", ""}
	countries := []string{"DE", "US", "FR", "", "JP", "BR", "US"}
	f := seedFigures{viewers: map[string]bool{}, breakdown: map[string][7]uint64{}}
	var b event.Batch
	var e event.Event
	add := func(i int, minute int, typ event.Type, ivt event.IVT) {
		e.Reset()
		e.ID[0], e.ID[1], e.ID[2], e.ID[6], e.ID[15] = byte(i>>16), byte(i>>8), byte(i), 0x40, byte(ad)
		e.Type, e.AdID, e.IVT = typ, ad, ivt
		e.EventTime = seedBase.Add(time.Duration(minute)*time.Minute + time.Duration(i%60)*time.Second).Unix()
		e.ReceiveTime = e.EventTime
		if typ == event.TypeProgress || typ == event.TypeComplete {
			e.PlaybackMs = uint32(1000 + i%30000)
		}
		e.SetIP(net.ParseIP(fmt.Sprintf("198.51.100.%d", i%200)))
		viewer := fmt.Sprintf("v%d", i%seedViewerGroups)
		e.SetViewerID([]byte(viewer))
		e.SetUserAgent([]byte("Mozilla/5.0 (seed)"))
		e.Device = devices[i%len(devices)]
		e.SetOS(oses[i%len(oses)])
		e.SetBrowser(browsers[i%len(browsers)])
		e.SetCountry(countries[i%len(countries)])
		b.Append(&e)

		f.total++
		is := func(t event.Type) uint64 {
			if typ == t {
				return 1
			}
			return 0
		}
		counts := [7]uint64{1, is(event.TypeImpression), is(event.TypeClick), is(event.TypeStart), is(event.TypeComplete),
			is(event.TypeViewable), is(event.TypeNotViewable)}
		for j := range counts {
			f.all[j] += counts[j]
			if ivt == event.IVTNone {
				f.valid[j] += counts[j]
			}
		}
		bump := func(dim, value string) {
			k := dim + "/" + value
			c := f.breakdown[k]
			for j := range c {
				c[j] += counts[j]
			}
			f.breakdown[k] = c
		}
		if ivt != event.IVTNone {
			f.invEvents++
			f.invImpressions += counts[1]
			f.invClicks += counts[2]
			bump("ivt", ivt.String())
			return
		}
		f.impressions += counts[1]
		f.clicks += counts[2]
		f.starts += counts[3]
		f.completes += counts[4]
		f.viewables += counts[5]
		f.notViewables += counts[6]
		f.undetermined += is(event.TypeViewUndetermined)
		if e.PlaybackMs > 0 {
			f.playbackCount++
		}
		f.viewers[viewer] = true
		bump("ivt", "none")
		bump("device_type", e.Device.String())
		bump("os", string(e.OSFamily()))
		bump("browser", string(e.BrowserFamily()))
		bump("country", string(e.CountryCode()))
	}
	for i := 0; i < n; i++ {
		typ := types[i%len(types)]
		ivt := event.IVTNone
		switch {
		case i%7 == 3:
			ivt = event.IVTCrawler
		case i%11 == 5:
			ivt = event.IVTPrefetch
		case i%13 == 0:
			ivt = event.IVTDenyIP
		case i%17 == 2:
			ivt = event.IVTDenyUserAgent
		case typ == event.TypeClick && i%3 == 0:
			ivt = event.IVTDuplicateClick
		}
		add(i, i%seedMinutes, typ, ivt)
	}
	for i := n; i < n+5; i++ { // creative_view carries no playback position: no other column of the row counts it
		add(i, progressOnlyMin, event.TypeCreativeView, event.IVTNone)
	}
	for i := n + 5; i < n+9; i++ {
		add(i, invalidOnlyMin, event.TypeImpression, event.IVTCrawler)
	}
	return &b, f
}

// checkSeeded compares the rollups of ad with want (plus old impressions, clicks, starts and completes each, for an upgraded
// database): valid counts, invalid counts,
// events_total, the viewers state, and every breakdown value, each dimension summing to its totals.
func checkSeeded(t *testing.T, c ch.Conn, ad uint64, want seedFigures, old uint64) {
	t.Helper()
	ctx := context.Background()
	for _, table := range []string{"ad_stats_minute", "ad_stats_hour"} {
		var imp, clk, st, comp, vw, nvw, und, pbc, total, iimp, iclk, iev, viewers uint64
		q := "SELECT sum(impressions), sum(clicks), sum(starts), sum(completes), sum(viewables), sum(not_viewables), " +
			"sum(view_undetermined), sum(playback_count), sum(events_total), sum(invalid_impressions), sum(invalid_clicks), " +
			"sum(invalid_events), uniqMerge(viewers) FROM " + table + " WHERE ad_id = ?"
		if err := c.QueryRow(ctx, q, ad).Scan(&imp, &clk, &st, &comp, &vw, &nvw, &und, &pbc, &total, &iimp, &iclk, &iev, &viewers); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		got := fmt.Sprint(imp, clk, st, comp, vw, nvw, und, pbc, total, iimp, iclk, iev, viewers)
		exp := fmt.Sprint(want.impressions+old, want.clicks+old, want.starts+old, want.completes+old, want.viewables, want.notViewables,
			want.undetermined, want.playbackCount, want.total, want.invImpressions, want.invClicks, want.invEvents, len(want.viewers))
		if got != exp {
			t.Errorf("%s ad %d\n got impressions clicks starts completes viewables not_viewables undetermined playback_count "+
				"events_total invalid_impressions invalid_clicks invalid_events viewers\n     %s\nwant %s", table, ad, got, exp)
		}
	}
	rows, err := c.Query(ctx, "SELECT dimension, value, sum(events), sum(impressions), sum(clicks), sum(starts), sum(completes), "+
		"sum(viewables), sum(not_viewables) FROM ad_breakdown_hour WHERE ad_id = ? GROUP BY dimension, value", ad)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][7]uint64{}
	sums := map[string][7]uint64{}
	for rows.Next() {
		var dim, value string
		var v [7]uint64
		if err := rows.Scan(&dim, &value, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]); err != nil {
			t.Fatal(err)
		}
		got[dim+"/"+value] = v
		s := sums[dim]
		for j := range v {
			s[j] += v[j]
		}
		sums[dim] = s
	}
	rows.Close()
	keys := func(m map[string][7]uint64) string {
		var out []string
		for k, v := range m {
			out = append(out, fmt.Sprint(k, v))
		}
		sort.Strings(out)
		return strings.Join(out, "\n")
	}
	if keys(got) != keys(want.breakdown) {
		t.Errorf("ad_breakdown_hour ad %d:\n%s\nwant\n%s", ad, keys(got), keys(want.breakdown))
	}
	for _, dim := range []string{"device_type", "os", "browser", "country"} {
		if sums[dim] != want.valid {
			t.Errorf("breakdown by %s sums to %v, the valid totals are %v", dim, sums[dim], want.valid)
		}
	}
	if sums["ivt"] != want.all {
		t.Errorf("breakdown by ivt sums to %v, all traffic is %v", sums["ivt"], want.all)
	}
}

// A seeded run through the sink: invalid events are stored with their reason and left out of every valid count, counted in the
// invalid columns and in events_total; the breakdown rollup splits valid traffic by device, OS, browser and country and all
// traffic by reason, each dimension summing to the totals, also after the rows of two inserts are merged. A minute of only
// creative_view events (no count column of its own, no playback) and a minute of only invalid events keep a rollup row that is
// not all zeros: events_total counts them.
func TestSinkScreenedEventsRollups(t *testing.T) {
	db := migrated(t)
	ctx := context.Background()
	b, want := seeded(21, 3000)
	// Two inserts of alternate events: every rollup key then has a row in each of two parts, which OPTIMIZE FINAL below sums
	// into one, so the figures are checked after a merge too.
	var halves [2]event.Batch
	var e event.Event
	i := 0
	if err := b.Each(&e, func(e *event.Event) error { halves[i%2].Append(e); i++; return nil }); err != nil {
		t.Fatal(err)
	}
	sink := NewSink(db)
	for h := range halves {
		if err := sink.insert(ctx, &halves[h], 512); err != nil {
			t.Fatal(err)
		}
	}
	var ivt, device, os, browser, country string
	if err := db.Conn.QueryRow(ctx, "SELECT toString(ivt), device_type, os, browser, country FROM events WHERE ad_id = 21 AND ivt = 'crawler' ORDER BY event_id LIMIT 1").
		Scan(&ivt, &device, &os, &browser, &country); err != nil {
		t.Fatal(err)
	}
	if ivt != "crawler" || device == "" && os == "" && browser == "" && country == "" {
		t.Fatalf("stored ivt %q device %q os %q browser %q country %q", ivt, device, os, browser, country)
	}
	for _, table := range []string{"ad_stats_minute", "ad_stats_hour", "ad_breakdown_hour"} {
		if err := db.Conn.Exec(ctx, "OPTIMIZE TABLE "+table+" FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	checkSeeded(t, db.Conn, 21, want, 0)
	for _, m := range []int{progressOnlyMin, invalidOnlyMin} {
		var rows, total uint64
		minute := seedBase.Add(time.Duration(m) * time.Minute)
		if err := db.Conn.QueryRow(ctx, "SELECT count(), sum(events_total) FROM ad_stats_minute WHERE ad_id = 21 AND minute = toDateTime(?)",
			minute.Unix()).Scan(&rows, &total); err != nil {
			t.Fatal(err)
		}
		if rows != 1 || total == 0 {
			t.Errorf("minute %s after OPTIMIZE FINAL: %d rows, events_total %d; want one row that counts its events", minute, rows, total)
		}
	}
}

// tableParts lists the active parts of every table in the database with their modification times.
func tableParts(t *testing.T, db *DB) map[string]string {
	t.Helper()
	rows, err := db.Conn.Query(context.Background(),
		"SELECT table, name, toString(modification_time) FROM system.parts WHERE database = ? AND active", db.Database)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var table, name, mod string
		if err := rows.Scan(&table, &name, &mod); err != nil {
			t.Fatal(err)
		}
		out[table] += name + "@" + mod + " "
	}
	return out
}

// The upgrade path on 18.16: a database holding 0001/0002 data takes 0003 without rewriting anything — the enum extension of a
// sorting-key column and the new columns are metadata only (every part keeps its name and modification time, no mutation is
// created) — old rows read as valid and not enriched, old rollup figures are unchanged, new events split valid from invalid, and
// every statement of 0003 runs a second time without error or change.
func TestMigration0003UpgradesStoredData(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	files, err := migrations.ClickHouse()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 || files[2].Version != 3 {
		t.Fatalf("want 0003 as the third migration, have %d files", len(files))
	}
	if _, err := db.Migrate(ctx, files[:2]); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // two inserts: two parts per table
		if err := db.Conn.Exec(ctx, fmt.Sprintf(`INSERT INTO events (event_id, type, ad_id, event_time, receive_time, ip, user_agent,
			playback_ms, viewer_id, session_id)
			SELECT generateUUIDv4(), ['impression', 'click', 'start', 'complete'][number %% 4 + 1], 21,
				toDateTime(%d + number), toDateTime(%d + number), toFixedString(unhex('00000000000000000000ffff7f000001'), 16),
				'old', 0, concat('old-', toString(number %% 10)), ''
			FROM numbers(1000)`, seedBase.Unix()-86400, seedBase.Unix()-86400)); err != nil {
			t.Fatal(err)
		}
	}
	before := tableParts(t, db)
	delete(before, "schema_migrations") // migrate appends to it
	if len(before) != 3 {
		t.Fatalf("setup: parts in %d tables, want events and both rollups: %v", len(before), before)
	}
	time.Sleep(1100 * time.Millisecond) // a rewritten part would carry a later modification time (second resolution)
	// 0003 is what this test upgrades to; running it again after 0004 would bring back the view 0004 drops.
	files = files[:3]
	res, err := db.Migrate(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	if res[2].Status != "applied" {
		t.Fatalf("0003: %+v", res[2])
	}
	after := tableParts(t, db)
	for table, parts := range before {
		if after[table] != parts {
			t.Errorf("%s parts changed by 0003:\nbefore %s\nafter  %s", table, parts, after[table])
		}
	}
	var mutations, old uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ?", db.Database).Scan(&mutations); err != nil {
		t.Fatal(err)
	}
	if mutations != 0 {
		t.Errorf("0003 created %d mutations; it must be metadata only", mutations)
	}
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM events WHERE ivt = 'none' AND device_type = '' AND os = '' AND browser = '' AND country = ''").
		Scan(&old); err != nil {
		t.Fatal(err)
	}
	if old != 2000 {
		t.Errorf("%d of 2000 old rows read as valid and not enriched", old)
	}
	var typ string
	if err := db.Conn.QueryRow(ctx, "SELECT type FROM system.columns WHERE database = ? AND table = 'events' AND name = 'type'", db.Database).
		Scan(&typ); err != nil {
		t.Fatal(err)
	}
	for _, ty := range event.Types() {
		if !strings.Contains(typ, fmt.Sprintf("'%s' = %d", ty, ty)) {
			t.Errorf("events.type lacks %s = %d: %s", ty, ty, typ)
		}
	}

	// Every statement again, as a run interrupted after its last statement would repeat them: no error, no change.
	runTwice(t, db, files[2])

	b, want := seeded(21, 2000)
	if err := NewSink(db).Insert(ctx, b); err != nil {
		t.Fatal(err)
	}
	// Old rollup rows keep counting their events (all valid): 500 each of impressions, clicks, starts, completes. Old rows carry no
	// events_total and no viewers beyond their own; the seeded ones add theirs.
	var oldTotal, oldViewers uint64
	if err := db.Conn.QueryRow(ctx, "SELECT sum(events_total), uniqMerge(viewers) FROM ad_stats_hour WHERE ad_id = 21 AND hour < toDateTime(?)", seedBase.Unix()).
		Scan(&oldTotal, &oldViewers); err != nil {
		t.Fatal(err)
	}
	if oldTotal != 0 || oldViewers != 10 {
		t.Errorf("old rollup rows: events_total %d, viewers %d; want 0 and 10", oldTotal, oldViewers)
	}
	want.viewers = merge(want.viewers, 10)
	checkSeeded(t, db.Conn, 21, want, 500)
}

// runTwice runs f's statements once more, as a run interrupted after its last statement would repeat them, and fails on an error
// or on any change to the schema.
func runTwice(t *testing.T, db *DB, f migrations.File) {
	t.Helper()
	schema := func() string {
		return strings.Join(queryStrings(t, db.Conn, "SELECT table, name, type, default_expression FROM system.columns WHERE database = currentDatabase() ORDER BY table, name"), "\n") +
			strings.Join(queryStrings(t, db.Conn, "SELECT name, engine, create_table_query FROM system.tables WHERE database = currentDatabase() AND name != 'schema_migrations' ORDER BY name"), "\n")
	}
	s1 := schema()
	again := f
	again.Version, again.Name = 99, "0099_again.sql"
	if _, err := db.Migrate(context.Background(), []migrations.File{again}); err != nil {
		t.Fatalf("%s run twice: %v", f.Name, err)
	}
	if s2 := schema(); s2 != s1 {
		t.Errorf("%s run twice changed the schema:\n%s\n---\n%s", f.Name, s1, s2)
	}
}

// 0004 replaces 0003's breakdown view (ARRAY JOIN) by one view per dimension. The rows the old view wrote stay; events inserted
// after 0004 are counted once, by the new views, with the figures the old view gave; run twice, 0004 changes nothing.
func TestMigration0004ReplacesTheBreakdownView(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	files, err := migrations.ClickHouse()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 || files[3].Version != 4 {
		t.Fatalf("want 0004 as the fourth migration, have %d files", len(files))
	}
	if _, err := db.Migrate(ctx, files[:3]); err != nil {
		t.Fatal(err)
	}
	b, before := seeded(31, 2000)
	if err := NewSink(db).Insert(ctx, b); err != nil {
		t.Fatal(err)
	}
	res, err := db.Migrate(ctx, files[:4])
	if err != nil {
		t.Fatal(err)
	}
	if res[3].Status != "applied" {
		t.Fatalf("0004: %+v", res[3])
	}
	views := queryStrings(t, db.Conn, "SELECT name FROM system.tables WHERE database = currentDatabase() AND name LIKE 'ad_breakdown_hour%' AND engine = 'MaterializedView' ORDER BY name")
	want := []string{"ad_breakdown_hour_browser_mv", "ad_breakdown_hour_country_mv", "ad_breakdown_hour_device_type_mv", "ad_breakdown_hour_ivt_mv", "ad_breakdown_hour_os_mv"}
	if fmt.Sprint(views) != fmt.Sprint(want) {
		t.Fatalf("breakdown views after 0004: %v, want %v", views, want)
	}
	runTwice(t, db, files[3])
	b, after := seeded(32, 2000)
	if err := NewSink(db).Insert(ctx, b); err != nil {
		t.Fatal(err)
	}
	checkSeeded(t, db.Conn, 31, before, 0)
	checkSeeded(t, db.Conn, 32, after, 0)
}

// merge returns viewers plus n distinct old ones.
func merge(viewers map[string]bool, n int) map[string]bool {
	out := map[string]bool{}
	for v := range viewers {
		out[v] = true
	}
	for i := 0; i < n; i++ {
		out[fmt.Sprintf("old-%d", i)] = true
	}
	return out
}

// The runner's IF NOT EXISTS handling (addColumnIfMissing) reads one table and one column per statement: every shipped statement
// that adds a column must match its pattern and add exactly one.
func TestShippedAddColumnStatementsAddOneColumn(t *testing.T) {
	single, err := migrations.ClickHouse()
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := migrations.ClickHouseCluster()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range append(single, cluster...) {
		for _, stmt := range migrations.Statements(f.SQL) {
			var code []string
			for _, line := range strings.Split(stmt, "\n") {
				if !strings.HasPrefix(strings.TrimSpace(line), "--") {
					code = append(code, line)
				}
			}
			adds := strings.Count(strings.ToUpper(strings.Join(code, "\n")), "ADD COLUMN")
			if adds == 0 {
				continue
			}
			n++
			if adds != 1 || addColumnIf.FindStringSubmatch(stmt) == nil {
				t.Errorf("%s: %q must add one column with ADD COLUMN IF NOT EXISTS", f.Name, stmt)
			}
		}
	}
	if n == 0 {
		t.Fatal("no ADD COLUMN statement found; the check checks nothing")
	}
}
