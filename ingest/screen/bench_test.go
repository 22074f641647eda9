package screen

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/ingest/enrich"
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/geotest"
)

// benchSetup is a production-like screener: 1,000 deny networks, three deny user agents, a one-hour click window in the default
// 8 MiB table, enrichment with a country database; events rotate over the table's user agents (all cached after the first
// round) and 256 addresses, sent with the headers a browser sends.
func benchSetup(t testing.TB, typ event.Type) (*Screener, *fasthttp.RequestCtx, []event.Event) {
	deny := make([]string, 0, 1000)
	for i := 0; i < 1000; i++ {
		deny = append(deny, fmt.Sprintf("100.%d.%d.0/24", i/256, i%256))
	}
	geo, err := enrich.OpenGeo(geotest.Countries(t, map[string]string{"203.0.113.0/24": "NZ", "2001:db8::/32": "JP"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = geo.Close() })
	s, err := New(Config{DenyCIDRs: deny, DenyUserAgents: []string{"badplayer", "scanner", "monitor"}, ClickWindow: time.Hour,
		ClickTableBytes: 8 << 20}, enrich.New(geo))
	if err != nil {
		t.Fatal(err)
	}
	ctx := new(fasthttp.RequestCtx)
	for _, kv := range [][2]string{{"Host", "track.example.com"}, {"User-Agent", chrome}, {"Accept", "image/avif,image/webp,*/*"},
		{"Accept-Language", "en-GB,en;q=0.9"}, {"Accept-Encoding", "gzip, deflate, br"}, {"Referer", "https://publisher.example/"},
		{"Sec-Fetch-Dest", "image"}, {"Sec-Fetch-Mode", "no-cors"}, {"Sec-Fetch-Site", "cross-site"}} {
		ctx.Request.Header.Set(kv[0], kv[1])
	}
	evs := make([]event.Event, 256)
	for i := range evs {
		e := &evs[i]
		e.Type, e.AdID, e.ReceiveTime = typ, uint64(1+i%7), now
		e.SetUserAgent([]byte(userAgents[i%len(userAgents)].ua))
		e.IP = netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}).As16()
		e.SetViewerID(fmt.Appendf(nil, "viewer-%d", i))
		s.Screen(ctx, e) // the user agent verdicts and country records are cached from here on
	}
	return s, ctx, evs
}

// BenchmarkScreenEnrich is the per-event cost of screening and enrichment on the handler path (an impression; target ≤ 1 µs,
// 0 allocations).
func BenchmarkScreenEnrich(b *testing.B) {
	s, ctx, evs := benchSetup(b, event.TypeImpression)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Screen(ctx, &evs[i&255])
	}
}

// BenchmarkScreenEnrichClick adds the duplicate-click table (one lock, one cache line) to the above.
func BenchmarkScreenEnrichClick(b *testing.B) {
	s, ctx, evs := benchSetup(b, event.TypeClick)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := &evs[i&255]
		e.ReceiveTime = now + int64(i>>8) // the same clients clicking again: mostly duplicates, as a click flood would be
		s.Screen(ctx, e)
	}
}

// BenchmarkCrawlerListMiss is the cost of a user agent the cache does not hold: the crawler list's regular expression.
func BenchmarkCrawlerListMiss(b *testing.B) {
	a := newAgentVerdicts(nil, 16, nil)
	ua := []byte(chrome)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		a.compute(ua)
	}
}

func TestScreenEnrichAllocatesNothing(t *testing.T) {
	for _, typ := range []event.Type{event.TypeImpression, event.TypeClick} {
		s, ctx, evs := benchSetup(t, typ)
		i := 0
		if n := testing.AllocsPerRun(1000, func() { s.Screen(ctx, &evs[i&255]); i++ }); n != 0 {
			t.Fatalf("%s: %v allocations per event", typ, n)
		}
	}
}

// BenchmarkScreenEnrichNewViewers is the same with a new address on every event: no address cache hit, the country
// database's search tree walked each time (its record still cached).
func BenchmarkScreenEnrichNewViewers(b *testing.B) {
	s, ctx, evs := benchSetup(b, event.TypeImpression)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := &evs[i&255]
		e.IP = netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}).As16()
		e.IP[12] = byte(i >> 16) // 203.x.x.x: a distinct address per event over the run, all outside the database but for 203.0.113/24
		e.IP[13] = byte(i >> 8)
		s.Screen(ctx, e)
	}
}
