package query

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/fasthttp/router"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/testenv"
	chstore "github.com/adtracker/adtracker/storage/clickhouse"
)

// screened is the expected outcome of screenedTraffic for one ad.
type screened struct {
	valid, all                Counts
	invImpressions, invClicks uint64
	undetermined              uint64
	byDim                     map[Dimension]map[string]Counts
}

// screenedTraffic builds three hours of traffic from t0 for ads 1..3 with every IVT reason, device class and several OS, browser
// and country values (the empty ones too; list lengths prime to the 3 ads, so every ad sees every value), viewability outcomes and VAST 4.3 types, and what each ad's figures must be.
func screenedTraffic(n int) (*event.Batch, map[uint64]*screened) {
	types := []event.Type{event.TypeImpression, event.TypeImpression, event.TypeClick, event.TypeStart, event.TypeComplete,
		event.TypeViewable, event.TypeNotViewable, event.TypeViewUndetermined, event.TypeProgress, event.TypeCreativeView,
		event.TypeImpression}
	devices := []event.Device{event.DeviceDesktop, event.DeviceMobile, event.DeviceMobile, event.DeviceTablet, event.DeviceTV,
		event.DeviceOther, event.DeviceUnknown}
	oses := []string{"Windows", "iOS", "Android", "", "Linux", "Android", "iOS"}
	browsers := []string{"Chrome", "Safari", "Firefox", "Chrome", ""}
	countries := []string{"DE", "US", "FR", "", "JP", "US", "BR", "US", "IN", "GB"}
	out := map[uint64]*screened{}
	var b event.Batch
	var e event.Event
	for i := 0; i < n; i++ {
		e.Reset()
		e.ID[0], e.ID[1], e.ID[2], e.ID[6], e.ID[8] = byte(i>>16), byte(i>>8), byte(i), 0x40, 0x80
		e.AdID = uint64(i%3 + 1)
		e.Type = types[i%len(types)]
		switch {
		case i%7 == 3:
			e.IVT = event.IVTCrawler
		case i%11 == 0:
			e.IVT = event.IVTPrefetch
		case i%13 == 0:
			e.IVT = event.IVTDenyIP
		case i%19 == 2:
			e.IVT = event.IVTDenyUserAgent
		case e.Type == event.TypeClick && i%4 == 0:
			e.IVT = event.IVTDuplicateClick
		}
		e.EventTime = t0.Add(time.Duration(i) * 3 * time.Hour / time.Duration(n)).Unix()
		e.ReceiveTime = e.EventTime
		e.SetIP(net.IPv4(192, 0, 2, byte(i)))
		e.SetViewerID(fmt.Appendf(nil, "v%d", i%101))
		e.SetUserAgent([]byte("Mozilla/5.0 (screened)"))
		e.Device = devices[i%len(devices)]
		e.SetOS(oses[i%len(oses)])
		e.SetBrowser(browsers[i%len(browsers)])
		e.SetCountry(countries[i%len(countries)])
		b.Append(&e)

		w := out[e.AdID]
		if w == nil {
			w = &screened{byDim: map[Dimension]map[string]Counts{}}
			out[e.AdID] = w
		}
		c := Counts{Events: 1}
		switch e.Type {
		case event.TypeImpression:
			c.Impressions = 1
		case event.TypeClick:
			c.Clicks = 1
		case event.TypeStart:
			c.Starts = 1
		case event.TypeComplete:
			c.Completes = 1
		case event.TypeViewable:
			c.Viewables = 1
		case event.TypeNotViewable:
			c.NotViewables = 1
		}
		bump := func(d Dimension, v string) {
			m := w.byDim[d]
			if m == nil {
				m = map[string]Counts{}
				w.byDim[d] = m
			}
			x := m[v]
			x.add(c)
			m[v] = x
		}
		w.all.add(c)
		bump(IVT, e.IVT.String())
		if e.IVT != event.IVTNone {
			w.invImpressions += c.Impressions
			w.invClicks += c.Clicks
			continue
		}
		w.valid.add(c)
		if e.Type == event.TypeViewUndetermined {
			w.undetermined++
		}
		bump(DeviceType, e.Device.String())
		bump(OS, string(e.OSFamily()))
		bump(Browser, string(e.BrowserFamily()))
		bump(Country, string(e.CountryCode()))
	}
	return &b, out
}

// checkScreened: invalid events are out of impressions, clicks and CTR and reported as invalid; every breakdown value is exact;
// the values of each dimension (with other) sum to the totals, which equal the analytics figures; a small limit folds the rest
// into other without changing the totals; the top list's by= gives each ad the same breakdown.
func checkScreened(t *testing.T, s *Service, want map[uint64]*screened) {
	t.Helper()
	ctx := context.Background()
	r := Range{t0, t0.Add(3 * time.Hour)}
	for ad, w := range want {
		st, err := s.AnalyticsFields(ctx, ad, r, AllFields)
		if err != nil {
			t.Fatal(err)
		}
		m := st.Metrics
		got := fmt.Sprint(m.Impressions, m.Clicks, m.Starts, m.Completes, m.ViewableImpressions, m.MeasurableImpressions,
			m.InvalidImpressions, m.InvalidClicks)
		exp := fmt.Sprint(w.valid.Impressions, w.valid.Clicks, w.valid.Starts, w.valid.Completes, w.valid.Viewables,
			w.valid.Viewables+w.valid.NotViewables, w.invImpressions, w.invClicks)
		if got != exp {
			t.Fatalf("ad %d: impressions clicks starts completes viewable measurable invalid_impressions invalid_clicks\n got %s\nwant %s", ad, got, exp)
		}
		if m.CTR != float64(w.valid.Clicks)/float64(w.valid.Impressions) ||
			m.IVTRate != float64(w.invImpressions)/float64(w.valid.Impressions+w.invImpressions) ||
			m.ViewabilityRate != float64(w.valid.Viewables)/float64(w.valid.Viewables+w.valid.NotViewables) {
			t.Fatalf("ad %d rates: ctr %v ivt %v viewability %v", ad, m.CTR, m.IVTRate, m.ViewabilityRate)
		}
		if w.invImpressions == 0 || w.valid.Viewables == 0 {
			t.Fatalf("ad %d: the traffic lacks invalid impressions or viewables; the checks check nothing", ad)
		}
		for _, dim := range Dimensions() {
			bd, err := s.BreakdownOf(ctx, ad, r, dim, 0)
			if err != nil {
				t.Fatal(err)
			}
			if bd.Other != nil {
				t.Fatalf("ad %d by %s: %d values folded under the default limit", ad, dim, bd.Other.Values)
			}
			gotV := map[string]Counts{}
			var sum Counts
			for _, v := range bd.Values {
				gotV[v.Value] = v.Counts
				sum.add(v.Counts)
			}
			if fmt.Sprint(sortedCounts(gotV)) != fmt.Sprint(sortedCounts(w.byDim[dim])) {
				t.Fatalf("ad %d by %s:\n got %v\nwant %v", ad, dim, sortedCounts(gotV), sortedCounts(w.byDim[dim]))
			}
			total := w.valid
			if dim == IVT {
				total = w.all
			}
			if sum != bd.Totals || bd.Totals != total {
				t.Fatalf("ad %d by %s: values sum to %+v, totals %+v, want %+v", ad, dim, sum, bd.Totals, total)
			}
			if dim == IVT && (bd.Totals.Impressions != m.Impressions+m.InvalidImpressions || gotV["none"].Impressions != m.Impressions) ||
				dim != IVT && (bd.Totals.Impressions != m.Impressions || bd.Totals.Clicks != m.Clicks) {
				t.Fatalf("ad %d by %s: totals %+v disagree with the analytics %+v", ad, dim, bd.Totals, m)
			}
			for i := 1; i < len(bd.Values); i++ {
				a, b := bd.Values[i-1], bd.Values[i]
				if a.Impressions < b.Impressions || a.Impressions == b.Impressions && a.Events < b.Events {
					t.Fatalf("ad %d by %s: values out of order: %+v before %+v", ad, dim, a, b)
				}
			}
			small, err := s.BreakdownOf(ctx, ad, r, dim, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(bd.Values) > 2 {
				var folded Counts
				for _, v := range bd.Values[2:] {
					folded.add(v.Counts)
				}
				if len(small.Values) != 2 || small.Other == nil || small.Other.Values != len(bd.Values)-2 || small.Other.Counts != folded ||
					small.Totals != bd.Totals {
					t.Fatalf("ad %d by %s limit 2: %+v, other %+v; want the first two values and the rest folded", ad, dim, small.Values, small.Other)
				}
			}
		}
	}
	top, err := s.Top(ctx, r, "impressions", 10)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]uint64, len(top))
	for i := range top {
		ids[i] = top[i].AdID
	}
	bds, err := s.TopBreakdowns(ctx, ids, r, Country, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range top {
		bd := bds[st.AdID]
		if bd.Totals.Impressions != st.Impressions || len(bd.Values) == 0 {
			t.Fatalf("top list ad %d: breakdown totals %+v, listed impressions %d", st.AdID, bd.Totals, st.Impressions)
		}
	}
}

func sortedCounts(m map[string]Counts) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%q:%+v", k, v))
	}
	sort.Strings(out)
	return out
}

// Screened and enriched traffic on 18.16, through the sink and the views: the service's figures and breakdowns (see
// checkScreened), the HTTP answers (golden files, 400 naming by / limit), and by= on the top list.
func TestScreenedTraffic(t *testing.T) {
	db := openMigrated(t, 0)
	b, want := screenedTraffic(6000)
	insert(t, db, []*event.Batch{b})
	s := New(db.Conn, db.Database)
	checkScreened(t, s, want)

	r := router.New()
	s.Register(r)
	at := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }
	span := "&start=" + at(0) + "&end=" + at(3*time.Hour)
	for _, c := range []struct{ uri, field string }{
		{"/ads/1/breakdown?by=city" + span, "by"},
		{"/ads/1/breakdown?" + span[1:], "by"},
		{"/ads/1/breakdown?by=os&limit=0" + span, "limit"},
		{"/ads/1/breakdown?by=os&limit=1001" + span, "limit"},
		{"/ads/x/breakdown?by=os" + span, "id"},
		{"/ads/analytics?by=DEVICE_TYPE" + span, "by"},
		{"/ads/analytics?by=os&by_limit=x" + span, "by_limit"},
	} {
		status, body := get(r.Handler, c.uri)
		var e struct{ Field string }
		if status != 400 || json.Unmarshal(body, &e) != nil || e.Field != c.field {
			t.Errorf("GET %s = %d %s, want 400 naming %s", c.uri, status, body, c.field)
		}
	}
	ok := func(uri string) []byte {
		t.Helper()
		status, body := get(r.Handler, uri)
		if status != 200 {
			t.Fatalf("GET %s = %d %s", uri, status, body)
		}
		return body
	}
	// The breakdown rounds its range out to whole hours, the rollup's grain, and says so.
	golden(t, "breakdown-device.golden.json", ok("/ads/1/breakdown?by=device_type&start="+at(13*time.Minute)+"&end="+at(2*time.Hour+47*time.Minute)))
	golden(t, "breakdown-ivt-limit.golden.json", ok("/ads/2/breakdown?by=ivt&limit=3"+span))
	golden(t, "analytics-screened.golden.json", ok("/ads/analytics?ad_id=1&by=country&by_limit=3&fields=impressions,clicks,ctr,"+
		"viewable_impressions,measurable_impressions,viewability_rate,invalid_impressions,invalid_clicks,ivt_rate"+span))
	var top []struct {
		AdID        uint64 `json:"ad_id"`
		Impressions uint64 `json:"impressions"`
		Breakdown   struct {
			Totals struct{ Impressions uint64 }
			Values []struct{ Value string }
			Other  *struct{ Values int }
		}
	}
	if err := json.Unmarshal(ok("/ads/analytics?sort=ivt_rate&by=device_type&by_limit=2"+span), &top); err != nil {
		t.Fatal(err)
	}
	if len(top) != 3 {
		t.Fatalf("top list with by: %d ads", len(top))
	}
	for _, a := range top {
		if a.Breakdown.Totals.Impressions != a.Impressions || len(a.Breakdown.Values) != 2 || a.Breakdown.Other == nil {
			t.Fatalf("top list ad %d with by=device_type&by_limit=2: %+v", a.AdID, a)
		}
	}
	// A window without traffic: zero totals, no values, the rates null.
	body := string(ok("/ads/1/breakdown?by=os&start=2020-01-01T00:00:00Z&end=2020-01-01T05:00:00Z"))
	if !strings.Contains(body, `"values":[]`) || !strings.Contains(body, `"viewability_rate":null`) {
		t.Fatalf("empty breakdown: %s", body)
	}
}

// The same on the loopback cluster (skipped without ADTRACKER_TEST_CLUSTER_ADDRS): the service over the Distributed rollups gives
// the single-node answers. Replicas are synced first; a read may pick either replica of a shard.
func TestScreenedTrafficCluster(t *testing.T) {
	cl := testenv.ClusterEnv(t)
	database := cl.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db, err := chstore.Open(ctx, chstore.Config{Addr: strings.Join(cl.Addrs, ","), Database: database, Cluster: cl.Name}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	files, err := db.MigrationFiles()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Migrate(ctx, files); err != nil {
		t.Fatal(err)
	}
	b, want := screenedTraffic(6000)
	if err := chstore.NewSink(db).Insert(ctx, b); err != nil {
		t.Fatal(err)
	}
	for node, addr := range cl.Nodes {
		c, err := ch.Open(&ch.Options{Addr: []string{addr}, Auth: ch.Auth{Database: database}, DialTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"ad_stats_minute_local", "ad_stats_hour_local", "ad_breakdown_hour_local"} {
			if err := c.Exec(ctx, "SYSTEM SYNC REPLICA "+table); err != nil {
				t.Fatalf("%s: SYSTEM SYNC REPLICA %s: %v", node, table, err)
			}
		}
		c.Close()
	}
	checkScreened(t, New(db.Conn, database), want)
}
