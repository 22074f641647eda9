package vast

import (
	"bytes"
	"encoding/xml"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adtracker/adtracker/catalog"
	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/event"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const (
	testBase  = "https://track.example.com"
	testServe = "0190a6f2-1c3b-7e4d-8a5f-6b7c8d9e0f10"
)

func testEntry() catalog.Entry {
	return catalog.Entry{Status: catalog.StatusActive, TargetURL: "https://example.com/landing?a=1&b=2", Creative: &catalog.Creative{
		Version: 3, Name: `Bikes & "more" <launch>`, VideoURL: "https://cdn.example.com/bike.mp4?x=1&y=]]>", DurationSeconds: 30,
		MimeType: "video/mp4", Width: 1280, Height: 720, BitrateKbps: 2000, Delivery: "progressive", Weight: 1,
	}}
}

// doc is the structure a VAST 4 reader sees, as far as adtracker fills it.
type doc struct {
	XMLName xml.Name `xml:"VAST"`
	Version string   `xml:"version,attr"`
	Ads     []struct {
		ID     string `xml:"id,attr"`
		InLine struct {
			AdSystem    string   `xml:"AdSystem"`
			AdTitle     string   `xml:"AdTitle"`
			AdServingID string   `xml:"AdServingId"`
			Error       []string `xml:"Error"`
			Impression  []string `xml:"Impression"`
			Viewable    struct {
				Viewable         []string `xml:"Viewable"`
				NotViewable      []string `xml:"NotViewable"`
				ViewUndetermined []string `xml:"ViewUndetermined"`
			} `xml:"ViewableImpression"`
			Creatives []struct {
				UniversalAdID string `xml:"UniversalAdId"`
				Linear        struct {
					Duration string `xml:"Duration"`
					Tracking []struct {
						Event  string `xml:"event,attr"`
						Offset string `xml:"offset,attr"`
						URL    string `xml:",chardata"`
					} `xml:"TrackingEvents>Tracking"`
					ClickThrough string `xml:"VideoClicks>ClickThrough"`
					MediaFiles   []struct {
						Delivery string `xml:"delivery,attr"`
						Type     string `xml:"type,attr"`
						Width    int    `xml:"width,attr"`
						Height   int    `xml:"height,attr"`
						Bitrate  int    `xml:"bitrate,attr"`
						URL      string `xml:",chardata"`
					} `xml:"MediaFiles>MediaFile"`
				} `xml:"Linear"`
			} `xml:"Creatives>Creative"`
		} `xml:"InLine"`
	} `xml:"Ad"`
}

func render(t *testing.T, e catalog.Entry) []byte {
	t.Helper()
	return Render(testBase, 42, e).AppendTo(nil, []byte(testServe))
}

func parse(t *testing.T, b []byte) doc {
	t.Helper()
	var d doc
	if err := xml.Unmarshal(b, &d); err != nil {
		t.Fatalf("not XML: %v\n%s", err, b)
	}
	return d
}

func TestRenderGolden(t *testing.T) {
	got := render(t, testEntry())
	path := filepath.Join("testdata", "ad42.golden.xml")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("document differs from %s (go test ./vast -run Golden -update rewrites it):\n%s", path, got)
	}
	empty, err := os.ReadFile(filepath.Join("testdata", "empty.golden.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(empty) != Empty {
		t.Errorf("Empty = %q, golden %q", Empty, empty)
	}
}

// The document parses back into the structure a player reads, with every field from the catalogue and the serve id everywhere.
func TestRenderParsesBack(t *testing.T) {
	d := parse(t, render(t, testEntry()))
	if d.Version != "4.2" || len(d.Ads) != 1 || d.Ads[0].ID != "42" {
		t.Fatalf("VAST version %q with %d ads", d.Version, len(d.Ads))
	}
	in := d.Ads[0].InLine
	if in.AdSystem != "adtracker" || in.AdTitle != `Bikes & "more" <launch>` || in.AdServingID != testServe {
		t.Errorf("AdSystem %q AdTitle %q AdServingId %q", in.AdSystem, in.AdTitle, in.AdServingID)
	}
	if len(in.Impression) != 1 || len(in.Error) != 1 || !strings.Contains(in.Error[0], "[ERRORCODE]") {
		t.Errorf("Impression %q Error %q", in.Impression, in.Error)
	}
	if len(in.Viewable.Viewable) != 1 || len(in.Viewable.NotViewable) != 1 || len(in.Viewable.ViewUndetermined) != 1 {
		t.Errorf("ViewableImpression %+v", in.Viewable)
	}
	if len(in.Creatives) != 1 {
		t.Fatalf("%d creatives", len(in.Creatives))
	}
	c := in.Creatives[0]
	lin := c.Linear
	if c.UniversalAdID != "42" || lin.Duration != "00:00:30" {
		t.Errorf("UniversalAdId %q Duration %q", c.UniversalAdID, lin.Duration)
	}
	if lin.ClickThrough != testBase+"/c/42?sv="+testServe {
		t.Errorf("ClickThrough %q", lin.ClickThrough)
	}
	if len(lin.MediaFiles) != 1 {
		t.Fatalf("%d media files", len(lin.MediaFiles))
	}
	mf := lin.MediaFiles[0]
	if mf.URL != "https://cdn.example.com/bike.mp4?x=1&y=]]>" || mf.Type != "video/mp4" || mf.Width != 1280 || mf.Height != 720 ||
		mf.Bitrate != 2000 || mf.Delivery != "progressive" {
		t.Errorf("MediaFile %+v", mf)
	}
	seen := map[string]int{}
	var offsets []string
	for _, tr := range lin.Tracking {
		seen[tr.Event]++
		if tr.Event == "progress" {
			offsets = append(offsets, tr.Offset)
		}
	}
	// Every type adtracker stores has its place: the Linear tracking events, or its own element checked above.
	for _, typ := range event.Types() {
		switch typ {
		case event.TypeImpression, event.TypeClick, event.TypeError, event.TypeViewable, event.TypeNotViewable,
			event.TypeViewUndetermined, event.TypeVerificationNotExecuted:
			continue
		case event.TypeProgress:
		default:
			if seen[typ.VASTName()] != 1 {
				t.Errorf("Tracking event=%q appears %d times", typ.VASTName(), seen[typ.VASTName()])
			}
		}
	}
	if strings.Join(offsets, ",") != "00:00:02.000,00:00:05.000,00:00:10.000,00:00:15.000" {
		t.Errorf("progress offsets %v (only those below the 30 s duration)", offsets)
	}
}

// No bitrate attribute when the catalogue does not state one; no progress beyond a short ad's end.
func TestRenderOptional(t *testing.T) {
	e := testEntry()
	e.Creative.BitrateKbps, e.Creative.DurationSeconds = 0, 4
	b := render(t, e)
	if bytes.Contains(b, []byte("bitrate=")) {
		t.Error("bitrate attribute without a bitrate")
	}
	d := parse(t, b)
	n := 0
	for _, tr := range d.Ads[0].InLine.Creatives[0].Linear.Tracking {
		if tr.Event == "progress" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d progress elements for a 4 s ad, want 1 (2 s)", n)
	}
}

// Every tracking URL of the document, fired as a player fires it (macros expanded), is a pixel the decoder accepts: the type in
// its path, ad 42, and the event id derived from the serve id, distinct per URL.
func TestTrackingURLsRoundTrip(t *testing.T) {
	d := parse(t, render(t, testEntry()))
	in := d.Ads[0].InLine
	type fired struct {
		url  string
		want event.Type
	}
	var urls []fired
	for _, u := range in.Impression {
		urls = append(urls, fired{u, event.TypeImpression})
	}
	for _, u := range in.Error {
		urls = append(urls, fired{u, event.TypeError})
	}
	for _, u := range in.Viewable.Viewable {
		urls = append(urls, fired{u, event.TypeViewable})
	}
	for _, u := range in.Viewable.NotViewable {
		urls = append(urls, fired{u, event.TypeNotViewable})
	}
	for _, u := range in.Viewable.ViewUndetermined {
		urls = append(urls, fired{u, event.TypeViewUndetermined})
	}
	for _, tr := range in.Creatives[0].Linear.Tracking {
		urls = append(urls, fired{tr.URL, event.ParseType([]byte(tr.Event))})
	}
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	dec := &decode.Decoder{Now: func() time.Time { return now }}
	ids := map[event.UUID]string{}
	macros := strings.NewReplacer("[TIMESTAMP]", url.QueryEscape("2026-12-06T08:59:58.123Z"), "[ADPLAYHEAD]", "00:00:07.250",
		"[CACHEBUSTING]", "12345678", "[ERRORCODE]", "405")
	for _, f := range urls {
		u, err := url.Parse(macros.Replace(f.url))
		if err != nil {
			t.Fatalf("%s: %v", f.url, err)
		}
		if !strings.HasPrefix(f.url, testBase+"/t/") {
			t.Errorf("%s is not an absolute pixel URL on the public base", f.url)
			continue
		}
		typ := event.ParseType([]byte(strings.TrimPrefix(u.Path, "/t/")))
		if typ != f.want || !typ.Valid() {
			t.Errorf("%s: path names %v, want %v", f.url, typ, f.want)
		}
		var e event.Event
		if ferr := dec.DecodePixel([]byte(u.RawQuery), typ, &e); ferr != nil {
			t.Errorf("%s: %s (%s)", f.url, ferr.Msg, ferr.Field)
			continue
		}
		wantMs := uint32(7250)
		if typ == event.TypeProgress {
			off, _ := time.Parse("15:04:05.000", strings.TrimSpace(offsetOf(in.Creatives[0].Linear.Tracking, f.url)))
			wantMs = uint32(off.Hour()*3600000 + off.Minute()*60000 + off.Second()*1000)
		}
		if e.Type != typ || e.AdID != 42 || e.PlaybackMs != wantMs || e.EventTime != now.Unix()-2 {
			t.Errorf("%s: decoded type %v ad %d playback %d time %d", f.url, e.Type, e.AdID, e.PlaybackMs, e.EventTime)
		}
		if e.Flags&event.FlagClientID == 0 || e.ID != decode.ServeEventID([]byte(testServe), typ, e.PlaybackMs) {
			t.Errorf("%s: event id %s is not the serve-derived one", f.url, e.ID)
		}
		if prev, dup := ids[e.ID]; dup {
			t.Errorf("%s and %s share event id %s", prev, f.url, e.ID)
		}
		ids[e.ID] = f.url
	}
	if len(urls) < 25 {
		t.Errorf("only %d tracking URLs", len(urls))
	}
}

func offsetOf(trs []struct {
	Event  string `xml:"event,attr"`
	Offset string `xml:"offset,attr"`
	URL    string `xml:",chardata"`
}, u string) string {
	for _, tr := range trs {
		if tr.URL == u {
			return tr.Offset
		}
	}
	return ""
}

func BenchmarkAppend(b *testing.B) {
	t := Render(testBase, 42, testEntry())
	buf := make([]byte, 0, 16<<10)
	serve := []byte(testServe)
	b.ReportAllocs()
	for b.Loop() {
		buf = t.AppendTo(buf[:0], serve)
	}
}

// Characters XML 1.0 cannot carry (a row written straight into Postgres could hold them) become U+FFFD; the document still parses.
func TestRenderInvalidXMLCharacters(t *testing.T) {
	e := testEntry()
	e.Creative.Name = "bad\x01name\xff"
	e.Creative.VideoURL = "https://cdn.example.com/v\x02.mp4"
	d := parse(t, render(t, e))
	if got := d.Ads[0].InLine.AdTitle; got != "bad\uFFFDname\uFFFD" {
		t.Errorf("AdTitle %q", got)
	}
	if got := d.Ads[0].InLine.Creatives[0].Linear.MediaFiles[0].URL; got != "https://cdn.example.com/v\uFFFD.mp4" {
		t.Errorf("MediaFile %q", got)
	}
}
