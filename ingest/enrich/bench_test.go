package enrich

import (
	"net/netip"
	"testing"

	"github.com/adtracker/adtracker/ingest/event"
)

// BenchmarkParse is the cost of a user agent the screener's cache does not hold: one go-useragent parse.
func BenchmarkParse(b *testing.B) {
	en := New(nil)
	ua := []byte(userAgents[0].ua)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		en.parse(ua)
	}
}

// BenchmarkApply is the per-event cost once the user agent's word is cached (by the screener), with a country database:
// rotating over the table's user agents and 256 addresses.
func BenchmarkApply(b *testing.B) {
	geo, err := OpenGeo(writeMMDB(b))
	if err != nil {
		b.Fatal(err)
	}
	defer geo.Close()
	en := New(geo)
	evs := make([]event.Event, 256)
	agents := make([]uint64, len(evs))
	for i := range evs {
		evs[i].SetUserAgent([]byte(userAgents[i%len(userAgents)].ua))
		evs[i].IP = netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}).As16()
		agents[i] = en.Agent(evs[i].UA())
		en.Apply(&evs[i], agents[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		en.Apply(&evs[i&255], agents[i&255])
	}
}

func TestEnrichAllocatesNothing(t *testing.T) {
	geo, err := OpenGeo(writeMMDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer geo.Close()
	en := New(geo)
	e := &event.Event{IP: netip.MustParseAddr("203.0.113.9").As16()}
	e.SetUserAgent([]byte(userAgents[0].ua))
	enrichOnce(en, e) // decode the country record once
	if n := testing.AllocsPerRun(1000, func() { enrichOnce(en, e) }); n != 0 {
		t.Fatalf("%v allocations per event (a parse and the country)", n)
	}
}
