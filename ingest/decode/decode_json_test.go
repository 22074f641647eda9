package decode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/adtracker/adtracker/ingest/event"
)

func TestDecodeJSONGood(t *testing.T) {
	d := testDecoder()
	f := func(body string, typ event.Type, want event.Event) {
		t.Helper()
		var e event.Event
		if err := d.DecodeJSON([]byte(body), typ, &e); err != nil {
			t.Errorf("%s: unexpected error %+v", body, err)
			return
		}
		if e != want {
			t.Errorf("%s:\n got %s\nwant %s", body, dump(&e), dump(&want))
		}
	}
	seedTime := unix("2025-04-21T15:00:00Z")
	f(seedBody, event.TypeClick, ev(event.TypeClick, 1, func(e *event.Event) {
		e.EventTime = seedTime
		e.IP = ip16("203.0.113.1")
		e.PlaybackMs = 12000
	}))
	f(`{"ad_id":42}`, event.TypeImpression, ev(event.TypeImpression, 42, nil))
	f(" \t\r\n{ \"ad_id\" : 42 } \n", event.TypeImpression, ev(event.TypeImpression, 42, nil))
	f(`{"ad_id":"42"}`, event.TypeImpression, ev(event.TypeImpression, 42, nil))
	f(`{"ad_id":"\u0034\u0032"}`, event.TypeImpression, ev(event.TypeImpression, 42, nil))
	f(`{"ad_id":9223372036854775807}`, event.TypeClick, ev(event.TypeClick, math.MaxInt64, nil))
	f(`{"ad\u005fid":5}`, event.TypeClick, ev(event.TypeClick, 5, nil))
	// A UTF-8 byte order mark before the body is skipped (RFC 8259 §8.1), whitespace after it too.
	f("\xef\xbb\xbf{\"ad_id\":42}", event.TypeImpression, ev(event.TypeImpression, 42, nil))
	f("\xef\xbb\xbf \n{\"ad_id\":42}", event.TypeImpression, ev(event.TypeImpression, 42, nil))
	// Every field, type from the body.
	f(`{"type":"third_quartile","ad_id":3,"timestamp":"2025-04-21T17:00:00.999+02:00","ip":"2001:db8::1",
		"video_playback_time":12.3456,"event_id":"0190B3B2-7C4E-7A1B-9C3D-5E6F7A8B9C0D",
		"viewer_id":"viewer-1","session_id":"s\u0031","user_agent":"Mozilla/5.0 \"x\" \\ \/ \ud83d\ude00"}`,
		event.TypeUnknown, ev(event.TypeThirdQuartile, 3, func(e *event.Event) {
			e.EventTime = seedTime
			e.IP = ip16("2001:db8::1")
			e.PlaybackMs = 12346
			e.ID = mustUUID("0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d")
			e.Flags = event.FlagClientID
			e.SetViewerID([]byte("viewer-1"))
			e.SetSessionID([]byte("s1"))
			e.SetUserAgent([]byte("Mozilla/5.0 \"x\" \\ / 😀"))
		}))
	f(`{"type":"firstQuartile","ad_id":3}`, event.TypeUnknown, ev(event.TypeFirstQuartile, 3, nil))
	f(`{"type":"firstQuartile","ad_id":3}`, event.TypeFirstQuartile, ev(event.TypeFirstQuartile, 3, nil))
	f(`{"type":"first_quartile","ad_id":3}`, event.TypeFirstQuartile, ev(event.TypeFirstQuartile, 3, nil))
	// null and "" mean absent.
	f(`{"ad_id":1,"timestamp":null,"ip":null,"video_playback_time":null,"event_id":null,"viewer_id":null,
		"session_id":null,"user_agent":null,"type":null}`, event.TypeClick, ev(event.TypeClick, 1, nil))
	f(`{"ad_id":1,"timestamp":"","ip":"","event_id":"","viewer_id":"","session_id":"","user_agent":"","type":""}`,
		event.TypeClick, ev(event.TypeClick, 1, nil))
	// Playback: rounding on the decimal digits, exponents, negative zero, the limit itself.
	pb := func(v string, ms uint32) {
		t.Helper()
		f(`{"ad_id":1,"video_playback_time":`+v+`}`, event.TypeStart, ev(event.TypeStart, 1, func(e *event.Event) { e.PlaybackMs = ms }))
	}
	pb("0", 0)
	pb("-0", 0)
	pb("-0.0e5", 0)
	pb("0.0125", 13)
	pb("0.0124999", 12)
	pb("0.0004", 0)
	pb("1e1", 10000)
	pb("1.5E+2", 150000)
	pb("12345e-3", 12345)
	pb("1e-999", 0)
	pb("0e999", 0)
	pb("86400", 86400000)
	pb("86400.0004", 86400000)
	// Unknown keys are skipped whatever they hold, including look-alike brackets in strings.
	f(`{"ctx":{"a":[1,2,{"b":"}]\"{"}],"c":null,"d":[[],{}]},"ad_id":9,"z":-1.5e-3,"t":true,"f":false,
		"s":"\u00e9\n","ad_idx":"no","AD_ID":"no","ctx":1}`, event.TypeClick, ev(event.TypeClick, 9, nil))
	// Timestamps: fraction dropped (DateTime is seconds), offsets applied.
	ts := func(v string, want string) {
		t.Helper()
		f(`{"ad_id":1,"timestamp":"`+v+`"}`, event.TypeClick, ev(event.TypeClick, 1, func(e *event.Event) { e.EventTime = unix(want) }))
	}
	ts("2025-04-21T14:59:59.999999999Z", "2025-04-21T14:59:59Z")
	ts("2025-04-21T10:00:00-05:00", "2025-04-21T15:00:00Z")
	ts("2025-04-22T00:30:00+09:30", "2025-04-21T15:00:00Z")
	ts("2025-04-21T15:05:30Z", "2025-04-21T15:05:30Z") // exactly the future skew
	ts("2025-04-14T15:00:30Z", "2025-04-14T15:00:30Z") // exactly the max age
	ts(`2025-04-21T15:00:00\u005a`, "2025-04-21T15:00:00Z")
	// IPs.
	ip := func(v string, want string) {
		t.Helper()
		f(`{"ad_id":1,"ip":"`+v+`"}`, event.TypeClick, ev(event.TypeClick, 1, func(e *event.Event) { e.IP = ip16(want) }))
	}
	ip("::ffff:203.0.113.1", "203.0.113.1")
	ip("::", "::")
	ip("2001:DB8:0:0:0:0:0:1", "2001:db8::1")
	// IDs at the length limit; escapes count decoded bytes.
	long := strings.Repeat("x", event.MaxIDLen)
	f(`{"ad_id":1,"viewer_id":"`+long+`","session_id":"`+strings.Repeat(`\u0078`, event.MaxIDLen)+`"}`, event.TypeClick,
		ev(event.TypeClick, 1, func(e *event.Event) { e.SetViewerID([]byte(long)); e.SetSessionID([]byte(long)) }))
	// User agent: truncated on a rune boundary, control characters blanked, lone surrogates
	// replaced as encoding/json does.
	ua := func(v string, want string) {
		t.Helper()
		f(`{"ad_id":1,"user_agent":"`+v+`"}`, event.TypeClick, ev(event.TypeClick, 1, func(e *event.Event) { e.SetUserAgent([]byte(want)) }))
	}
	ua(strings.Repeat("a", 300), strings.Repeat("a", event.MaxUserAgentLen))
	ua(strings.Repeat("a", 255)+"é", strings.Repeat("a", 255))
	ua(strings.Repeat("a", 254)+"é", strings.Repeat("a", 254)+"é")
	ua(strings.Repeat("a", 254)+"😀", strings.Repeat("a", 254))
	ua(strings.Repeat("a", 254)+`\u00e9xyz`, strings.Repeat("a", 254)+"é")
	ua(strings.Repeat("a", 255)+`\u00e9`, strings.Repeat("a", 255))
	ua(strings.Repeat("a", 250)+`\ud83d\ude00\ud83d\ude00`, strings.Repeat("a", 250)+"😀")
	ua(`a\tb\nc\u0000d\u007f`, "a b c d ")
	ua(`\ud800x`, "\uFFFDx")
	ua(`\udc00\ud800`, "\uFFFD\uFFFD")
	ua(`\ud800\u0041`, "\uFFFDA")
	ua(`\ud83d\ude00`, "😀")
}

func TestDecodeJSONBad(t *testing.T) {
	d := testDecoder()
	f := func(body string, typ event.Type, field, msg string) {
		t.Helper()
		var e event.Event
		err := d.DecodeJSON([]byte(body), typ, &e)
		if err == nil {
			t.Errorf("%s: no error, decoded %s", body, dump(&e))
			return
		}
		if err.Status != 400 || err.Field != field || (msg != "" && err.Msg != msg) {
			t.Errorf("%s: got %+v, want field %q msg %q", body, err, field, msg)
		}
		// Body messages may quote the offending character; ours are lowercase.
		if err.Msg == "" || (err.Field != "body" && strings.ToLower(err.Msg) != err.Msg) {
			t.Errorf("%s: message %q must be lowercase and non-empty", body, err.Msg)
		}
	}
	body := func(b string) { t.Helper(); f(b, event.TypeClick, "body", "") }
	// Framing and syntax.
	f(``, event.TypeClick, "body", "body is empty")
	f(" \n", event.TypeClick, "body", "body is empty")
	f(`[]`, event.TypeClick, "body", "body must be a json object")
	f(`"x"`, event.TypeClick, "body", "body must be a json object")
	f(`42`, event.TypeClick, "body", "body must be a json object")
	f(`{"ad_id":1}x`, event.TypeClick, "body", "invalid json: unexpected data after the object at offset 11")
	f(`{"ad_id":1`, event.TypeClick, "body", "invalid json: unexpected end of input at offset 10")
	// Only one byte order mark, only UTF-8's, and only first; offsets count from the body's first byte.
	f("\xef\xbb\xbf", event.TypeClick, "body", "body is empty")
	f("\xef\xbb\xbf{\"ad_id\":1}x", event.TypeClick, "body", "invalid json: unexpected data after the object at offset 14")
	body("\xef\xbb\xbf\xef\xbb\xbf{\"ad_id\":1}")
	body(" \xef\xbb\xbf{\"ad_id\":1}")
	f("\xfe\xff{\"ad_id\":1}", event.TypeClick, "body", "invalid json: unexpected non-ascii byte 0xfe at offset 0")
	f("{\"ad_id\":1,\"x\":\xc3\xa9}", event.TypeClick, "body", "invalid json: unexpected non-ascii byte 0xc3 at offset 15")
	body("\xef\xbb{\"ad_id\":1}")
	body(`{"ad_id":1}{}`)
	body(`{"ad_id":1,}`)
	body(`{,"ad_id":1}`)
	body(`{"ad_id" 1}`)
	body(`{ad_id:1}`)
	body(`{'ad_id':1}`)
	body(`{"ad_id":1 /* c */}`)
	body(`{"ad_id":01}`)
	body(`{"ad_id":1.}`)
	body(`{"ad_id":.5}`)
	body(`{"ad_id":+1}`)
	body(`{"ad_id":-}`)
	body(`{"ad_id":1e}`)
	body(`{"ad_id":1e+}`)
	body(`{"ad_id":NaN}`)
	body(`{"ad_id":Infinity}`)
	body(`{"ad_id":1,"x":tru}`)
	body(`{"ad_id":1,"x":nul}`)
	body(`{"ad_id":1,"x":nullx}`)
	body(`{"ad_id":1,"x":"abc}`)
	body(`{"ad_id":1,"x":"abc\"}`)
	body(`{"ad_id":1,"x":"a\xb"}`)
	body(`{"ad_id":1,"x":"a\u12"}`)
	body(`{"ad_id":1,"x":"a\u12g4"}`)
	body("{\"ad_id\":1,\"x\":\"a\tb\"}")
	body("{\"ad_id\":1,\"x\":\"a\x00b\"}")
	body("{\"ad_id\":1,\"x\":\"\xff\"}")
	body("{\"ad_id\":1,\"x\":\"\xc3\"}")
	body("{\"ad_id\":1,\"\xed\xa0\x80\":1}") // surrogate half encoded raw is not UTF-8
	body(`{"ad_id":1,"x":[1,2}`)
	body(`{"ad_id":1,"x":{"a"}}`)
	body(`{"ad_id":1,"x":{"a":1,}}`)
	body(`{"ad_id":1,"x":[1,]}`)
	body(`{"ad_id":1,"x":[}`)
	body(`{"ad_id":1,"x":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`)
	// Exactly at the depth limit is fine.
	var e event.Event
	if err := d.DecodeJSON([]byte(`{"ad_id":1,"x":`+strings.Repeat("[", maxDepth-1)+strings.Repeat("]", maxDepth-1)+`}`), event.TypeClick, &e); err != nil {
		t.Errorf("nesting at the limit: %+v", err)
	}
	// A syntax error later in the body wins over an earlier field error.
	body(`{"ad_id":-1,"x":`)
	body(`{"ad_id":"x","timestamp":"bad"`)
	// ad_id.
	ad := func(v, msg string) { t.Helper(); f(`{"ad_id":`+v+`}`, event.TypeClick, "ad_id", msg) }
	f(`{}`, event.TypeClick, "ad_id", "ad_id is required")
	f(`{"x":1}`, event.TypeClick, "ad_id", "ad_id is required")
	ad(`null`, "ad_id is required")
	ad(`0`, "ad_id must be a positive integer")
	ad(`-1`, "ad_id must be a positive integer")
	ad(`-0`, "ad_id must be a positive integer")
	ad(`1.5`, "ad_id must be a positive integer")
	ad(`1.0`, "ad_id must be a positive integer")
	ad(`1e3`, "ad_id must be a positive integer")
	ad(`true`, "ad_id must be a positive integer")
	ad(`{}`, "ad_id must be a positive integer")
	ad(`[1]`, "ad_id must be a positive integer")
	ad(`""`, "ad_id must be a positive integer")
	ad(`"abc"`, "ad_id must be a positive integer")
	ad(`"01"`, "ad_id must be a positive integer")
	ad(`"-1"`, "ad_id must be a positive integer")
	ad(`" 1"`, "ad_id must be a positive integer")
	ad(`"1234567890123456789012345"`, "ad_id is too large")
	ad(`"`+strings.Repeat("1", 65)+`"`, "ad_id must be a positive integer")
	ad(`9223372036854775808`, "ad_id is too large")
	ad(`18446744073709551616`, "ad_id is too large")
	ad(`99999999999999999999999999`, "ad_id is too large")
	ad(`"9223372036854775808"`, "ad_id is too large")
	// type.
	f(`{"ad_id":1}`, event.TypeUnknown, "type", "type is required")
	f(`{"ad_id":1,"type":null}`, event.TypeUnknown, "type", "type is required")
	f(`{"ad_id":1,"type":"view"}`, event.TypeUnknown, "type", "type is not a known event type")
	f(`{"ad_id":1,"type":"Click"}`, event.TypeUnknown, "type", "type is not a known event type")
	f(`{"ad_id":1,"type":"`+strings.Repeat("c", 100)+`"}`, event.TypeUnknown, "type", "type is not a known event type")
	f(`{"ad_id":1,"type":1}`, event.TypeUnknown, "type", "type must be a string")
	f(`{"ad_id":1,"type":"impression"}`, event.TypeClick, "type", "type does not match the endpoint")
	f(`{"ad_id":1}`, event.Type(200), "type", "type is not a known event type")
	// timestamp.
	tsBad := func(v, msg string) { t.Helper(); f(`{"ad_id":1,"timestamp":`+v+`}`, event.TypeClick, "timestamp", msg) }
	const rfc = "timestamp must be an rfc 3339 string"
	tsBad(`1745247600`, rfc)
	tsBad(`"1745247600"`, rfc)
	tsBad(`"2025-04-21"`, rfc)
	tsBad(`"2025-04-21T15:00:00"`, rfc)
	tsBad(`"2025-04-21 15:00:00Z"`, rfc)
	tsBad(`"2025-04-21t15:00:00Z"`, rfc)
	tsBad(`"2025-04-21T15:00:00z"`, rfc)
	tsBad(`"2025-04-21T15:00:00.Z"`, rfc)
	tsBad(`"2025-04-21T15:00:00+0100"`, rfc)
	tsBad(`"2025-04-21T15:00:00+01"`, rfc)
	tsBad(`"2025-04-21T15:00:00+24:00"`, rfc)
	tsBad(`"2025-04-21T5:00:00Z"`, rfc)
	tsBad(`"2025-04-21T24:00:00Z"`, rfc)
	tsBad(`"2025-04-21T15:60:00Z"`, rfc)
	tsBad(`"2025-04-21T15:00:60Z"`, rfc)
	tsBad(`"2025-02-29T15:00:00Z"`, rfc)
	tsBad(`"2025-04-31T15:00:00Z"`, rfc)
	tsBad(`"2025-13-01T15:00:00Z"`, rfc)
	tsBad(`"`+strings.Repeat("2", 80)+`"`, rfc)
	tsBad(`"2025-04-21T15:05:31Z"`, "timestamp is too far in the future")
	tsBad(`"2025-04-14T15:00:29Z"`, "timestamp is too old")
	tsBad(`"0000-01-01T00:00:00Z"`, "timestamp is too old")
	tsBad(`"9999-12-31T23:59:59Z"`, "timestamp is too far in the future")
	// ip.
	ipBad := func(v string) {
		t.Helper()
		f(`{"ad_id":1,"ip":`+v+`}`, event.TypeClick, "ip", "ip must be an ipv4 or ipv6 address")
	}
	ipBad(`"1.2.3"`)
	ipBad(`"1.2.3.256"`)
	ipBad(`"01.2.3.4"`)
	ipBad(`"fe80::1%eth0"`)
	ipBad(`"::ffff:1.2.3.4.5"`)
	ipBad(`"example.com"`)
	ipBad(`" 1.2.3.4"`)
	ipBad(`3405803777`)
	ipBad(`["1.2.3.4"]`)
	// video_playback_time.
	pbBad := func(v, msg string) {
		t.Helper()
		f(`{"ad_id":1,"video_playback_time":`+v+`}`, event.TypeClick, "video_playback_time", msg)
	}
	pbBad(`-1`, "video_playback_time must not be negative")
	pbBad(`-0.0001`, "video_playback_time must not be negative")
	pbBad(`-1e400`, "video_playback_time must not be negative")
	pbBad(`86400.0005`, "video_playback_time is too large")
	pbBad(`1e400`, "video_playback_time is too large")
	pbBad(`123456789012345678901234567890`, "video_playback_time is too large")
	pbBad(`"12"`, "video_playback_time must be a number")
	pbBad(`true`, "video_playback_time must be a number")
	pbBad(`{}`, "video_playback_time must be a number")
	// event_id.
	idBad := func(v, msg string) { t.Helper(); f(`{"ad_id":1,"event_id":`+v+`}`, event.TypeClick, "event_id", msg) }
	idBad(`"abc"`, "event_id must be a uuid")
	idBad(`"0190b3b27c4e7a1b9c3d5e6f7a8b9c0d"`, "event_id must be a uuid")
	idBad(`"{0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d}"`, "event_id must be a uuid")
	idBad(`"0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0g"`, "event_id must be a uuid")
	idBad(`"00000000-0000-0000-0000-000000000000"`, "event_id must not be the nil uuid")
	idBad(`123`, "event_id must be a uuid")
	// viewer_id / session_id.
	f(`{"ad_id":1,"viewer_id":"`+strings.Repeat("x", event.MaxIDLen+1)+`"}`, event.TypeClick, "viewer_id", "viewer_id must be at most 64 bytes")
	f(`{"ad_id":1,"viewer_id":"`+strings.Repeat(`\u0078`, event.MaxIDLen+1)+`"}`, event.TypeClick, "viewer_id", "viewer_id must be at most 64 bytes")
	f(`{"ad_id":1,"viewer_id":"a b"}`, event.TypeClick, "viewer_id", "viewer_id must be printable ascii")
	f(`{"ad_id":1,"viewer_id":"a\nb"}`, event.TypeClick, "viewer_id", "viewer_id must be printable ascii")
	f(`{"ad_id":1,"viewer_id":"é"}`, event.TypeClick, "viewer_id", "viewer_id must be printable ascii")
	f(`{"ad_id":1,"viewer_id":5}`, event.TypeClick, "viewer_id", "viewer_id must be a string")
	f(`{"ad_id":1,"session_id":"a\u0000"}`, event.TypeClick, "session_id", "session_id must be printable ascii")
	f(`{"ad_id":1,"session_id":false}`, event.TypeClick, "session_id", "session_id must be a string")
	f(`{"ad_id":1,"user_agent":5}`, event.TypeClick, "user_agent", "user_agent must be a string")
	// Duplicates of known keys, however spelled; the first bad field wins.
	f(`{"ad_id":1,"ad_id":2}`, event.TypeClick, "ad_id", "ad_id appears more than once")
	f(`{"ad_id":1,"ad\u005fid":1}`, event.TypeClick, "ad_id", "ad_id appears more than once")
	f(`{"ad_id":1,"viewer_id":"a","viewer_id":null}`, event.TypeClick, "viewer_id", "viewer_id appears more than once")
	f(`{"ad_id":1,"type":"click","type":"click"}`, event.TypeUnknown, "type", "type appears more than once")
	f(`{"ip":"x","ad_id":0}`, event.TypeClick, "ip", "")
	f(`{"ad_id":0,"ip":"x"}`, event.TypeClick, "ad_id", "")
}

// dump formats the fields that matter, for readable failures.
func dump(e *event.Event) string {
	return fmt.Sprintf("{type:%v ad:%d id:%s flags:%d et:%d rt:%d pb:%d ip:%s v:%q s:%q ua:%q}",
		e.Type, e.AdID, e.ID, e.Flags, e.EventTime, e.ReceiveTime, e.PlaybackMs, net.IP(e.IP[:]),
		e.ViewerID(), e.SessionID(), e.UA())
}

// refEvent decodes body with encoding/json into the fields DecodeJSON keeps, applying the same
// documented rules; ok is false when encoding/json cannot say (the caller then skips).
type refEvent struct {
	adID     uint64
	hasTS    bool
	ts       int64
	ip       []byte
	pbMs     float64
	hasPB    bool
	eventID  string
	viewer   string
	session  string
	ua       string
	typeName string
}

func reference(body []byte) (refEvent, error) {
	body = body[bomLen(body):] // the decoder's one addition to RFC 8259 grammar, which encoding/json does not make
	var r refEvent
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return r, err
	}
	str := func(k string) (string, error) {
		raw, ok := m[k]
		if !ok || string(raw) == "null" {
			return "", nil
		}
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	if raw, ok := m["ad_id"]; ok {
		if len(raw) > 0 && raw[0] == '"' {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return r, err
			}
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return r, err
			}
			r.adID = v
		} else if err := json.Unmarshal(raw, &r.adID); err != nil {
			return r, err
		}
	}
	s, err := str("timestamp")
	if err != nil {
		return r, err
	}
	if s != "" {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return r, err
		}
		r.hasTS, r.ts = true, tm.Unix()
	}
	if s, err = str("ip"); err != nil {
		return r, err
	} else if s != "" {
		r.ip = net.ParseIP(s).To16()
	}
	if raw, ok := m["video_playback_time"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &r.pbMs); err != nil {
			return r, err
		}
		r.pbMs *= 1000
		r.hasPB = true
	}
	for k, dst := range map[string]*string{"event_id": &r.eventID, "viewer_id": &r.viewer,
		"session_id": &r.session, "user_agent": &r.ua, "type": &r.typeName} {
		if *dst, err = str(k); err != nil {
			return r, err
		}
	}
	return r, nil
}

// compareReference checks a successful DecodeJSON against encoding/json's reading of the body.
func compareReference(t *testing.T, body []byte, e *event.Event) {
	t.Helper()
	if !json.Valid(body[bomLen(body):]) {
		t.Fatalf("accepted invalid JSON %q", body)
	}
	r, err := reference(body)
	if err != nil {
		t.Fatalf("accepted %q, which encoding/json rejects: %v", body, err)
	}
	if e.AdID != r.adID {
		t.Fatalf("%q: ad_id %d, encoding/json says %d", body, e.AdID, r.adID)
	}
	if r.hasTS && e.EventTime != r.ts {
		t.Fatalf("%q: event time %d, time.Parse says %d", body, e.EventTime, r.ts)
	}
	if r.ip != nil && !bytes.Equal(e.IP[:], r.ip) {
		t.Fatalf("%q: ip %v, net.ParseIP says %v", body, net.IP(e.IP[:]), net.IP(r.ip))
	}
	if r.hasPB && math.Abs(float64(e.PlaybackMs)-math.Round(r.pbMs)) > 1 {
		t.Fatalf("%q: playback %d ms, encoding/json says %v ms", body, e.PlaybackMs, r.pbMs)
	}
	if r.eventID != "" && !strings.EqualFold(e.ID.String(), r.eventID) {
		t.Fatalf("%q: event_id %s, encoding/json says %s", body, e.ID, r.eventID)
	}
	if string(e.ViewerID()) != r.viewer || string(e.SessionID()) != r.session {
		t.Fatalf("%q: ids %q %q, encoding/json says %q %q", body, e.ViewerID(), e.SessionID(), r.viewer, r.session)
	}
	wantUA := []byte(r.ua)
	if len(wantUA) > event.MaxUserAgentLen {
		wantUA = wantUA[:event.MaxUserAgentLen]
		for len(wantUA) > 0 && !utf8.Valid(wantUA) {
			wantUA = wantUA[:len(wantUA)-1]
		}
	}
	sanitizeUA(wantUA)
	if !bytes.Equal(e.UA(), wantUA) {
		t.Fatalf("%q: user agent %q, encoding/json says %q", body, e.UA(), wantUA)
	}
	if r.typeName != "" && event.ParseType([]byte(r.typeName)) != e.Type {
		t.Fatalf("%q: type %v, encoding/json says %q", body, e.Type, r.typeName)
	}
}

// TestDecodeJSONDifferential builds random valid bodies with encoding/json and checks that
// DecodeJSON accepts them and reads the same values.
func TestDecodeJSONDifferential(t *testing.T) {
	d := testDecoder()
	rng := rand.New(rand.NewPCG(1, 2))
	uas := []string{"Mozilla/5.0", "tab\there", "é😀\u2028<>&", strings.Repeat("ü", 200), "\x00\x1f", "\"quoted\" \\ /"}
	ids := []string{"v", "viewer-1", strings.Repeat("z", event.MaxIDLen), "a\"b\\c<d>&"}
	ips := []string{"203.0.113.1", "::1", "2001:db8::8a2e:370:7334", "::ffff:10.0.0.1", "0.0.0.0", "fe80::1:2:3:4"}
	tss := []string{"2025-04-21T15:00:00Z", "2025-04-21T15:00:00.123456789Z", "2025-04-21T20:30:00+05:30", "2025-04-19T00:00:00-03:00"}
	types := []string{"impression", "click", "firstQuartile", "third_quartile", "error"}
	for n := 0; n < 2000; n++ {
		m := map[string]any{}
		if rng.IntN(2) == 0 {
			m["ad_id"] = rng.Uint64N(math.MaxInt64) + 1
		} else {
			m["ad_id"] = strconv.FormatUint(rng.Uint64N(1<<60)+1, 10)
		}
		m["type"] = types[rng.IntN(len(types))]
		if rng.IntN(2) == 0 {
			m["timestamp"] = tss[rng.IntN(len(tss))]
		}
		if rng.IntN(2) == 0 {
			m["ip"] = ips[rng.IntN(len(ips))]
		}
		if rng.IntN(2) == 0 {
			m["video_playback_time"] = math.Round(rng.Float64()*86400000) / 1000
		}
		if rng.IntN(2) == 0 {
			m["event_id"] = fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", rng.Uint32()|1, rng.Uint32()&0xffff,
				rng.Uint32()&0xffff, rng.Uint32()&0xffff, rng.Uint64()&(1<<48-1))
		}
		if rng.IntN(2) == 0 {
			m["viewer_id"] = ids[rng.IntN(len(ids))]
		}
		if rng.IntN(2) == 0 {
			m["session_id"] = ids[rng.IntN(len(ids))]
		}
		if rng.IntN(2) == 0 {
			m["user_agent"] = uas[rng.IntN(len(uas))]
		}
		if rng.IntN(2) == 0 {
			m["extra"] = map[string]any{"list": []any{1.5, "x}", nil, true, map[string]any{}}, "n": -0.25e-7}
		}
		// Strings containing '<', '>' and '&' come out \u-escaped, which exercises unescape.
		body, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := m["viewer_id"].(string); ok && !printableASCII([]byte(v)) {
			continue
		}
		if v, ok := m["session_id"].(string); ok && !printableASCII([]byte(v)) {
			continue
		}
		var e event.Event
		if ferr := d.DecodeJSON(body, event.TypeUnknown, &e); ferr != nil {
			t.Fatalf("%s: %+v", body, ferr)
		}
		compareReference(t, body, &e)
		// The same body indented must decode identically.
		var ind bytes.Buffer
		if err := json.Indent(&ind, body, " ", "\t"); err != nil {
			t.Fatal(err)
		}
		var e2 event.Event
		if ferr := d.DecodeJSON(ind.Bytes(), event.TypeUnknown, &e2); ferr != nil || e2 != e {
			t.Fatalf("indented %s: %+v\n%s\n%s", ind.Bytes(), ferr, dump(&e2), dump(&e))
		}
	}
}

// TestSkipMatchesValid checks the scanner's validation against encoding/json.Valid on a set of
// tricky unknown-field values: whatever we accept must be valid, and valid values must pass.
func TestSkipMatchesValid(t *testing.T) {
	d := testDecoder()
	vals := []string{`0`, `-0`, `-0.0e-0`, `1E+2`, `""`, `"\u0000"`, `"\ud800"`, `[]`, `{}`, `[[[]]]`,
		`{"":{"":[]}}`, `"\/"`, `[1,"2",{"3":[4]}]`, `01`, `1.`, `.1`, `-`, `+1`, `0x1`, `1e`, `"\a"`,
		`[1 2]`, `{"a" "b"}`, `{"a":}`, `[,]`, `tRue`, `"` + "\x7f" + `"`, `"é"`, "\"\u2028\"", `1e999`}
	for _, v := range vals {
		body := []byte(`{"ad_id":1,"x":` + v + `}`)
		var e event.Event
		err := d.DecodeJSON(body, event.TypeClick, &e)
		if valid := json.Valid(body); valid != (err == nil) {
			t.Errorf("%s: json.Valid %v, DecodeJSON error %+v", body, valid, err)
		}
	}
}

func TestDecodeBatch(t *testing.T) {
	d := testDecoder()
	type item struct {
		ad    uint64
		typ   event.Type
		field string // non-empty: expect an error on this field
	}
	f := func(body string, ndjson bool, want []item) {
		t.Helper()
		var e event.Event
		var got []item
		n, top := d.DecodeBatchWhile([]byte(body), ndjson, &e, func(i int, ev *event.Event, err *FieldError) bool {
			if i != len(got) {
				t.Errorf("%q: index %d, want %d", body, i, len(got))
			}
			if (ev == nil) == (err == nil) {
				t.Errorf("%q item %d: want exactly one of event and error, got %v %v", body, i, ev, err)
				return true
			}
			if err != nil {
				got = append(got, item{field: err.Field})
				return true
			}
			if ev.ReceiveTime != testNow.Unix() {
				t.Errorf("%q item %d: receive time %d", body, i, ev.ReceiveTime)
			}
			got = append(got, item{ad: ev.AdID, typ: ev.Type})
			return true
		})
		if top != nil {
			t.Errorf("%q: top-level error %+v", body, top)
			return
		}
		if n != len(want) {
			t.Errorf("%q: item count %d, want %d", body, n, len(want))
		}
		// Stopped at each item in turn: nothing after it is decoded, and the count is still the whole batch's.
		for stop := range want {
			calls := 0
			n, top := d.DecodeBatchWhile([]byte(body), ndjson, &e, func(i int, _ *event.Event, _ *FieldError) bool {
				calls++
				return i != stop
			})
			if top != nil || n != len(want) || calls != stop+1 {
				t.Errorf("%q stopped at %d: %d calls, count %d, top %v; want %d calls, count %d", body, stop, calls, n, top,
					stop+1, len(want))
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%q:\n got %v\nwant %v", body, got, want)
		}
	}
	f(`[]`, false, nil)
	f(" [ ] \n", false, nil)
	f(`[{"type":"click","ad_id":1}]`, false, []item{{1, event.TypeClick, ""}})
	f(`[{"type":"click","ad_id":1},{"type":"start","ad_id":0},{"ad_id":3},{"type":"skip","ad_id":4,"viewer_id":"x"},
		7,"s",null,[],{"type":"pause","ad_id":5,"ip":"bad"},{"type":"mute","ad_id":6}]`, false,
		[]item{{1, event.TypeClick, ""}, {field: "ad_id"}, {field: "type"}, {4, event.TypeSkip, ""}, {field: "body"},
			{field: "body"}, {field: "body"}, {field: "body"}, {field: "ip"}, {6, event.TypeMute, ""}})
	// Reused event: fields of one item must not leak into the next.
	var e event.Event
	var vids []string
	top := d.DecodeBatch([]byte(`[{"type":"click","ad_id":1,"viewer_id":"abc"},{"type":"click","ad_id":2}]`), false, &e,
		func(i int, ev *event.Event, err *FieldError) { vids = append(vids, string(ev.ViewerID())) })
	if top != nil || fmt.Sprint(vids) != "[abc ]" {
		t.Errorf("reused event leaked: %v %v", vids, top)
	}
	// NDJSON: CRLF, blank lines, whitespace-only lines, a final line without newline, a broken
	// line that only fails itself.
	f("{\"type\":\"click\",\"ad_id\":1}\r\n\r\n  \r\n{\"type\":\"start\",\"ad_id\":2}\n{\"type\":\"start\",\"ad_id\":\n\t\n{\"type\":\"complete\",\"ad_id\":3}", true,
		[]item{{1, event.TypeClick, ""}, {2, event.TypeStart, ""}, {field: "body"}, {3, event.TypeComplete, ""}})
	f("", true, nil)
	f("\n\r\n\n", true, nil)
	f(`[{"type":"click","ad_id":1}]`, true, []item{{field: "body"}})
	f("{\"type\":\"click\",\"ad_id\":1} {}\n{\"type\":\"click\",\"ad_id\":0}\n", true, []item{{field: "body"}, {field: "ad_id"}})
	// A byte order mark at the start of the body is skipped, for arrays and NDJSON; on a later NDJSON line it is that line's error.
	f("\xef\xbb\xbf[{\"type\":\"click\",\"ad_id\":1}]", false, []item{{1, event.TypeClick, ""}})
	f("\xef\xbb\xbf{\"type\":\"click\",\"ad_id\":1}\n\xef\xbb\xbf{\"type\":\"click\",\"ad_id\":2}\n", true,
		[]item{{1, event.TypeClick, ""}, {field: "body"}})
	f("\xef\xbb\xbf\n{\"type\":\"click\",\"ad_id\":1}", true, []item{{1, event.TypeClick, ""}})
}

func TestDecodeBatchTopLevel(t *testing.T) {
	d := testDecoder()
	f := func(body, msg string) {
		t.Helper()
		var e event.Event
		calls := 0
		err := d.DecodeBatch([]byte(body), false, &e, func(int, *event.Event, *FieldError) { calls++ })
		if err == nil || err.Status != 400 || err.Field != "body" || (msg != "" && err.Msg != msg) {
			t.Errorf("%q: got %+v, want body error %q", body, err, msg)
		}
		if calls != 0 {
			t.Errorf("%q: fn called %d times before the framing error", body, calls)
		}
	}
	f(``, "body is empty")
	f(`{"type":"click","ad_id":1}`, "body must be a json array")
	f(`"x"`, "body must be a json array")
	f(`[{"type":"click","ad_id":1}`, "")
	f(`[{"type":"click","ad_id":1},`, "")
	f(`[{"type":"click","ad_id":1},]`, "")
	f(`[{"type":"click","ad_id":1}]]`, "invalid json: unexpected data after the array at offset 28")
	f("\xef\xbb\xbf[{\"type\":\"click\",\"ad_id\":1}]]", "invalid json: unexpected data after the array at offset 31")
	f("\xef\xbb\xbf", "body is empty")
	f("\xef\xbb\xbf\xef\xbb\xbf[]", "body must be a json array")
	f(`[{"type":"click","ad_id":1} {"type":"click","ad_id":2}]`, "")
	f(`[{"type":"click","ad_id":1},{"type":"click","ad_id":01}]`, "")
	f(`[{"type":"click","ad_id":1},{"type":"click","ad_id":"`+"\xff"+`"}]`, "")
	f(`[`+strings.Repeat("[", maxDepth)+strings.Repeat("]", maxDepth)+`]`, "invalid json: nesting too deep at offset 64")
}

func TestDecodeJSONAllocs(t *testing.T) {
	d := testDecoder()
	body := []byte(seedBody)
	var e event.Event
	full := []byte(`{"type":"click","ad_id":"42","timestamp":"2025-04-21T17:00:00.5+02:00","ip":"2001:db8::1",
		"video_playback_time":12.5,"event_id":"0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d","viewer_id":"v\u0031",
		"session_id":"s","user_agent":"Mozilla/5.0 \ud83d\ude00","extra":{"a":[1,{"b":null}]}}`)
	for name, b := range map[string][]byte{"seed": body, "full": full} {
		n := testing.AllocsPerRun(100, func() {
			e.Reset()
			if err := d.DecodeJSON(b, event.TypeClick, &e); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("%s body: %v allocs per decode, want 0", name, n)
		}
	}
	batch := batchBody(100)
	n := testing.AllocsPerRun(20, func() {
		if err := d.DecodeBatch(batch, false, &e, func(i int, e *event.Event, err *FieldError) {
			if err != nil {
				t.Fatal(err)
			}
		}); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("batch of 100: %v allocs, want 0", n)
	}
}

func batchBody(n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"first_quartile","ad_id":%d,"timestamp":"2025-04-21T15:00:00Z","ip":"203.0.113.%d","video_playback_time":7.5,"viewer_id":"viewer-%d"}`, i+1, i%250, i)
	}
	b.WriteByte(']')
	return b.Bytes()
}

func BenchmarkDecodeJSON(b *testing.B) {
	d := testDecoder()
	body := []byte(seedBody)
	var e event.Event
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		e.Reset()
		if err := d.DecodeJSON(body, event.TypeClick, &e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBatch100(b *testing.B) {
	d := testDecoder()
	body := batchBody(100)
	var e event.Event
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := d.DecodeBatch(body, false, &e, func(int, *event.Event, *FieldError) {}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodingJSON is the yardstick: the seed body through encoding/json into a struct.
func BenchmarkEncodingJSON(b *testing.B) {
	body := []byte(seedBody)
	var v struct {
		AdID      uint64  `json:"ad_id"`
		Timestamp string  `json:"timestamp"`
		IP        string  `json:"ip"`
		Playback  float64 `json:"video_playback_time"`
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := json.Unmarshal(body, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(seedBody), uint8(event.TypeClick))
	f.Add([]byte(`{"type":"click","ad_id":"42","event_id":"0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d","viewer_id":"v","user_agent":"\ud83d\ude00"}`), uint8(0))
	f.Add([]byte("\xef\xbb\xbf{\"ad_id\":7}"), uint8(event.TypeImpression))
	d := testDecoder()
	f.Fuzz(func(t *testing.T, body []byte, typ uint8) {
		var e event.Event
		err := d.DecodeJSON(body, event.Type(typ%uint8(event.NumTypes)), &e)
		if err != nil {
			if err.Status != 400 || err.Field == "" || err.Msg == "" {
				t.Fatalf("malformed error %+v", err)
			}
			return
		}
		if e.AdID == 0 || e.AdID > math.MaxInt64 || !e.Type.Valid() || e.ReceiveTime != testNow.Unix() {
			t.Fatalf("accepted an invalid event %s", dump(&e))
		}
		if !printableASCII(e.ViewerID()) || !printableASCII(e.SessionID()) || !utf8.Valid(e.UA()) {
			t.Fatalf("stored bad ids or user agent %s", dump(&e))
		}
		compareReference(t, body, &e)
	})
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(batchBody(3), false)
	f.Add([]byte("{\"type\":\"click\",\"ad_id\":1}\r\n\n{\"ad_id\":2}\n"), true)
	f.Add([]byte("\xef\xbb\xbf[{\"type\":\"click\",\"ad_id\":1}]"), false)
	d := testDecoder()
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		var e event.Event
		next := 0
		top := d.DecodeBatch(body, ndjson, &e, func(i int, ev *event.Event, err *FieldError) {
			if i != next {
				t.Fatalf("index %d, want %d", i, next)
			}
			next++
			if (ev == nil) == (err == nil) {
				t.Fatalf("item %d: want exactly one of event and error", i)
			}
			if ev != nil && (ev.AdID == 0 || !ev.Type.Valid()) {
				t.Fatalf("item %d: accepted %s", i, dump(ev))
			}
		})
		if top != nil {
			if (ndjson && top.Status != 413) || next != 0 || top.Field != "body" {
				t.Fatalf("top-level %+v after %d items (ndjson %v)", top, next, ndjson)
			}
			return
		}
		if !ndjson && !json.Valid(body[bomLen(body):]) {
			t.Fatalf("accepted invalid JSON array %q", body)
		}
	})
}

// A receive time the caller set on the event is the decode call's "now": the acceptance window is computed from it and every
// decoded event keeps it, in all three decoders (a batch resets the event per item and still uses it). The time here is two
// years back, so a window computed from the wall clock would refuse every timestamp below as too old.
func TestCallersReceiveTimeIsNow(t *testing.T) {
	var d Decoder // no pinned clock
	recv := time.Date(2024, 12, 6, 12, 0, 0, 0, time.UTC)
	hourAgo := recv.Add(-time.Hour).Format(time.RFC3339)
	check := func(name string, e *event.Event, err *FieldError, wantEvent time.Time) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %s (%s)", name, err.Msg, err.Field)
		}
		if e.ReceiveTime != recv.Unix() || e.EventTime != wantEvent.Unix() {
			t.Errorf("%s: receive %d event %d, want %d and %d", name, e.ReceiveTime, e.EventTime, recv.Unix(), wantEvent.Unix())
		}
	}
	var e event.Event
	e.ReceiveTime = recv.Unix()
	check("json, no timestamp", &e, d.DecodeJSON([]byte(`{"ad_id":1}`), event.TypeImpression, &e), recv)
	e = event.Event{ReceiveTime: recv.Unix()}
	check("json", &e, d.DecodeJSON([]byte(`{"ad_id":1,"timestamp":"`+hourAgo+`"}`), event.TypeImpression, &e), recv.Add(-time.Hour))
	e = event.Event{ReceiveTime: recv.Unix()}
	check("pixel", &e, d.DecodePixel([]byte("ad_id=1&t="+hourAgo), event.TypeStart, &e), recv.Add(-time.Hour))
	e = event.Event{ReceiveTime: recv.Unix()}
	body := `{"type":"start","ad_id":1,"timestamp":"` + hourAgo + `"}` + "\n" + `{"type":"complete","ad_id":1}` + "\n"
	n, top := d.DecodeBatchWhile([]byte(body), true, &e, func(i int, ev *event.Event, err *FieldError) bool {
		want := recv
		if i == 0 {
			want = recv.Add(-time.Hour)
		}
		check(fmt.Sprintf("batch item %d", i), ev, err, want)
		return true
	})
	if top != nil || n != 2 {
		t.Fatalf("batch: %d items, %v", n, top)
	}
	// Without one, the decoder reads its clock: the same timestamp is two years old and refused.
	e = event.Event{}
	if err := d.DecodeJSON([]byte(`{"ad_id":1,"timestamp":"`+hourAgo+`"}`), event.TypeImpression, &e); err == nil || err.Field != "timestamp" {
		t.Fatalf("no receive time given: %v, want the timestamp refused as too old", err)
	}
}

// BenchmarkDecodeJSONReceiveTime is DecodeJSON with the decoder's own clock (no pinned Now, as in production) against the same
// call given the request's receive time, as the handlers give it: the difference is the clock read a request no longer makes.
func BenchmarkDecodeJSONReceiveTime(b *testing.B) {
	body := []byte(`{"ad_id":1,"event_id":"0190d0b4-7a1c-7cc1-8a3e-5f0e6a7b8c9d","viewer_id":"v0123456789abcdef"}`)
	for _, given := range []bool{false, true} {
		name := "clock"
		if given {
			name = "given"
		}
		b.Run(name, func(b *testing.B) {
			var d Decoder
			var e event.Event
			recv := time.Now().Unix()
			b.ReportAllocs()
			for b.Loop() {
				e.Reset()
				if given {
					e.ReceiveTime = recv
				}
				if err := d.DecodeJSON(body, event.TypeClick, &e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
