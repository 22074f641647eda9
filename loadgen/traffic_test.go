package loadgen

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/event"
)

func testAds(n int) []uint64 {
	ads := make([]uint64, n)
	for i := range ads {
		ads[i] = uint64(1000 + i)
	}
	return ads
}

func newTestTraffic(single bool, seed uint64) *Traffic {
	return NewTraffic(TrafficConfig{Ads: testAds(100), Single: single, Seed: seed}, NewIDs([6]byte{1, 2, 3, 4, 5, 6}, 7))
}

// The mix per impression must match the documented ratios. With ~220k views the standard error of each ratio is below 0.002, so a
// 0.01 band (0.002 for clicks) fails on any real change of the model and practically never by chance.
func TestMixProportions(t *testing.T) {
	f := func(single bool, want map[event.Type]float64) {
		t.Helper()
		tr := newTestTraffic(single, 42)
		var counts [16]float64
		var e Event
		for i := 0; i < 1_000_000; i++ {
			tr.Next(&e)
			counts[e.Type]++
		}
		imps := counts[event.TypeImpression]
		for typ := range counts {
			got := counts[typ] / imps
			w := want[event.Type(typ)]
			tol := 0.01
			if event.Type(typ) == event.TypeClick {
				tol = 0.002
			}
			if math.Abs(got-w) > tol {
				t.Errorf("single=%v: %s per impression = %.4f, want %.3f ± %.3f", single, event.Type(typ), got, w, tol)
			}
			if w != MixRatio(event.Type(typ), single) {
				t.Errorf("MixRatio(%s, %v) = %v, want %v", event.Type(typ), single, MixRatio(event.Type(typ), single), w)
			}
		}
	}
	f(false, map[event.Type]float64{
		event.TypeImpression: 1, event.TypeStart: 0.9, event.TypeFirstQuartile: 0.8, event.TypeMidpoint: 0.7,
		event.TypeThirdQuartile: 0.6, event.TypeComplete: 0.5, event.TypeClick: 0.02,
	})
	f(true, map[event.Type]float64{event.TypeImpression: 1, event.TypeClick: 0.02})
}

// Events of one view come in funnel order with the same ad, viewer and session, and playback time grows.
func TestViewsAreCoherent(t *testing.T) {
	tr := newTestTraffic(false, 7)
	var prev, e Event
	for i := 0; i < 100_000; i++ {
		tr.Next(&e)
		if e.Type != event.TypeImpression {
			if e.AdID != prev.AdID || e.Viewer != prev.Viewer || e.Session != prev.Session || e.IP != prev.IP || e.UA != prev.UA {
				t.Fatalf("event %d (%s) left its view: %+v after %+v", i, e.Type, e, prev)
			}
			if e.Type != event.TypeClick && prev.Type != event.TypeImpression && e.PlaybackMs <= prev.PlaybackMs {
				t.Fatalf("event %d: playback %d after %d", i, e.PlaybackMs, prev.PlaybackMs)
			}
		} else if e.PlaybackMs >= 0 {
			t.Fatalf("impression with playback time %d", e.PlaybackMs)
		}
		if e.Type == event.TypeClick && prev.Type == event.TypeClick {
			t.Fatalf("two clicks in one view")
		}
		prev = e
	}
}

// Ad popularity follows Zipf(s=1.1, v=1): P(rank k) ∝ (1+k)^-1.1, so rank 0 gets 2^1.1 ≈ 2.14 times rank 1's traffic.
func TestZipfAds(t *testing.T) {
	tr := newTestTraffic(true, 3)
	counts := map[uint64]float64{}
	var e Event
	const n = 500_000
	for i := 0; i < n; i++ {
		tr.Next(&e)
		if e.Type == event.TypeImpression {
			counts[e.AdID]++
		}
	}
	r01 := counts[1000] / counts[1001]
	r19 := counts[1001] / counts[1009] // (10/2)^1.1 ≈ 5.87
	if math.Abs(r01-math.Pow(2, 1.1)) > 0.1 || math.Abs(r19-math.Pow(5, 1.1)) > 0.4 {
		t.Fatalf("rank ratios %.3f and %.3f, want ≈ %.3f and %.3f", r01, r19, math.Pow(2, 1.1), math.Pow(5, 1.1))
	}
	if len(counts) != 100 {
		t.Fatalf("%d of 100 ads seen", len(counts))
	}
}

func TestDistinctViewersAndIPs(t *testing.T) {
	tr := newTestTraffic(true, 9)
	viewers, ips := map[uint64]bool{}, map[[4]byte]bool{}
	var e Event
	for i := 0; i < 50_000; i++ {
		tr.Next(&e)
		viewers[e.Viewer] = true
		ips[e.IP] = true
		if e.IP[0] == 0 || e.IP[0] > 223 {
			t.Fatalf("address %v is not unicast IPv4", e.IP)
		}
	}
	// 49k views over a million viewers: nearly all distinct.
	if len(viewers) < 45_000 || len(ips) < 45_000 {
		t.Fatalf("%d viewers and %d addresses in 50k events", len(viewers), len(ips))
	}
}

func TestIDs(t *testing.T) {
	run := [6]byte{0xde, 0xad, 0xbe, 0xef, 0x01, 0x02}
	prefix := RunPrefix(run)
	if prefix != "deadbeef-0102-" {
		t.Fatalf("prefix %q", prefix)
	}
	seen := map[event.UUID]bool{}
	for w := 0; w < 3; w++ {
		g := NewIDs(run, w)
		for i := 0; i < 1000; i++ {
			u := g.Next()
			s := u.String()
			if !strings.HasPrefix(s, prefix) || s[14] != '4' || !strings.ContainsRune("89ab", rune(s[19])) {
				t.Fatalf("id %s: not this run's prefix or not a v4 uuid", s)
			}
			if seen[u] {
				t.Fatalf("duplicate id %s", s)
			}
			seen[u] = true
		}
	}
}

// Every body the generator builds must decode with the server's own decoder into the event it describes.
func TestBodiesDecodeWithIngestDecoder(t *testing.T) {
	var clock Clock
	ts := clock.Now()
	wantTime, _ := time.Parse(time.RFC3339, string(ts))
	d := &decode.Decoder{}
	check := func(where string, got *event.Event, want *Event) {
		t.Helper()
		if got.ID != want.ID || got.Type != want.Type || got.AdID != want.AdID || got.EventTime != wantTime.Unix() {
			t.Fatalf("%s: decoded id %s type %s ad %d time %d, want %s %s %d %d", where, got.ID, got.Type, got.AdID, got.EventTime,
				want.ID, want.Type, want.AdID, wantTime.Unix())
		}
		if string(got.ViewerID()) != string(appendHex64(nil, 'v', want.Viewer)) ||
			string(got.SessionID()) != string(appendHex64(nil, 's', want.Session)) {
			t.Fatalf("%s: viewer %q session %q", where, got.ViewerID(), got.SessionID())
		}
		if want.PlaybackMs >= 0 && int64(got.PlaybackMs) != want.PlaybackMs {
			t.Fatalf("%s: playback %d ms, want %d", where, got.PlaybackMs, want.PlaybackMs)
		}
		if got.Flags&event.FlagClientID == 0 {
			t.Fatalf("%s: event_id not marked as the client's", where)
		}
	}
	tr := newTestTraffic(false, 11)
	evs := make([]Event, 500)
	for i := range evs {
		tr.Next(&evs[i])
	}
	for i := range evs {
		var got event.Event
		body := AppendJSON(nil, &evs[i], false, ts)
		if ferr := d.DecodeJSON(body, evs[i].Type, &got); ferr != nil {
			t.Fatalf("single %s: %v", body, ferr)
		}
		check("single", &got, &evs[i])
		if want := [16]byte{10: 0xff, 11: 0xff, 12: evs[i].IP[0], 13: evs[i].IP[1], 14: evs[i].IP[2], 15: evs[i].IP[3]}; got.IP != want {
			t.Fatalf("ip %v, want %v", got.IP, want)
		}

		got.Reset()
		uri := AppendPixel(nil, &evs[i], ts, uint32(i))
		var u fasthttp.URI
		if err := u.Parse(nil, uri); err != nil {
			t.Fatal(err)
		}
		typ := event.ParseType(bytes.TrimPrefix(u.Path(), []byte("/t/")))
		if ferr := d.DecodePixel(u.QueryString(), typ, &got); ferr != nil {
			t.Fatalf("pixel %s: %v", uri, ferr)
		}
		check("pixel", &got, &evs[i])
	}
	for _, ndjson := range []bool{true, false} {
		body := AppendBatch(nil, evs, ndjson, ts)
		n := 0
		top := d.DecodeBatch(body, ndjson, &event.Event{}, func(i int, e *event.Event, ferr *decode.FieldError) {
			if ferr != nil {
				t.Fatalf("batch item %d: %v", i, ferr)
			}
			check("batch", e, &evs[i])
			n++
		})
		if top != nil || n != len(evs) {
			t.Fatalf("ndjson=%v: top error %v, %d items decoded of %d", ndjson, top, n, len(evs))
		}
	}
}

func TestRenderingAllocs(t *testing.T) {
	tr := newTestTraffic(false, 1)
	var clock Clock
	evs := make([]Event, 100)
	buf := make([]byte, 0, 64<<10)
	var e Event
	n := testing.AllocsPerRun(200, func() {
		tr.Next(&e)
		buf = AppendJSON(buf[:0], &e, false, clock.Now())
		buf = AppendPixel(buf[:0], &e, clock.Now(), tr.Uint32())
		for i := range evs {
			tr.Next(&evs[i])
		}
		buf = AppendBatch(buf[:0], evs, true, clock.Now())
	})
	if n != 0 {
		t.Fatalf("building requests allocates %v times per round", n)
	}
}

func BenchmarkBuildSingle(b *testing.B) {
	tr := newTestTraffic(true, 1)
	var clock Clock
	buf := make([]byte, 0, 1024)
	var e Event
	b.ReportAllocs()
	for b.Loop() {
		tr.Next(&e)
		buf = AppendJSON(buf[:0], &e, false, clock.Now())
	}
}
