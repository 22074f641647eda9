package decode

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/valyala/fastjson"
)

// This file answers one question of issue #16: would github.com/valyala/fastjson serve as the
// JSON decoder in place of the hand-written scanner in decode_json.go? fastjsonDecoder gives
// DecodeJSON's and DecodeBatch's contract on top of fastjson, reusing the package's field
// parsers and validators, so the two can be compared on the same inputs and benchmarks. It is
// test-only; BENCHMARKS.md ("JSON decoder: hand-written vs fastjson") has the figures and the
// decision.
//
// What fastjson does not give and this variant adds, to keep the contract:
//   - fastjson.Parser is lax (it takes 01, 1., +1, raw tabs and unknown escapes in strings), so
//     the body is first checked with fastjson.ValidateBytes, which is strict on grammar.
//   - Neither checks UTF-8, so the body is checked with utf8.Valid: outside strings valid JSON
//     is ASCII, so this is exactly "every string is valid UTF-8".
//   - fastjson.ValidateBytes misses raw control characters in a string that has an escape after
//     them ("\x01\\n" passes: it scans only the part after the last escape), so the body is
//     checked for them too.
//   - Nesting is capped at maxDepth like the scanner (fastjson allows 300 when parsing and has
//     no cap when validating), by walking the parsed tree.
//
// What it cannot give: syntax error messages name no offset (fastjson's errors carry the
// unparsed tail as text only), and lone UTF-16 surrogates in escapes are unescaped fastjson's
// way. The tests below list every difference found.

// fastjsonDecoder decodes with one reused fastjson.Parser, so it serves one goroutine.
type fastjsonDecoder struct {
	d   *Decoder
	p   fastjson.Parser
	num []byte // raw text of the number being read; kept to avoid an allocation per number
	// lax skips every check fastjson.Parser does not make itself: not the contract (it takes
	// 01, raw tabs, invalid UTF-8, ...); it only shows what the checks cost.
	lax bool
}

// fastjsonSyntaxError is the variant's body error: fastjson's own text after the same prefix.
func fastjsonSyntaxError(msg string) *FieldError {
	return badField("body", "invalid json: "+msg)
}

// depthOK reports whether v nests no deeper than limit levels (v itself is one level).
func depthOK(v *fastjson.Value, limit int) bool {
	switch v.Type() {
	case fastjson.TypeObject:
		if limit <= 0 {
			return false
		}
		ok := true
		o, _ := v.Object()
		o.Visit(func(_ []byte, c *fastjson.Value) {
			if ok {
				ok = depthOK(c, limit-1)
			}
		})
		return ok
	case fastjson.TypeArray:
		if limit <= 0 {
			return false
		}
		a, _ := v.Array()
		for _, c := range a {
			if !depthOK(c, limit-1) {
				return false
			}
		}
	}
	return true
}

// parse validates and parses a whole JSON text, applying the scanner's extra rules.
func (f *fastjsonDecoder) parse(body []byte) (*fastjson.Value, *FieldError) {
	if f.lax {
		v, err := f.p.ParseBytes(body)
		if err != nil {
			return nil, fastjsonSyntaxError(err.Error())
		}
		return v, nil
	}
	if err := fastjson.ValidateBytes(body); err != nil {
		return nil, fastjsonSyntaxError(err.Error())
	}
	if !utf8.Valid(body) {
		return nil, fastjsonSyntaxError("invalid utf-8 in string")
	}
	if !controlFree(body) {
		return nil, fastjsonSyntaxError("control character in string")
	}
	v, err := f.p.ParseBytes(body)
	if err != nil {
		return nil, fastjsonSyntaxError(err.Error())
	}
	// Nesting deeper than maxDepth needs more than maxDepth opening brackets; counting them
	// (in strings too) is cheaper than walking the tree.
	if bytes.Count(body, []byte("["))+bytes.Count(body, []byte("{")) > maxDepth && !depthOK(v, maxDepth) {
		return nil, fastjsonSyntaxError("nesting too deep")
	}
	return v, nil
}

// controlFree reports whether no string of a valid JSON text holds a raw control character.
// Outside strings only whitespace may be one, and a backslash only occurs inside strings.
func controlFree(b []byte) bool {
	if !hasControl(b) {
		return true
	}
	in := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			in = !in
		case c == '\\':
			i++
		case c < 0x20 && in:
			return false
		}
	}
	return true
}

// hasControl reports whether b holds a byte below 0x20, eight bytes at a time.
func hasControl(b []byte) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		if (x-0x20*lo)&^x&hi != 0 {
			return true
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}

func isBlank(b []byte) bool { return firstNonBlank(b) < 0 }

// DecodeJSON has the contract of Decoder.DecodeJSON.
func (f *fastjsonDecoder) DecodeJSON(body []byte, typ event.Type, e *event.Event) *FieldError {
	w := f.d.windowFor(typ, e.ReceiveTime)
	return f.document(body[bomLen(body):], &w, e)
}

func (f *fastjsonDecoder) document(body []byte, w *acceptWindow, e *event.Event) *FieldError {
	if isBlank(body) {
		return badField("body", "body is empty")
	}
	v, ferr := f.parse(body)
	if ferr != nil {
		return ferr
	}
	if v.Type() != fastjson.TypeObject {
		return badField("body", "body must be a json object")
	}
	return f.object(v, w, e)
}

// DecodeBatch has the contract of Decoder.DecodeBatch.
func (f *fastjsonDecoder) DecodeBatch(body []byte, ndjson bool, e *event.Event, fn func(i int, e *event.Event, err *FieldError)) *FieldError {
	w := f.d.windowFor(event.TypeUnknown, e.ReceiveTime)
	body = body[bomLen(body):] // the scanner's rule: one byte order mark at the very start is skipped
	if ndjson {
		f.lines(body, &w, e, fn)
		return nil
	}
	switch k := firstNonBlank(body); {
	case k < 0:
		return badField("body", "body is empty")
	case body[k] != '[':
		// Like the scanner: a wrong shape is named before the syntax is looked at.
		return badField("body", "body must be a json array")
	}
	v, ferr := f.parse(body)
	if ferr != nil {
		return ferr
	}
	items, _ := v.Array()
	for i, it := range items {
		e.Reset()
		var ierr *FieldError
		if it.Type() == fastjson.TypeObject {
			ierr = f.object(it, &w, e)
		} else {
			ierr = badField("body", "item must be a json object")
		}
		if ierr != nil {
			fn(i, nil, ierr)
		} else {
			fn(i, e, nil)
		}
	}
	return nil
}

// firstNonBlank returns the index of the first byte that is not JSON whitespace, or -1.
func firstNonBlank(b []byte) int {
	for i, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return i
		}
	}
	return -1
}

func (f *fastjsonDecoder) lines(body []byte, w *acceptWindow, e *event.Event, fn func(i int, e *event.Event, err *FieldError)) {
	i := 0
	for line := range bytes.Lines(body) { // the "\n" each keeps is JSON whitespace
		if isBlank(line) {
			continue
		}
		e.Reset()
		if err := f.document(line, w, e); err != nil {
			fn(i, nil, err)
		} else {
			fn(i, e, nil)
		}
		i++
	}
}

// fjString returns a string value, decoded, when it fits in max bytes (the scanner's stack
// buffers); ok is false for other kinds or longer strings.
func fjString(v *fastjson.Value, maxLen int) ([]byte, bool) {
	if v.Type() != fastjson.TypeString {
		return nil, false
	}
	s, _ := v.StringBytes()
	return s, len(s) <= maxLen
}

// fjAbsent is the scanner's "null or empty string means absent".
func fjAbsent(v *fastjson.Value) bool {
	switch v.Type() {
	case fastjson.TypeNull:
		return true
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		return len(s) == 0
	}
	return false
}

// object decodes one parsed object into e with the scanner's field rules.
func (f *fastjsonDecoder) object(v *fastjson.Value, w *acceptWindow, e *event.Event) *FieldError {
	o, _ := v.Object()
	var (
		ferr     *FieldError
		seen     uint16
		haveTime bool
	)
	o.Visit(func(key []byte, v *fastjson.Value) {
		bit, err := f.field(key, v, w, e, &haveTime)
		if bit != 0 {
			if seen&bit != 0 && err == nil {
				name := fieldNames[bit]
				err = badField(name, name+" appears more than once")
			}
			seen |= bit
		}
		if err != nil && ferr == nil {
			ferr = err
		}
	})
	if ferr != nil {
		return ferr
	}
	return w.finish(e, seen&seenAdID != 0, haveTime)
}

var fieldNames = map[uint16]string{
	seenAdID: "ad_id", seenTimestamp: "timestamp", seenIP: "ip", seenPlayback: "video_playback_time",
	seenEventID: "event_id", seenViewer: "viewer_id", seenSession: "session_id", seenUA: "user_agent", seenType: "type",
}

// number returns the raw text of a number value.
func (f *fastjsonDecoder) number(v *fastjson.Value) []byte {
	f.num = v.MarshalTo(f.num[:0])
	return f.num
}

// field applies one key; bit is the key's duplicate-detection bit, 0 for unknown keys.
func (f *fastjsonDecoder) field(key []byte, v *fastjson.Value, w *acceptWindow, e *event.Event, haveTime *bool) (uint16, *FieldError) {
	kind := v.Type()
	switch string(key) {
	case "ad_id":
		st := adIDBad
		switch kind {
		case fastjson.TypeNumber:
			e.AdID, st = parseAdID(f.number(v))
		case fastjson.TypeString:
			if s, ok := fjString(v, 64); ok {
				e.AdID, st = parseAdID(s)
			}
		case fastjson.TypeNull:
			return seenAdID, badField("ad_id", "ad_id is required")
		}
		if st != adIDOK {
			return seenAdID, adIDError("ad_id", st)
		}
		return seenAdID, nil
	case "timestamp":
		if fjAbsent(v) {
			return seenTimestamp, nil
		}
		s, ok := fjString(v, 64)
		var t int64
		if ok {
			t, ok = parseTime(s, false)
		}
		if !ok {
			return seenTimestamp, badField("timestamp", "timestamp must be an rfc 3339 string")
		}
		if err := w.checkTime("timestamp", t); err != nil {
			return seenTimestamp, err
		}
		e.EventTime = t
		*haveTime = true
		return seenTimestamp, nil
	case "ip":
		if fjAbsent(v) {
			return seenIP, nil
		}
		s, ok := fjString(v, 64)
		if ok {
			e.IP, ok = event.ParseIP(s)
		}
		if !ok {
			return seenIP, badField("ip", "ip must be an ipv4 or ipv6 address")
		}
		return seenIP, nil
	case "video_playback_time":
		if kind == fastjson.TypeNull {
			return seenPlayback, nil
		}
		if kind != fastjson.TypeNumber {
			return seenPlayback, badField("video_playback_time", "video_playback_time must be a number")
		}
		ms, st := secondsToMs(f.number(v))
		return seenPlayback, w.setPlayback("video_playback_time", e, ms, st)
	case "event_id":
		if fjAbsent(v) {
			return seenEventID, nil
		}
		s, ok := fjString(v, 64)
		if !ok {
			return seenEventID, badField("event_id", "event_id must be a uuid")
		}
		return seenEventID, setEventID("event_id", e, s)
	case "viewer_id":
		if fjAbsent(v) {
			return seenViewer, nil
		}
		n, err := fjID(e.Viewer[:], v, "viewer_id")
		if err == nil {
			e.ViewerLen = uint8(n)
		}
		return seenViewer, err
	case "session_id":
		if fjAbsent(v) {
			return seenSession, nil
		}
		n, err := fjID(e.Session[:], v, "session_id")
		if err == nil {
			e.SessionLen = uint8(n)
		}
		return seenSession, err
	case "user_agent":
		if fjAbsent(v) {
			return seenUA, nil
		}
		if kind != fastjson.TypeString {
			return seenUA, badField("user_agent", "user_agent must be a string")
		}
		s, _ := v.StringBytes()
		n := len(s)
		if n > len(e.UserAgent) {
			// Truncate on a rune boundary, as the scanner's unescape does.
			n = len(e.UserAgent)
			for n > 0 && !utf8.RuneStart(s[n]) {
				n--
			}
		}
		copy(e.UserAgent[:], s[:n])
		sanitizeUA(e.UserAgent[:n])
		e.UALen = uint16(n)
		return seenUA, nil
	case "type":
		if fjAbsent(v) {
			return seenType, nil
		}
		s, ok := fjString(v, 32)
		if !ok {
			if kind != fastjson.TypeString {
				return seenType, badField("type", "type must be a string")
			}
			return seenType, badField("type", "type is not a known event type")
		}
		return seenType, w.setType("type", e, s)
	}
	return 0, nil
}

// fjID copies a viewer or session id into dst (MaxIDLen bytes) and checks it.
func fjID(dst []byte, v *fastjson.Value, field string) (int, *FieldError) {
	if v.Type() != fastjson.TypeString {
		return 0, badField(field, field+" must be a string")
	}
	s, _ := v.StringBytes()
	if len(s) > len(dst) {
		return 0, tooLongID(field)
	}
	n := copy(dst, s)
	return n, checkID(field, dst[:n])
}

// fjInput is one document to run through both decoders.
type fjInput struct {
	body   []byte
	typ    event.Type // for single documents
	ndjson bool       // for batches
}

// readCorpus reads a fuzz corpus directory of go test fuzz v1 files whose first argument is
// []byte and whose second is a byte or a bool.
func readCorpus(t *testing.T, dir string) []fjInput {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", dir, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("corpus %s: %v (%d files)", dir, err, len(files))
	}
	var out []fjInput
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		if len(lines) != 3 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: unexpected corpus format", name)
		}
		body, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		in := fjInput{body: []byte(body)}
		arg := strings.TrimSuffix(lines[2], ")")
		switch {
		case strings.HasPrefix(arg, "byte('"):
			c, _, _, err := strconv.UnquoteChar(strings.TrimSuffix(strings.TrimPrefix(arg, "byte('"), "'"), '\'')
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			in.typ = event.Type(uint8(c) % uint8(event.NumTypes)) // as FuzzDecodeJSON maps it
		case arg == "bool(true":
			in.ndjson = true
		case arg == "bool(false":
		default:
			t.Fatalf("%s: unexpected argument %q", name, lines[2])
		}
		out = append(out, in)
	}
	return out
}

// singleInputs is the fuzz corpus plus the documents of TestDecodeJSONGood, TestDecodeJSONBad
// and TestSkipMatchesValid, grouped by the key they exercise, plus the edge cases issue #16
// names (duplicate keys, invalid UTF-8, deep nesting, big numbers, escapes).
func singleInputs(t *testing.T) []fjInput {
	ins := readCorpus(t, "FuzzDecodeJSON")
	add := func(typ event.Type, bodies ...string) {
		for _, b := range bodies {
			ins = append(ins, fjInput{body: []byte(b), typ: typ})
		}
	}
	add(event.TypeClick, seedBody, ``, " \n", `[]`, `"x"`, `42`, `{}`, `{"x":1}`, `{"ad_id":1}x`, `{"ad_id":1`, `{"ad_id":1}{}`,
		`{"ad_id":1,}`, `{,"ad_id":1}`, `{"ad_id" 1}`, `{ad_id:1}`, `{'ad_id':1}`, `{"ad_id":1 /* c */}`,
		" \t\r\n{ \"ad_id\" : 42 } \n", "\xef\xbb\xbf{\"ad_id\":1}", "\x00", "{\"ad_id\":1}\x00",
		`{"ad_id":-1,"x":`, `{"ad_id":"x","timestamp":"bad"`, `{"ip":"x","ad_id":0}`, `{"ad_id":0,"ip":"x"}`,
		`{"ad_id":1,"ad_id":2}`, `{"ad_id":1,"ad\u005fid":1}`, `{"ad_id":1,"viewer_id":"a","viewer_id":null}`,
		`{"ad_id":1,"x":1,"x":2}`, `{"ad_id":null,"ad_id":1}`, `{"ad_id":0,"ad_id":0}`)
	add(event.TypeUnknown, `{"ad_id":1,"type":"click","type":"click"}`, `{"ad_id":1}`, `{"ad_id":1,"type":null}`,
		`{"ad_id":1,"type":"view"}`, `{"ad_id":1,"type":"Click"}`, `{"ad_id":1,"type":1}`,
		`{"ad_id":1,"type":"`+strings.Repeat("c", 100)+`"}`, `{"type":"firstQuartile","ad_id":3}`,
		`{"type":"\u0063lick","ad_id":3}`)
	add(event.TypeFirstQuartile, `{"type":"firstQuartile","ad_id":3}`, `{"type":"first_quartile","ad_id":3}`)
	add(event.TypeClick, `{"ad_id":1,"type":"impression"}`)
	add(event.Type(200), `{"ad_id":1}`)
	field := func(key string, vals ...string) {
		for _, v := range vals {
			add(event.TypeClick, `{"ad_id":1,"`+key+`":`+v+`}`)
		}
	}
	ids := []string{`""`, `null`, `"x"`, `"viewer-1"`, `"a b"`, `"a\nb"`, `"é"`, `5`, `false`, `"a\u0000"`, `"s\u0031"`,
		`"` + strings.Repeat("x", event.MaxIDLen) + `"`, `"` + strings.Repeat("x", event.MaxIDLen+1) + `"`,
		`"` + strings.Repeat(`\u0078`, event.MaxIDLen) + `"`, `"` + strings.Repeat(`\u0078`, event.MaxIDLen+1) + `"`,
		`"\ud800x"`, `"\ud83d\ude00"`, `"\/"`, `"\ud800\u0041"`}
	field("viewer_id", ids...)
	field("session_id", ids...)
	for _, v := range []string{`01`, `1.`, `.5`, `+1`, `-`, `1e`, `1e+`, `NaN`, `Infinity`, `-Infinity`, `inf`, `nan`, `0x1`,
		`null`, `0`, `-1`, `-0`, `1.5`, `1.0`, `1e3`, `true`, `{}`, `[1]`, `""`, `"abc"`, `"01"`, `"-1"`, `" 1"`, `42`, `"42"`,
		`"\u0034\u0032"`, `9223372036854775807`, `"1234567890123456789012345"`, `"` + strings.Repeat("1", 65) + `"`,
		`9223372036854775808`, `18446744073709551616`, `99999999999999999999999999`, `"9223372036854775808"`, `1-2`, `1e5e5`} {
		add(event.TypeClick, `{"ad_id":`+v+`}`)
	}
	field("x", `tru`, `nul`, `nullx`, `"abc}`, `"abc\"}`, `"a\xb"`, `"a\u12"`, `"a\u12g4"`, "\"a\tb\"", "\"a\x00b\"",
		"\"\xff\"", "\"\xc3\"", `[1,2}`, `{"a"}}`, `{"a":1,}}`, `[1,]}`, `[}`, `0`, `-0`, `-0.0e-0`, `1E+2`, `""`,
		`"\u0000"`, `"\ud800"`, `[]`, `{}`, `[[[]]]`, `{"":{"":[]}}`, `"\/"`, `[1,"2",{"3":[4]}]`, `01`, `1.`, `.1`,
		`-`, `+1`, `0x1`, `1e`, `"\a"`, `[1 2]`, `{"a" "b"}`, `{"a":}`, `[,]`, `tRue`, "\"\x7f\"", `"é"`,
		"\"\u2028\"", `1e999`, `NaN`, `-Inf`, `1.2.3`, `--1`, `1+1`, `{"a":1,"a":2}`, `{"\u00e9":1}`,
		strings.Repeat("[", maxDepth-1)+strings.Repeat("]", maxDepth-1), strings.Repeat("[", maxDepth)+strings.Repeat("]", maxDepth),
		strings.Repeat(`{"a":`, maxDepth-1)+"1"+strings.Repeat("}", maxDepth-1), strings.Repeat("[", 400)+strings.Repeat("]", 400))
	// Raw control characters before an escape, which fastjson.ValidateBytes lets through.
	add(event.TypeClick, "{\"ad_id\":1,\"session_id\":\"\x1fs\\u0031\"}", "{\"ad_id\":1,\"x\":\"\x01\\n\"}", "{\"ad_id\":1,\"a\tb\\n\":1}")
	add(event.TypeClick, "{\"ad_id\":1,\"\xed\xa0\x80\":1}", "{\"ad_id\":1,\"a\tb\":1}", `{"ad_id":1,"a\qb":1}`,
		`{"ad_id":1,"`+strings.Repeat("k", 100)+`":1}`, `{"ad_id":1,"ad_id\ud800":1}`)
	field("timestamp", `null`, `""`, `1745247600`, `"1745247600"`, `"2025-04-21"`, `"2025-04-21T15:00:00"`,
		`"2025-04-21 15:00:00Z"`, `"2025-04-21t15:00:00Z"`, `"2025-04-21T15:00:00z"`, `"2025-04-21T15:00:00.Z"`,
		`"2025-04-21T15:00:00+0100"`, `"2025-04-21T15:00:00+01"`, `"2025-04-21T15:00:00+24:00"`, `"2025-04-21T5:00:00Z"`,
		`"2025-04-21T24:00:00Z"`, `"2025-04-21T15:60:00Z"`, `"2025-04-21T15:00:60Z"`, `"2025-02-29T15:00:00Z"`,
		`"2025-04-31T15:00:00Z"`, `"2025-13-01T15:00:00Z"`, `"`+strings.Repeat("2", 80)+`"`, `"2025-04-21T15:05:31Z"`,
		`"2025-04-14T15:00:29Z"`, `"0000-01-01T00:00:00Z"`, `"9999-12-31T23:59:59Z"`, `"2025-04-21T14:59:59.999999999Z"`,
		`"2025-04-21T10:00:00-05:00"`, `"2025-04-22T00:30:00+09:30"`, `"2025-04-21T15:05:30Z"`, `"2025-04-14T15:00:30Z"`,
		`"2025-04-21T15:00:00\u005a"`, `"2025-04-21T15:00:00.`+strings.Repeat("0", 50)+`Z"`)
	field("ip", `null`, `""`, `"1.2.3"`, `"1.2.3.256"`, `"01.2.3.4"`, `"fe80::1%eth0"`, `"::ffff:1.2.3.4.5"`, `"example.com"`,
		`" 1.2.3.4"`, `3405803777`, `["1.2.3.4"]`, `"::ffff:203.0.113.1"`, `"::"`, `"2001:DB8:0:0:0:0:0:1"`, `"\u0031.2.3.4"`)
	field("video_playback_time", `null`, `"12"`, `true`, `{}`, `0`, `-0`, `-0.0e5`, `0.0125`, `0.0124999`, `0.0004`, `1e1`,
		`1.5E+2`, `12345e-3`, `1e-999`, `0e999`, `86400`, `86400.0004`, `-1`, `-0.0001`, `-1e400`, `86400.0005`, `1e400`,
		`123456789012345678901234567890`, `NaN`, `Infinity`, `1.`, `01`)
	field("event_id", `null`, `""`, `"0190B3B2-7C4E-7A1B-9C3D-5E6F7A8B9C0D"`, `"abc"`, `"0190b3b27c4e7a1b9c3d5e6f7a8b9c0d"`,
		`"{0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d}"`, `"0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0g"`,
		`"00000000-0000-0000-0000-000000000000"`, `123`)
	field("user_agent", `null`, `""`, `5`, `"Mozilla/5.0 \"x\" \\ \/ \ud83d\ude00"`, `"`+strings.Repeat("a", 300)+`"`,
		`"`+strings.Repeat("a", 255)+`é"`, `"`+strings.Repeat("a", 254)+`é"`, `"`+strings.Repeat("a", 254)+`😀"`,
		`"`+strings.Repeat("a", 254)+`\u00e9xyz"`, `"`+strings.Repeat("a", 255)+`\u00e9"`,
		`"`+strings.Repeat("a", 250)+`\ud83d\ude00\ud83d\ude00"`, `"a\tb\nc\u0000d\u007f"`, `"\ud800x"`,
		`"\udc00\ud800"`, `"\ud800\u0041"`, `"\ud83d\ude00"`, `"\uD83D\uDE00"`, `"\ud800"`, `"\ud800\ud800"`,
		`"\ud83d\u0041\ude00"`, `"`+strings.Repeat("a", 253)+`\ud800x"`)
	add(event.TypeUnknown, `{"type":"third_quartile","ad_id":3,"timestamp":"2025-04-21T17:00:00.999+02:00","ip":"2001:db8::1",
		"video_playback_time":12.3456,"event_id":"0190B3B2-7C4E-7A1B-9C3D-5E6F7A8B9C0D",
		"viewer_id":"viewer-1","session_id":"s\u0031","user_agent":"Mozilla/5.0 \"x\" \\ \/ \ud83d\ude00"}`,
		`{"ctx":{"a":[1,2,{"b":"}]\"{"}],"c":null,"d":[[],{}]},"ad_id":9,"z":-1.5e-3,"t":true,"f":false,
		"s":"\u00e9\n","ad_idx":"no","AD_ID":"no","ctx":1,"type":"click"}`)
	return ins
}

// fjOutcome is what one decode produced, in comparable form.
type fjOutcome struct {
	ev  event.Event
	err FieldError
	ok  bool
}

func (o fjOutcome) String() string {
	if o.ok {
		return dump(&o.ev)
	}
	return fmt.Sprintf("error %q: %s", o.err.Field, o.err.Msg)
}

func outcome(e *event.Event, err *FieldError) fjOutcome {
	if err != nil {
		return fjOutcome{err: *err}
	}
	return fjOutcome{ev: *e, ok: true}
}

// hasLoneSurrogate reports a \u escape of an unpaired UTF-16 surrogate half: the two decoders
// unescape those differently (the scanner writes U+FFFD as encoding/json does; fastjson keeps
// the escape's text, or swallows the next \u escape).
func hasLoneSurrogate(b []byte) bool {
	esc := func(i int) rune { // the \u escape at i, or -1
		if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
			return -1
		}
		v, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 32)
		if err != nil {
			return -1
		}
		return rune(v)
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		r := esc(i)
		switch {
		case r >= 0xD800 && r < 0xDC00:
			if r2 := esc(i + 6); r2 < 0xDC00 || r2 >= 0xE000 {
				return true
			}
			i += 11
		case r >= 0xDC00 && r < 0xE000:
			return true
		default:
			i++
		}
	}
	return false
}

// diffKind names a known, explained class of difference, or "" for an unexplained one.
func diffKind(body []byte, old, fj fjOutcome) string {
	if !old.ok && !fj.ok && old.err.Field == "body" && fj.err.Field == "body" &&
		strings.HasPrefix(old.err.Msg, "invalid json: ") && strings.HasPrefix(fj.err.Msg, "invalid json: ") {
		return "syntax error text (no offset, fastjson's wording)"
	}
	if hasLoneSurrogate(body) {
		return "lone surrogate escape"
	}
	return ""
}

// compareAll runs every input through both decoders and returns the explained differences by
// kind (with one example each); unexplained ones fail the test.
func compareAll(t *testing.T, ins []fjInput) map[string][]string {
	t.Helper()
	d := testDecoder()
	fj := &fastjsonDecoder{d: d}
	kinds := map[string][]string{}
	note := func(body []byte, old, got fjOutcome) {
		if old == got {
			return
		}
		k := diffKind(body, old, got)
		if k == "" {
			t.Errorf("%q:\n hand-written %v\n fastjson     %v", body, old, got)
			return
		}
		kinds[k] = append(kinds[k], fmt.Sprintf("%q: hand-written %v; fastjson %v", body, old, got))
	}
	for _, in := range ins {
		var e1, e2 event.Event
		note(in.body, outcome(&e1, d.DecodeJSON(in.body, in.typ, &e1)), outcome(&e2, fj.DecodeJSON(in.body, in.typ, &e2)))
	}
	return kinds
}

func logKinds(t *testing.T, kinds map[string][]string) {
	t.Helper()
	for k, ex := range kinds {
		t.Logf("%d × %s, e.g. %s", len(ex), k, ex[0])
	}
}

// TestFastjsonMatchesDecodeJSON replays the fuzz corpus and the decoder tests' documents
// through both decoders. Every difference must be of a known kind; -v lists them.
func TestFastjsonMatchesDecodeJSON(t *testing.T) {
	ins := singleInputs(t)
	kinds := compareAll(t, ins)
	logKinds(t, kinds)
	// The differences the BENCHMARKS.md decision rests on must still be there.
	for _, k := range []string{"syntax error text (no offset, fastjson's wording)", "lone surrogate escape"} {
		if len(kinds[k]) == 0 {
			t.Errorf("no difference of kind %q any more: update BENCHMARKS.md", k)
		}
	}
	t.Logf("%d documents compared", len(ins))
}

// TestFastjsonMatchesDecodeJSONMutated compares the decoders on seeded random byte edits of
// the inputs above, to find differences no listed case shows.
func TestFastjsonMatchesDecodeJSONMutated(t *testing.T) {
	base := singleInputs(t)
	rng := rand.New(rand.NewPCG(16, 16))
	alphabet := []byte("{}[]:,\"\\ 0123456789.eE+-tfnulx\x00\x1f\x7f\xc3\xa9\xff")
	var ins []fjInput
	for n := 0; n < 5000; n++ { // about 1 s with -race
		in := base[rng.IntN(len(base))]
		b := append([]byte(nil), in.body...)
		for k := 1 + rng.IntN(3); k > 0; k-- {
			switch i := rng.IntN(len(b) + 1); rng.IntN(3) {
			case 0: // insert
				b = append(b[:i], append([]byte{alphabet[rng.IntN(len(alphabet))]}, b[i:]...)...)
			case 1: // delete
				if i < len(b) {
					b = append(b[:i], b[i+1:]...)
				}
			default: // replace
				if i < len(b) {
					b[i] = alphabet[rng.IntN(len(alphabet))]
				}
			}
		}
		ins = append(ins, fjInput{body: b, typ: in.typ})
	}
	logKinds(t, compareAll(t, ins))
}

// batchOutcome records what DecodeBatch reported, item by item.
func batchOutcome(decode func([]byte, bool, *event.Event, func(int, *event.Event, *FieldError)) *FieldError, in fjInput) []fjOutcome {
	var e event.Event
	var out []fjOutcome
	top := decode(in.body, in.ndjson, &e, func(i int, ev *event.Event, err *FieldError) { out = append(out, outcome(ev, err)) })
	if top != nil {
		out = append(out, fjOutcome{err: FieldError{Status: top.Status, Field: "top:" + top.Field, Msg: top.Msg}})
	}
	return out
}

// TestFastjsonMatchesDecodeBatch does the same for batches: the FuzzDecodeBatch corpus and
// the documents of TestDecodeBatch and TestDecodeBatchTopLevel.
func TestFastjsonMatchesDecodeBatch(t *testing.T) {
	ins := readCorpus(t, "FuzzDecodeBatch")
	for _, b := range []string{`[]`, " [ ] \n", ``, `"x"`, `{"type":"click","ad_id":1}`, `[{"type":"click","ad_id":1}`,
		`[{"type":"click","ad_id":1},]`, `[{"type":"click","ad_id":1}]]`, `[{"type":"click","ad_id":1} {"type":"click","ad_id":2}]`,
		`[{"type":"click","ad_id":1},{"type":"click","ad_id":01}]`, `[{"type":"click","ad_id":1},{"type":"click","ad_id":"` + "\xff" + `"}]`,
		`[` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `]`, string(batchBody(100)),
		`[{"type":"click","ad_id":1,"viewer_id":"abc"},{"type":"click","ad_id":2}]`, "\x00[]",
		`[{"type":"click","ad_id":1},{"type":"start","ad_id":0},{"ad_id":3},{"type":"skip","ad_id":4,"viewer_id":"x"},
		7,"s",null,[],{"type":"pause","ad_id":5,"ip":"bad"},{"type":"mute","ad_id":6}]`} {
		ins = append(ins, fjInput{body: []byte(b)})
	}
	for _, b := range []string{"{\"type\":\"click\",\"ad_id\":1}\r\n\r\n  \r\n{\"type\":\"start\",\"ad_id\":2}\n{\"type\":\"start\",\"ad_id\":\n\t\n{\"type\":\"complete\",\"ad_id\":3}",
		"", "\n\r\n\n", `[{"type":"click","ad_id":1}]`, "{\"type\":\"click\",\"ad_id\":1} {}\n{\"type\":\"click\",\"ad_id\":0}\n"} {
		ins = append(ins, fjInput{body: []byte(b), ndjson: true})
	}
	d := testDecoder()
	fj := &fastjsonDecoder{d: d}
	kinds := map[string][]string{}
	for _, in := range ins {
		old, got := batchOutcome(d.DecodeBatch, in), batchOutcome(fj.DecodeBatch, in)
		if fmt.Sprint(old) == fmt.Sprint(got) {
			continue
		}
		k := ""
		if len(old) == len(got) {
			k = "syntax error text (no offset, fastjson's wording)"
			for i := range old {
				if old[i] != got[i] && diffKind(in.body, old[i], got[i]) == "" &&
					(old[i].err.Field != "top:body" || got[i].err.Field != "top:body") {
					k = ""
				}
			}
		}
		if k == "" {
			t.Errorf("%q (ndjson %v):\n hand-written %v\n fastjson     %v", in.body, in.ndjson, old, got)
			continue
		}
		kinds[k] = append(kinds[k], fmt.Sprintf("%q: hand-written %v; fastjson %v", in.body, old, got))
	}
	logKinds(t, kinds)
}

// TestFastjsonAllocs checks the "0 allocs" condition for the variant, once its
// parser has grown.
func TestFastjsonAllocs(t *testing.T) {
	fj := &fastjsonDecoder{d: testDecoder()}
	var e event.Event
	full := []byte(`{"type":"click","ad_id":"42","timestamp":"2025-04-21T17:00:00.5+02:00","ip":"2001:db8::1",
		"video_playback_time":12.5,"event_id":"0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d","viewer_id":"v\u0031",
		"session_id":"s","user_agent":"Mozilla/5.0 \ud83d\ude00","extra":{"a":[1,{"b":null}]}}`)
	for name, b := range map[string][]byte{"seed": []byte(seedBody), "full": full} {
		n := testing.AllocsPerRun(100, func() {
			e.Reset()
			if err := fj.DecodeJSON(b, event.TypeClick, &e); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("%s body: %v allocs per decode, want 0", name, n)
		}
	}
	batch := batchBody(100)
	n := testing.AllocsPerRun(20, func() {
		_ = fj.DecodeBatch(batch, false, &e, func(int, *event.Event, *FieldError) {})
	})
	if n != 0 {
		t.Errorf("batch of 100: %v allocs, want 0", n)
	}
}

// benchSingle decodes BenchmarkDecodeJSON's body with decode.
func benchSingle(b *testing.B, decode func([]byte, event.Type, *event.Event) *FieldError) {
	body := []byte(seedBody)
	var e event.Event
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		e.Reset()
		if err := decode(body, event.TypeClick, &e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeJSONFastjson mirrors BenchmarkDecodeJSON with one reused parser, fastjson's
// best case.
func BenchmarkDecodeJSONFastjson(b *testing.B) {
	benchSingle(b, (&fastjsonDecoder{d: testDecoder()}).DecodeJSON)
}

// BenchmarkDecodeJSONFastjsonPool adds what a server needs on top: a Parser is not safe for
// concurrent use, and today's Decoder is one stateless value shared by every connection, so
// each request would take a parser from a pool.
func BenchmarkDecodeJSONFastjsonPool(b *testing.B) {
	d := testDecoder()
	pool := sync.Pool{New: func() any { return &fastjsonDecoder{d: d} }}
	benchSingle(b, func(body []byte, typ event.Type, e *event.Event) *FieldError {
		fj := pool.Get().(*fastjsonDecoder)
		defer pool.Put(fj)
		return fj.DecodeJSON(body, typ, e)
	})
}

// BenchmarkDecodeJSONFastjsonLax is the variant without the checks fastjson.Parser lacks.
func BenchmarkDecodeJSONFastjsonLax(b *testing.B) {
	benchSingle(b, (&fastjsonDecoder{d: testDecoder(), lax: true}).DecodeJSON)
}

// BenchmarkDecodeBatch100Fastjson mirrors BenchmarkDecodeBatch100.
func BenchmarkDecodeBatch100Fastjson(b *testing.B) {
	fj := &fastjsonDecoder{d: testDecoder()}
	body := batchBody(100)
	var e event.Event
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := fj.DecodeBatch(body, false, &e, func(int, *event.Event, *FieldError) {}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeJSONFastjsonParseOnly is fastjson's floor on the same body: ParseBytes
// alone, without the validation, checks and field decoding the variant adds.
func BenchmarkDecodeJSONFastjsonParseOnly(b *testing.B) {
	var p fastjson.Parser
	body := []byte(seedBody)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := p.ParseBytes(body); err != nil {
			b.Fatal(err)
		}
	}
}
