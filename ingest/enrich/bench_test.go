package enrich

import (
	"net/netip"
	"testing"

	"github.com/adtracker/adtracker/ingest/event"
)

// BenchmarkParse is the cost of a cache miss: one go-useragent parse.
func BenchmarkParse(b *testing.B) {
	en := New(nil, 0)
	ua := []byte(userAgents[0].ua)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		en.parse(ua)
	}
}

// BenchmarkEnrich is the per-event cost with the user agent cached and a country database: rotating over the table's user
// agents and 256 addresses.
func BenchmarkEnrich(b *testing.B) {
	geo, err := OpenGeo(writeMMDB(b))
	if err != nil {
		b.Fatal(err)
	}
	defer geo.Close()
	en := New(geo, 0)
	evs := make([]event.Event, 256)
	for i := range evs {
		evs[i].SetUserAgent([]byte(userAgents[i%len(userAgents)].ua))
		evs[i].IP = netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}).As16()
		en.Enrich(&evs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		en.Enrich(&evs[i&255])
	}
}

func TestEnrichAllocatesNothing(t *testing.T) {
	geo, err := OpenGeo(writeMMDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer geo.Close()
	en := New(geo, 0)
	e := &event.Event{IP: netip.MustParseAddr("203.0.113.9").As16()}
	e.SetUserAgent([]byte(userAgents[0].ua))
	en.Enrich(e) // parse and decode once
	if n := testing.AllocsPerRun(1000, func() { en.Enrich(e) }); n != 0 {
		t.Fatalf("%v allocations per event", n)
	}
	if n := testing.AllocsPerRun(100, func() { en.parse(e.UA()) }); n != 0 {
		t.Fatalf("%v allocations per parse (a cache miss)", n)
	}
}
