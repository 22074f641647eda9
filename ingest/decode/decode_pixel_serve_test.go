package decode

import (
	"strings"
	"testing"

	"github.com/adtracker/adtracker/ingest/event"
)

const testServe = "0190a6f2-1c3b-7e4d-8a5f-6b7c8d9e0f10"

// The ids are RFC 9562 UUIDv5; the expected values come from Python's uuid.uuid5 over the same namespace and names, an independent
// implementation.
func TestServeEventIDIsUUIDv5(t *testing.T) {
	for _, c := range []struct {
		typ  event.Type
		off  uint32
		want string
	}{
		{event.TypeImpression, 0, "81ef7a10-51be-5e4f-bf18-da8719e36347"},
		{event.TypeImpression, 5000, "81ef7a10-51be-5e4f-bf18-da8719e36347"}, // the offset counts for progress only
		{event.TypeProgress, 5000, "226a7be5-384a-5e18-853b-0b5ef4655ac4"},
		{event.TypeClick, 0, "efe286d2-d2d2-5879-81f3-3539e1215fa2"},
	} {
		if got := ServeEventID([]byte(testServe), c.typ, c.off).String(); got != c.want {
			t.Errorf("%s/%d: %s, want %s", c.typ, c.off, got, c.want)
		}
	}
	seen := map[event.UUID]string{}
	for _, typ := range event.Types() {
		for _, serve := range []string{testServe, "other-serve", strings.Repeat("x", MaxServeIDLen)} {
			id := ServeEventID([]byte(serve), typ, 2000)
			if prev, dup := seen[id]; dup {
				t.Errorf("%s/%s collides with %s", serve, typ, prev)
			}
			seen[id] = serve + "/" + typ.String()
		}
	}
	if ServeEventID([]byte(testServe), event.TypeProgress, 2000) == ServeEventID([]byte(testServe), event.TypeProgress, 5000) {
		t.Error("progress offsets share an id")
	}
	if n := testing.AllocsPerRun(100, func() { ServeEventID([]byte(testServe), event.TypeProgress, 15000) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func TestDecodePixelServe(t *testing.T) {
	d := testDecoder()
	good := func(query string, typ event.Type, want event.Event) {
		t.Helper()
		e, err := decodePixel(d, query, typ)
		if err != nil {
			t.Errorf("%s: %+v", query, err)
			return
		}
		if e != want {
			t.Errorf("%s:\n got %s\nwant %s", query, dump(&e), dump(&want))
		}
	}
	served := func(typ event.Type, ms uint32) func(e *event.Event) {
		return func(e *event.Event) {
			e.PlaybackMs = ms
			e.ID = ServeEventID([]byte(testServe), typ, ms)
			e.Flags = event.FlagClientID
		}
	}
	good("ad_id=42&sv="+testServe+"&pt=00:00:07.250", event.TypeStart, ev(event.TypeStart, 42, served(event.TypeStart, 7250)))
	// The progress offset is the playback time and part of the id; pt (when the player fired) does not change either.
	good("ad_id=42&sv="+testServe+"&po=5&pt=00:00:05.480", event.TypeProgress, ev(event.TypeProgress, 42, served(event.TypeProgress, 5000)))
	good("ad_id=42&pt=6&po=00:00:05.000&sv="+testServe, event.TypeProgress, ev(event.TypeProgress, 42, served(event.TypeProgress, 5000)))
	// po means nothing for other types.
	good("ad_id=42&sv="+testServe+"&po=5", event.TypeMidpoint, ev(event.TypeMidpoint, 42, served(event.TypeMidpoint, 0)))
	// An ad server's own eid wins.
	good("ad_id=42&sv="+testServe+"&eid=0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d", event.TypeStart, ev(event.TypeStart, 42, func(e *event.Event) {
		e.ID = mustUUID("0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d")
		e.Flags = event.FlagClientID
	}))
	// Unexpanded [ADSERVINGID], empty, -1: no serve id, so no derived id.
	for _, v := range []string{"[ADSERVINGID]", "", "-1"} {
		good("ad_id=42&sv="+v, event.TypeStart, ev(event.TypeStart, 42, nil))
	}
	bad := func(query, field, msg string) {
		t.Helper()
		if _, err := decodePixel(d, query, event.TypeProgress); err == nil || err.Status != 400 || err.Field != field || err.Msg != msg {
			t.Errorf("%s: got %+v, want field %q msg %q", query, err, field, msg)
		}
	}
	bad("ad_id=42&sv=a&sv=a", "sv", "sv appears more than once")
	bad("ad_id=42&sv="+strings.Repeat("x", 65), "sv", "sv must be at most 64 bytes")
	bad("ad_id=42&sv=a%01b", "sv", "sv must be printable ascii")
	bad("ad_id=42&po=5&po=5", "po", "po appears more than once")
	bad("ad_id=42&po=five", "po", "po must be seconds or hh:mm:ss.mmm")
	bad("ad_id=42&po=999999999", "po", "po is too large")
}

func TestValidServeID(t *testing.T) {
	for v, want := range map[string]bool{testServe: true, "a": true, "": false, "[ADSERVINGID]": false, "-1": false, "a b": false,
		strings.Repeat("x", 64): true, strings.Repeat("x", 65): false} {
		if ValidServeID([]byte(v)) != want {
			t.Errorf("ValidServeID(%q) = %v", v, !want)
		}
	}
}

// The cost a serve id adds to a pixel: one SHA-1 over ~80 bytes.
func BenchmarkServeEventID(b *testing.B) {
	serve := []byte(testServe)
	b.ReportAllocs()
	for b.Loop() {
		ServeEventID(serve, event.TypeProgress, 15000)
	}
}
