package decode

import (
	"github.com/adtracker/adtracker/ingest/event"
)

// DecodePixel decodes a VAST tracking pixel's raw query string (what follows '?', undecoded: fasthttp's URI.QueryString)
// into e (which the caller has Reset, and may have given the request's receive time: see Decoder); typ comes from the route's
// {event} segment, VAST camelCase allowed ("firstQuartile"). The query is read as fasthttp's Args reads it (queryScanner).
//
// # Tracking URL templates
//
// An ad server puts these in the VAST it returns; the player fires a GET for each, after
// replacing the bracketed IAB macros (docs/vast.md has the full story):
//
//	<Impression><![CDATA[https://track.example.com/t/impression?ad_id=42&t=[TIMESTAMP]&cb=[CACHEBUSTING]]]></Impression>
//	<Tracking event="start"><![CDATA[https://track.example.com/t/start?ad_id=42&t=[TIMESTAMP]&pt=[ADPLAYHEAD]&cb=[CACHEBUSTING]]]></Tracking>
//	<Tracking event="firstQuartile"><![CDATA[https://track.example.com/t/firstQuartile?ad_id=42&t=[TIMESTAMP]&pt=[ADPLAYHEAD]&cb=[CACHEBUSTING]]]></Tracking>
//	<ClickTracking><![CDATA[https://track.example.com/t/click?ad_id=42&t=[TIMESTAMP]&pt=[ADPLAYHEAD]&cb=[CACHEBUSTING]]]></ClickTracking>
//
// # Parameters
//
//   - ad_id: required, a positive integer.
//   - t: event time. [TIMESTAMP] expands to ISO 8601 with optional milliseconds; the VAST
//     spec's own example is "2016-01-17T8:15:07.127-05" (one-digit hour, hour-only offset), so
//     that form is accepted along with RFC 3339, an offset of ±hh, ±hhmm or ±hh:mm, a space
//     where an unencoded '+' was, and no zone (read as UTC). Some players put epoch time
//     instead: up to 11 digits are unix seconds, 12–13 digits unix milliseconds.
//   - pt: playback time, seconds ("12.5") or the playhead form HH:MM:SS.mmm that
//     [ADPLAYHEAD], [CONTENTPLAYHEAD] and [MEDIAPLAYHEAD] expand to; rounded to milliseconds.
//   - vid, sid: viewer and session ids (printable ASCII, at most 64 bytes).
//   - eid: a UUID the ad server chose, which makes retried pixels deduplicable.
//   - sv: the serve id (AdServingId) of the VAST answer the pixel came from, printable ASCII up to 64 bytes. Without eid, the
//     event id is derived from (sv, type[, po]) — ServeEventID — so every fire of one serve's pixel is the same event.
//   - po: progress only, the offset of the progress Tracking element (seconds or HH:MM:SS.mmm). It is stored as the playback
//     time (instead of pt, the playhead when the player fired) and tells a serve's progress events apart.
//   - cb, cachebuster ([CACHEBUSTING], 8 random digits) and unknown parameters are ignored.
//
// For every optional parameter, an empty value, an unexpanded macro ("[TIMESTAMP]": the player
// did not support it) and VAST 4.1's -1 (unknown) / -2 (withheld) mean absent. A known
// parameter given twice is rejected. Errors name the parameter as Field ("ad_id", "t", "pt").
func (d *Decoder) DecodePixel(query []byte, typ event.Type, e *event.Event) *FieldError {
	if !typ.Valid() {
		// The route's {event} named nothing we track ("creativeView", "close", ...).
		return badField("type", "type is not a known event type")
	}
	w := d.windowFor(typ, e.ReceiveTime)
	var (
		ferr     *FieldError
		seen     uint8
		haveTime bool
		serve    []byte
		offMs    uint64
		offSt    = numOK
	)
	q := queryScanner{rest: query}
	for key, v, ok := q.next(); ok && ferr == nil; key, v, ok = q.next() {
		var bit uint8
		var err *FieldError
		switch string(key) {
		case "ad_id":
			bit = 1
			var st adIDStatus
			e.AdID, st = parseAdID(v)
			if st != adIDOK {
				err = adIDError("ad_id", st)
			}
		case "t":
			bit = 2
			if pixelAbsent(v) {
				break
			}
			t, ok := parseUnixTime(v)
			if !ok {
				t, ok = parseTime(v, true)
			}
			if !ok {
				err = badField("t", "t must be an iso 8601 time or unix seconds")
				break
			}
			if err = w.checkTime("t", t); err == nil {
				e.EventTime = t
				haveTime = true
			}
		case "pt":
			bit = 4
			if pixelAbsent(v) {
				break
			}
			ms, st := pixelPlayhead(v)
			if st == numBad {
				err = badField("pt", "pt must be seconds or hh:mm:ss.mmm")
				break
			}
			err = w.setPlayback("pt", e, ms, st)
		case "vid":
			bit = 8
			if pixelAbsent(v) {
				break
			}
			if len(v) > event.MaxIDLen {
				err = tooLongID("vid")
			} else if err = checkID("vid", v); err == nil {
				e.SetViewerID(v)
			}
		case "sid":
			bit = 16
			if pixelAbsent(v) {
				break
			}
			if len(v) > event.MaxIDLen {
				err = tooLongID("sid")
			} else if err = checkID("sid", v); err == nil {
				e.SetSessionID(v)
			}
		case "eid":
			bit = 32
			if pixelAbsent(v) {
				break
			}
			err = setEventID("eid", e, v)
		case "sv":
			bit = 64
			if pixelAbsent(v) {
				break
			}
			if err = checkServeID(v); err == nil {
				serve = v
			}
		case "po":
			bit = 128
			if pixelAbsent(v) {
				break
			}
			ms, st := pixelPlayhead(v)
			if st == numBad {
				err = badField("po", "po must be seconds or hh:mm:ss.mmm")
				break
			}
			offMs, offSt = ms, st
		}
		if seen&bit != 0 {
			err = badField(string(key), string(key)+" appears more than once")
		}
		seen |= bit
		ferr = err
	}
	if ferr == nil && seen&128 != 0 && typ == event.TypeProgress {
		ferr = w.setPlayback("po", e, offMs, offSt)
	}
	if ferr != nil {
		return ferr
	}
	if ferr = w.finish(e, seen&1 != 0, haveTime); ferr != nil {
		return ferr
	}
	finishServe(e, serve)
	return nil
}

// pixelPlayhead reads a playback position in milliseconds: the playhead form hh:mm:ss.mmm that [ADPLAYHEAD] expands to, or seconds.
func pixelPlayhead(v []byte) (uint64, numStatus) {
	if ms, ok := parsePlayhead(v); ok {
		return ms, numOK
	}
	return pixelSeconds(v)
}

// pixelAbsent reports a value the player left empty, unexpanded, or marked unknown.
func pixelAbsent(v []byte) bool {
	if len(v) == 0 || isMacro(v) {
		return true
	}
	return string(v) == "-1" || string(v) == "-2"
}

// pixelSeconds reads pt given as plain seconds: digits with at most one point, nothing else
// (no sign or exponent, which a player never produces).
func pixelSeconds(v []byte) (uint64, numStatus) {
	for _, c := range v {
		if (c < '0' || c > '9') && c != '.' {
			return 0, numBad
		}
	}
	return secondsToMs(v)
}
