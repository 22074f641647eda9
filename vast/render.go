// Package vast renders VAST 4.2 InLine documents from the in-memory ad catalogue and serves them on GET /vast and /vast/{ad_id}.
package vast

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/adtracker/adtracker/catalog"
	"github.com/adtracker/adtracker/ingest/event"
)

// Version is the VAST version adtracker answers with, in documents and in the empty answer.
const Version = "4.2"

// Empty is the answer when there is no ad to serve: the spec's "no ad" response, which players handle as such (an HTTP error would
// be logged as a failure by the player and its SSP).
const Empty = `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<VAST version="` + Version + `"/>` + "\n"

// ProgressOffsets are the offsets, in seconds, of the progress Tracking elements of a rendered ad (only those shorter than its
// duration): 2 s is the MRC video-viewability duration; 5, 10, 15, 30 and 60 s are the usual cost-per-view and drop-off points.
// Each is one stored progress event per serve, its offset in playback_ms.
var ProgressOffsets = []int{2, 5, 10, 15, 30, 60}

// trackedEvents are the Linear TrackingEvents a document carries, in event.Types() order. Not here: impression, error and click
// (their own elements: Impression, Error, ClickThrough via /c/), viewable / not_viewable / view_undetermined (ViewableImpression),
// progress (one element per offset, added separately) and verification_not_executed, which belongs to an AdVerifications
// Verification element, and adtracker's catalogue names no verification vendor to put there.
var trackedEvents = func() []event.Type {
	var out []event.Type
	for _, t := range event.Types() {
		switch t {
		case event.TypeImpression, event.TypeClick, event.TypeError, event.TypeProgress, event.TypeViewable, event.TypeNotViewable,
			event.TypeViewUndetermined, event.TypeVerificationNotExecuted:
			continue
		}
		out = append(out, t)
	}
	return out
}()

// Template is one ad's document with the serve id left out: Parts joined with the serve id between each two consecutive parts
// give the answer. It is immutable once built and shared by every request for the ad until the ad's version (or the base URL)
// changes.
type Template struct {
	Version int64
	parts   [][]byte
}

// AppendTo appends the document for one serve to dst.
func (t *Template) AppendTo(dst []byte, serve []byte) []byte {
	for i, p := range t.parts {
		if i > 0 {
			dst = append(dst, serve...)
		}
		dst = append(dst, p...)
	}
	return dst
}

// serveMark stands for the serve id while a template is built; NUL cannot occur in any catalogue field or URL (the API refuses
// control characters), so splitting on it is exact.
const serveMark = "\x00"

// Eligible reports whether e can be served as VAST: active (paused ads serve nothing, archived ones are retired) and with a video.
func Eligible(e catalog.Entry) bool {
	return e.Status == catalog.StatusActive && e.Creative != nil && e.Creative.VideoURL != ""
}

// Render builds the template of ad id from its catalogue entry. base is the public base URL ("https://track.example.com", no
// trailing slash) every tracking URL starts with.
func Render(base string, id uint64, e catalog.Entry) *Template {
	c := e.Creative
	ids := strconv.FormatUint(id, 10)
	var b strings.Builder
	// pixel writes the URL of a /t/ pixel of type t; extra goes before the macros.
	pixel := func(t event.Type, extra string) {
		cdata(&b, base+"/t/"+t.VASTName()+"?ad_id="+ids+"&sv="+serveMark+extra+"&t=[TIMESTAMP]&pt=[ADPLAYHEAD]&cb=[CACHEBUSTING]")
	}
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<VAST version="` + Version + `" xmlns="http://www.iab.com/VAST">` + "\n")
	b.WriteString(` <Ad id="` + ids + `">` + "\n  <InLine>\n")
	b.WriteString(`   <AdSystem version="1">adtracker</AdSystem>` + "\n")
	b.WriteString(`   <Error>`)
	cdata(&b, base+"/t/error?ad_id="+ids+"&sv="+serveMark+"&code=[ERRORCODE]&t=[TIMESTAMP]&pt=[ADPLAYHEAD]&cb=[CACHEBUSTING]")
	b.WriteString("</Error>\n")
	b.WriteString(`   <Impression id="adtracker">`)
	pixel(event.TypeImpression, "")
	b.WriteString("</Impression>\n")
	b.WriteString("   <AdServingId>" + serveMark + "</AdServingId>\n")
	b.WriteString("   <AdTitle>")
	xmlEscape(&b, c.Name)
	b.WriteString("</AdTitle>\n")
	b.WriteString(`   <ViewableImpression id="adtracker">` + "\n")
	for _, v := range [...]struct {
		el string
		t  event.Type
	}{{"Viewable", event.TypeViewable}, {"NotViewable", event.TypeNotViewable}, {"ViewUndetermined", event.TypeViewUndetermined}} {
		b.WriteString("    <" + v.el + ">")
		pixel(v.t, "")
		b.WriteString("</" + v.el + ">\n")
	}
	b.WriteString("   </ViewableImpression>\n")
	b.WriteString("   <Creatives>\n")
	b.WriteString(`    <Creative id="` + ids + `" adId="` + ids + `" sequence="1">` + "\n")
	b.WriteString(`     <UniversalAdId idRegistry="adtracker">` + ids + "</UniversalAdId>\n")
	b.WriteString("     <Linear>\n")
	b.WriteString("      <Duration>" + clock(c.DurationSeconds) + "</Duration>\n")
	b.WriteString("      <TrackingEvents>\n")
	for _, t := range trackedEvents {
		b.WriteString(`       <Tracking event="` + t.VASTName() + `">`)
		pixel(t, "")
		b.WriteString("</Tracking>\n")
		if t == event.TypeLoaded { // progress sits where event.Types() has it, right after loaded
			for _, off := range ProgressOffsets {
				if off >= c.DurationSeconds {
					break
				}
				b.WriteString(`       <Tracking event="progress" offset="` + clock(off) + `.000">`)
				pixel(event.TypeProgress, "&po="+strconv.Itoa(off))
				b.WriteString("</Tracking>\n")
			}
		}
	}
	b.WriteString("      </TrackingEvents>\n")
	b.WriteString("      <VideoClicks>\n")
	b.WriteString(`       <ClickThrough id="adtracker">`)
	cdata(&b, base+"/c/"+ids+"?sv="+serveMark)
	b.WriteString("</ClickThrough>\n")
	b.WriteString("      </VideoClicks>\n")
	b.WriteString("      <MediaFiles>\n")
	fmt.Fprintf(&b, `       <MediaFile id="%s" delivery="%s" type="`, ids, c.Delivery)
	xmlEscape(&b, c.MimeType)
	fmt.Fprintf(&b, `" width="%d" height="%d"`, c.Width, c.Height)
	if c.BitrateKbps > 0 {
		fmt.Fprintf(&b, ` bitrate="%d"`, c.BitrateKbps)
	}
	b.WriteString(">")
	cdata(&b, xmlChars(c.VideoURL)) // the other URLs are built from the checked base and constants
	b.WriteString("</MediaFile>\n")
	b.WriteString("      </MediaFiles>\n")
	b.WriteString("     </Linear>\n    </Creative>\n   </Creatives>\n  </InLine>\n </Ad>\n</VAST>\n")

	doc := []byte(b.String())
	return &Template{Version: c.Version, parts: bytes.Split(doc, []byte(serveMark))}
}

// clock formats seconds as HH:MM:SS, the VAST time format.
func clock(s int) string {
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// cdata writes s as CDATA; a "]]>" inside is split across two sections, the only thing CDATA cannot hold. s must hold only
// characters XML can carry (xmlChars), apart from serveMark.
func cdata(b *strings.Builder, s string) {
	b.WriteString("<![CDATA[")
	b.WriteString(strings.ReplaceAll(s, "]]>", "]]]]><![CDATA[>"))
	b.WriteString("]]>")
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")

func xmlEscape(b *strings.Builder, s string) { _, _ = xmlEscaper.WriteString(b, xmlChars(s)) } // a strings.Builder never fails

// xmlChars replaces what XML 1.0 cannot carry at all — control characters other than tab and newlines, U+FFFE/U+FFFF, invalid
// UTF-8 — with U+FFFD. The API refuses control characters, but a row written directly into Postgres could hold one, and one such
// character would make the whole document unparseable for the player.
func xmlChars(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return r
		case r < 0x20, r == 0xFFFE, r == 0xFFFF, r == utf8.RuneError:
			return utf8.RuneError
		}
		return r
	}, s)
}
