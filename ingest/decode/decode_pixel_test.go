package decode

import (
	"strconv"
	"strings"
	"testing"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/valyala/fasthttp"
)

func decodePixel(d *Decoder, query string, typ event.Type) (event.Event, *FieldError) {
	var e event.Event
	err := d.DecodePixel([]byte(query), typ, &e)
	return e, err
}

func TestDecodePixelGood(t *testing.T) {
	d := testDecoder()
	f := func(query string, typ event.Type, want event.Event) {
		t.Helper()
		e, err := decodePixel(d, query, typ)
		if err != nil {
			t.Errorf("%s: unexpected error %+v", query, err)
			return
		}
		if e != want {
			t.Errorf("%s:\n got %s\nwant %s", query, dump(&e), dump(&want))
		}
	}
	seed := unix("2025-04-21T15:00:00Z")
	f("ad_id=42", event.TypeImpression, ev(event.TypeImpression, 42, nil))
	f("ad_id=1&t=2025-04-21T15:00:00Z&pt=12.5&vid=viewer&sid=session&eid=0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d",
		event.TypeFirstQuartile, ev(event.TypeFirstQuartile, 1, func(e *event.Event) {
			e.EventTime = seed
			e.PlaybackMs = 12500
			e.SetViewerID([]byte("viewer"))
			e.SetSessionID([]byte("session"))
			e.ID = mustUUID("0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d")
			e.Flags = event.FlagClientID
		}))
	// What the IAB macros expand to, percent-encoded as the spec requires.
	f("ad_id=42&t=2025-04-21T15%3A00%3A00.020Z&pt=00%3A00%3A07.500&cb=48261537", event.TypeStart,
		ev(event.TypeStart, 42, func(e *event.Event) { e.EventTime = seed; e.PlaybackMs = 7500 }))
	f("ad_id=42&t=2025-04-21T10%3A00%3A00.020-05&pt=00:00:07.5", event.TypeStart,
		ev(event.TypeStart, 42, func(e *event.Event) { e.EventTime = seed; e.PlaybackMs = 7500 }))
	f("ad_id=42&t=2025-04-21T17:00:00.020+02:00", event.TypeStart, // unencoded '+' arrives as a space
		ev(event.TypeStart, 42, func(e *event.Event) { e.EventTime = seed }))
	f("ad_id=42&t=2025-04-21T17:00:00.020%2B02:00", event.TypeStart,
		ev(event.TypeStart, 42, func(e *event.Event) { e.EventTime = seed }))
	f("ad_id=42&t=1745247600", event.TypeStart, ev(event.TypeStart, 42, func(e *event.Event) { e.EventTime = seed }))
	f("ad_id=42&t=1745247600999", event.TypeStart, ev(event.TypeStart, 42, func(e *event.Event) { e.EventTime = seed }))
	// Unexpanded, empty, unknown (-1) and withheld (-2) values mean absent.
	f("ad_id=42&t=[TIMESTAMP]&pt=[ADPLAYHEAD]&vid=[VID]&sid=&eid=%5BEID%5D&cb=[CACHEBUSTING]", event.TypeMidpoint,
		ev(event.TypeMidpoint, 42, nil))
	f("ad_id=42&t=-1&pt=-2&vid=-1&sid=-2&eid=-1", event.TypeMidpoint, ev(event.TypeMidpoint, 42, nil))
	f("ad_id=42&t&pt&vid&sid&eid", event.TypeMidpoint, ev(event.TypeMidpoint, 42, nil))
	// Ignored: cache busters, unknown parameters (even repeated), a type parameter.
	f("cachebuster=1&cb=2&cb=3&foo=bar&foo=baz&type=click&ad_id=42&ERRORCODE=405", event.TypeComplete,
		ev(event.TypeComplete, 42, nil))
	// Playback forms.
	pt := func(v string, ms uint32) {
		t.Helper()
		f("ad_id=1&pt="+v, event.TypeStart, ev(event.TypeStart, 1, func(e *event.Event) { e.PlaybackMs = ms }))
	}
	pt("0", 0)
	pt("12", 12000)
	pt("12.3456", 12346)
	pt(".5", 500)
	pt("01:02:03.004", 3723004)
	pt("24:00:00", 86400000)
	pt("86400", 86400000)
	// The path's camelCase name.
	f("ad_id=1", event.ParseType([]byte("thirdQuartile")), ev(event.TypeThirdQuartile, 1, nil))
	// IDs at the limit.
	long := strings.Repeat("v", event.MaxIDLen)
	f("ad_id=1&vid="+long+"&sid="+long, event.TypeClick, ev(event.TypeClick, 1, func(e *event.Event) {
		e.SetViewerID([]byte(long))
		e.SetSessionID([]byte(long))
	}))
	f("ad_%69d=7&v%69d=a%2Fb", event.TypeClick, ev(event.TypeClick, 7, func(e *event.Event) { e.SetViewerID([]byte("a/b")) }))
}

func TestDecodePixelBad(t *testing.T) {
	d := testDecoder()
	f := func(query string, typ event.Type, field, msg string) {
		t.Helper()
		_, err := decodePixel(d, query, typ)
		if err == nil || err.Status != 400 || err.Field != field || err.Msg != msg {
			t.Errorf("%s: got %+v, want field %q msg %q", query, err, field, msg)
		}
	}
	f("", event.TypeClick, "ad_id", "ad_id is required")
	f("cb=1", event.TypeClick, "ad_id", "ad_id is required")
	f("ad_id=1", event.TypeUnknown, "type", "type is not a known event type")
	f("ad_id=1", event.Type(99), "type", "type is not a known event type")
	for _, v := range []string{"", "0", "-1", "01", "1.5", "1e3", "abc", "[AD_ID]", "%201", "1+"} {
		f("ad_id="+v, event.TypeClick, "ad_id", "ad_id must be a positive integer")
	}
	f("ad_id=9223372036854775808", event.TypeClick, "ad_id", "ad_id is too large")
	f("ad_id=1&ad_id=1", event.TypeClick, "ad_id", "ad_id appears more than once")
	f("ad_id=1&t=1745247600&t=1745247600", event.TypeClick, "t", "t appears more than once")
	f("ad_id=1&vid=a&vid=", event.TypeClick, "vid", "vid appears more than once")
	// t.
	for _, v := range []string{"yesterday", "2025-04-21", "2025-04-21T15:00", "17452476001234", "1745247600.5",
		"2025-04-21T15:00:00+5", "[TIMESTAMP", "-3"} {
		f("ad_id=1&t="+v, event.TypeClick, "t", "t must be an iso 8601 time or unix seconds")
	}
	f("ad_id=1&t=2025-04-21T15:05:31Z", event.TypeClick, "t", "t is too far in the future")
	f("ad_id=1&t=1745248000", event.TypeClick, "t", "t is too far in the future")
	f("ad_id=1&t=2025-04-14T15:00:29Z", event.TypeClick, "t", "t is too old")
	f("ad_id=1&t=0", event.TypeClick, "t", "t is too old")
	// pt.
	for _, v := range []string{"abc", "-5", "1e3", "12s", "00:00:60", "1.2.3", "+1", "00:00:12,5", "."} {
		f("ad_id=1&pt="+v, event.TypeClick, "pt", "pt must be seconds or hh:mm:ss.mmm")
	}
	f("ad_id=1&pt=86400.001", event.TypeClick, "pt", "pt is too large")
	f("ad_id=1&pt=24:00:00.001", event.TypeClick, "pt", "pt is too large")
	f("ad_id=1&pt=99999:00:00", event.TypeClick, "pt", "pt is too large")
	f("ad_id=1&pt="+strings.Repeat("9", 30), event.TypeClick, "pt", "pt is too large")
	// ids.
	f("ad_id=1&vid="+strings.Repeat("v", event.MaxIDLen+1), event.TypeClick, "vid", "vid must be at most 64 bytes")
	f("ad_id=1&sid="+strings.Repeat("s", event.MaxIDLen+1), event.TypeClick, "sid", "sid must be at most 64 bytes")
	f("ad_id=1&vid=a+b", event.TypeClick, "vid", "vid must be printable ascii")
	f("ad_id=1&sid=%C3%A9", event.TypeClick, "sid", "sid must be printable ascii")
	f("ad_id=1&sid=a%00", event.TypeClick, "sid", "sid must be printable ascii")
	f("ad_id=1&eid=abc", event.TypeClick, "eid", "eid must be a uuid")
	f("ad_id=1&eid=00000000-0000-0000-0000-000000000000", event.TypeClick, "eid", "eid must not be the nil uuid")
	// The first bad parameter in query order is reported.
	f("pt=abc&ad_id=0", event.TypeClick, "pt", "pt must be seconds or hh:mm:ss.mmm")
	f("ad_id=0&pt=abc", event.TypeClick, "ad_id", "ad_id must be a positive integer")
}

func TestDecodePixelAllocs(t *testing.T) {
	d := testDecoder()
	query := []byte("ad_id=1&t=2025-04-21T15%3A00%3A00.020Z&pt=00%3A00%3A12.500&vid=viewer&sid=session&eid=0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d&cb=12345678")
	var e event.Event
	n := testing.AllocsPerRun(100, func() {
		e.Reset()
		if err := d.DecodePixel(query, event.TypeFirstQuartile, &e); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocs per pixel decode, want 0", n)
	}
}

func BenchmarkDecodePixel(b *testing.B) {
	d := testDecoder()
	query := []byte("ad_id=1&t=2025-04-21T15%3A00%3A00.020Z&pt=00%3A00%3A12.500&vid=viewer&sid=session&eid=0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d&cb=12345678")
	var e event.Event
	b.ReportAllocs()
	for b.Loop() {
		e.Reset()
		if err := d.DecodePixel(query, event.TypeFirstQuartile, &e); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzDecodePixel(f *testing.F) {
	f.Add("ad_id=1&t=2025-04-21T15:00:00Z&pt=12.5&vid=viewer&sid=session&eid=0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d", uint8(event.TypeFirstQuartile))
	f.Add("ad_id=42&t=[TIMESTAMP]&pt=00%3A00%3A07.500&cb=48261537", uint8(event.TypeStart))
	d := testDecoder()
	f.Fuzz(func(t *testing.T, query string, typ uint8) {
		var e event.Event
		err := d.DecodePixel([]byte(query), event.Type(typ), &e)
		if err != nil {
			if err.Status != 400 || err.Field == "" || err.Msg == "" {
				t.Fatalf("malformed error %+v", err)
			}
			return
		}
		var args fasthttp.Args // fasthttp's reading of the query is the oracle
		args.Parse(query)
		want, perr := strconv.ParseUint(string(args.Peek("ad_id")), 10, 64)
		if perr != nil || e.AdID != want || want == 0 {
			t.Fatalf("%q: ad_id %d, strconv says %d (%v)", query, e.AdID, want, perr)
		}
		if e.Type != event.Type(typ) || !e.Type.Valid() || !printableASCII(e.ViewerID()) || !printableASCII(e.SessionID()) ||
			e.EventTime < testNow.Unix()-7*86400 || e.EventTime > testNow.Unix()+300 || e.PlaybackMs > 86400000 {
			t.Fatalf("%q: accepted %s", query, dump(&e))
		}
	})
}
