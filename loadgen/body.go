package loadgen

import (
	"strconv"
	"time"

	"github.com/adtracker/adtracker/ingest/event"
)

// Rendering appends into caller-owned buffers with strconv and fixed tables, so building a request allocates nothing.

const hexDigits = "0123456789abcdef"

func appendHex64(dst []byte, prefix byte, v uint64) []byte {
	dst = append(dst, prefix)
	for s := 60; s >= 0; s -= 4 {
		dst = append(dst, hexDigits[v>>uint(s)&0xf])
	}
	return dst
}

func appendIP(dst []byte, ip [4]byte) []byte {
	for i, b := range ip {
		if i > 0 {
			dst = append(dst, '.')
		}
		dst = strconv.AppendUint(dst, uint64(b), 10)
	}
	return dst
}

// appendSeconds writes milliseconds as seconds with three decimals ("7.500").
func appendSeconds(dst []byte, ms int64) []byte {
	dst = strconv.AppendInt(dst, ms/1000, 10)
	f := ms % 1000
	return append(dst, '.', byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
}

// Clock caches the RFC 3339 text of the current second; formatting a time per request would cost more than the rest of the body.
type Clock struct {
	sec int64
	buf [32]byte
	n   int
}

// Now returns the current second as "2006-01-02T15:04:05Z" (valid until the next call).
func (c *Clock) Now() []byte {
	now := time.Now()
	if s := now.Unix(); s != c.sec || c.n == 0 {
		c.sec = s
		c.n = len(now.UTC().AppendFormat(c.buf[:0], "2006-01-02T15:04:05Z"))
	}
	return c.buf[:c.n]
}

// AppendJSON renders e as the JSON object POST /ads/{impression,click} and POST /events take; withType adds "type" (required in
// batches, implied by the route for single events).
func AppendJSON(dst []byte, e *Event, withType bool, ts []byte) []byte {
	dst = append(dst, '{')
	if withType {
		dst = append(dst, `"type":"`...)
		dst = append(dst, e.Type.String()...)
		dst = append(dst, `",`...)
	}
	dst = append(dst, `"ad_id":`...)
	dst = strconv.AppendUint(dst, e.AdID, 10)
	dst = append(dst, `,"event_id":"`...)
	dst = e.ID.AppendString(dst)
	dst = append(dst, `","timestamp":"`...)
	dst = append(dst, ts...)
	dst = append(dst, `","viewer_id":"`...)
	dst = appendHex64(dst, 'v', e.Viewer)
	dst = append(dst, `","session_id":"`...)
	dst = appendHex64(dst, 's', e.Session)
	dst = append(dst, `","ip":"`...)
	dst = appendIP(dst, e.IP)
	dst = append(dst, '"')
	if e.PlaybackMs >= 0 {
		dst = append(dst, `,"video_playback_time":`...)
		dst = appendSeconds(dst, e.PlaybackMs)
	}
	return append(dst, '}')
}

// AppendBatch renders events as one POST /events body: NDJSON (one object per line) or a JSON array.
func AppendBatch(dst []byte, evs []Event, ndjson bool, ts []byte) []byte {
	if !ndjson {
		dst = append(dst, '[')
	}
	for i := range evs {
		if i > 0 && !ndjson {
			dst = append(dst, ',')
		}
		dst = AppendJSON(dst, &evs[i], true, ts)
		if ndjson {
			dst = append(dst, '\n')
		}
	}
	if !ndjson {
		dst = append(dst, ']')
	}
	return dst
}

// pixelNames are the VAST tracking event names players put in pixel URLs (camelCase, as in the <Tracking event="..."> attribute).
var pixelNames = [...]string{
	event.TypeImpression:    "impression",
	event.TypeClick:         "click",
	event.TypeStart:         "start",
	event.TypeFirstQuartile: "firstQuartile",
	event.TypeMidpoint:      "midpoint",
	event.TypeThirdQuartile: "thirdQuartile",
	event.TypeComplete:      "complete",
	event.TypeSkip:          "skip",
	event.TypePause:         "pause",
	event.TypeResume:        "resume",
	event.TypeMute:          "mute",
	event.TypeUnmute:        "unmute",
	event.TypeError:         "error",
	event.TypeUnknown:       "unknown",
}

// AppendPixel renders e as the request URI of a VAST tracking pixel (GET /t/{event}?...), the way a player fires it after macro
// expansion: [TIMESTAMP] as ISO 8601, [ADPLAYHEAD] as seconds, [CACHEBUSTING] as 8 digits.
func AppendPixel(dst []byte, e *Event, ts []byte, cacheBuster uint32) []byte {
	dst = append(dst, "/t/"...)
	dst = append(dst, pixelNames[e.Type]...)
	dst = append(dst, "?ad_id="...)
	dst = strconv.AppendUint(dst, e.AdID, 10)
	dst = append(dst, "&t="...)
	dst = append(dst, ts...)
	if e.PlaybackMs >= 0 {
		dst = append(dst, "&pt="...)
		dst = appendSeconds(dst, e.PlaybackMs)
	}
	dst = append(dst, "&vid="...)
	dst = appendHex64(dst, 'v', e.Viewer)
	dst = append(dst, "&sid="...)
	dst = appendHex64(dst, 's', e.Session)
	dst = append(dst, "&eid="...)
	dst = e.ID.AppendString(dst)
	dst = append(dst, "&cb="...)
	cb := cacheBuster%90_000_000 + 10_000_000
	return strconv.AppendUint(dst, uint64(cb), 10)
}
