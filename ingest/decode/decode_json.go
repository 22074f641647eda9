package decode

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"github.com/adtracker/adtracker/ingest/event"
)

// The JSON decoder is a small hand-written scanner: encoding/json allocates per call and
// reflects, and an event has only a handful of flat fields. It validates the whole document
// (RFC 8259, plus: strings must be valid UTF-8, nesting is capped at maxDepth) and copies only
// the fields it keeps, straight into the Event's fixed arrays.
//
// Decisions a client can observe:
//   - ad_id is a JSON number or a string of digits ("42"): JavaScript cannot hold ids above 2^53
//     in a number, so SDKs often quote them. Either way it must be a positive integer without
//     sign, fraction, exponent or leading zero, at most 2^63-1 (Postgres bigint).
//   - A known key given twice is rejected (400, that key): with two ad_ids it is unclear which
//     the client meant. Unknown keys are skipped, duplicates included.
//   - Keys match exactly (encoding/json would also match "AD_ID"; SDKs don't send that).
//   - null or "" for an optional field means absent.
//   - A syntax error anywhere wins over a field error, so a truncated body is reported as
//     field "body" even if an earlier field was also bad; otherwise the first bad field wins.
//   - A UTF-8 byte order mark (EF BB BF) at the start of a body is skipped, as RFC 8259 §8.1
//     allows: some client libraries write one (.NET's Encoding.UTF8, Windows tools) and nothing
//     else about such a body is wrong. Error offsets still count from the body's first byte.

// maxDepth caps nesting inside skipped values; real SDK payloads are shallow, and the cap keeps
// the recursive skipper's stack small.
const maxDepth = 64

type valueKind uint8

const (
	kindInvalid valueKind = iota
	kindString
	kindNumber
	kindTrue
	kindFalse
	kindNull
	kindObject
	kindArray
)

// jsonScanner walks one JSON text. Errors are recorded as a message and offset and turned into a
// FieldError only when returned, so the success path never builds one.
type jsonScanner struct {
	buf    []byte
	pos    int
	depth  int
	errMsg string
	errPos int
	// quiet: the caller will not show this item's error, so a syntax error is the shared errItemSyntax instead of a message built
	// for it (a batch of junk must not cost an allocation per item).
	quiet bool
	// items counts the elements of the top-level array skipContainer walks (depth 1); past maxItems (when > 0) it stops with
	// tooMany set, so an oversized batch is refused without scanning the rest.
	items, maxItems int
	tooMany         bool
}

func (s *jsonScanner) fail(msg string) bool {
	if s.errMsg == "" {
		s.errMsg = msg
		s.errPos = s.pos
	}
	return false
}

// Errors shared by every item that fails the same way; handlers only read them.
var (
	errItemSyntax    = &FieldError{Status: 400, Field: "body", Msg: "invalid json"}
	errNotObject     = &FieldError{Status: 400, Field: "body", Msg: "body must be a json object"}
	errItemNotObject = &FieldError{Status: 400, Field: "body", Msg: "item must be a json object"}
)

func (s *jsonScanner) syntaxError() *FieldError {
	if s.quiet {
		return errItemSyntax
	}
	return badField("body", "invalid json: "+s.errMsg+" at offset "+strconv.Itoa(s.errPos))
}

func (s *jsonScanner) skipWS() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *jsonScanner) unexpected() bool {
	if s.pos >= len(s.buf) {
		return s.fail("unexpected end of input")
	}
	if c := s.buf[s.pos]; c >= utf8.RuneSelf {
		// Outside strings JSON is ASCII, and one byte of a multi-byte character quoted as a character names something the client
		// never sent (0xEF of a byte order mark read as 'ï').
		return s.fail("unexpected non-ascii byte 0x" + strconv.FormatUint(uint64(c), 16))
	}
	return s.fail("unexpected character " + strconv.QuoteRune(rune(s.buf[s.pos])))
}

// plain marks bytes that may appear raw in a string without further checks.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString reads a string whose opening quote is at s.pos. It returns the raw content
// (escapes still encoded) and whether any escape occurs.
func (s *jsonScanner) scanString() (raw []byte, esc, ok bool) {
	b := s.buf
	i := s.pos + 1
	start := i
	for i < len(b) {
		if i+8 <= len(b) {
			// Eight bytes at a time up to the first byte the cases below must see (swar.go).
			m := stringStops(load64(b[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += firstStop(m)
		}
		c := b[i]
		if plain[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			s.pos = i + 1
			return b[start:i], esc, true
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				s.pos = i
				return nil, false, s.fail("unterminated string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					s.pos = i
					return nil, false, s.fail("invalid \\u escape")
				}
				i += 6
			default:
				s.pos = i
				return nil, false, s.fail("invalid escape")
			}
		case c < 0x20:
			s.pos = i
			return nil, false, s.fail("control character in string")
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				s.pos = i
				return nil, false, s.fail("invalid utf-8 in string")
			}
			i += size
		}
	}
	s.pos = i
	return nil, false, s.fail("unterminated string")
}

// hexVal is the value of a hex digit, 0xff for any other byte.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := byte(0); i < 10; i++ {
		t['0'+i] = i
	}
	for i := byte(0); i < 6; i++ {
		t['a'+i], t['A'+i] = 10+i, 10+i
	}
	return t
}()

func isHex(c byte) bool { return hexVal[c] != 0xff }

// scanNumber reads a number at s.pos per the JSON grammar; it reports whether it is an
// integer (no fraction or exponent).
func (s *jsonScanner) scanNumber() (raw []byte, ok bool) {
	b := s.buf
	i := s.pos
	start := i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		s.pos = i
		return nil, s.fail("invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			s.pos = i
			return nil, s.fail("invalid number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			s.pos = i
			return nil, s.fail("invalid number")
		}
	}
	s.pos = i
	return b[start:i], true
}

func (s *jsonScanner) literal(word string) bool {
	if len(s.buf)-s.pos < len(word) || string(s.buf[s.pos:s.pos+len(word)]) != word {
		return s.fail("invalid literal")
	}
	s.pos += len(word)
	return true
}

// value reads any value at s.pos (whitespace already skipped). Strings come back raw; objects
// and arrays are validated and skipped.
func (s *jsonScanner) value() (kind valueKind, raw []byte, esc bool) {
	if s.pos >= len(s.buf) {
		s.unexpected()
		return kindInvalid, nil, false
	}
	switch c := s.buf[s.pos]; {
	case c == '"':
		raw, esc, ok := s.scanString()
		if !ok {
			return kindInvalid, nil, false
		}
		return kindString, raw, esc
	case c == '-' || (c >= '0' && c <= '9'):
		raw, ok := s.scanNumber()
		if !ok {
			return kindInvalid, nil, false
		}
		return kindNumber, raw, false
	case c == 't':
		if s.literal("true") {
			return kindTrue, nil, false
		}
	case c == 'f':
		if s.literal("false") {
			return kindFalse, nil, false
		}
	case c == 'n':
		if s.literal("null") {
			return kindNull, nil, false
		}
	case c == '{':
		if s.skipContainer('{', '}') {
			return kindObject, nil, false
		}
	case c == '[':
		if s.skipContainer('[', ']') {
			return kindArray, nil, false
		}
	default:
		s.unexpected()
	}
	return kindInvalid, nil, false
}

// skipContainer validates and skips an object or array whose opening bracket is at s.pos.
func (s *jsonScanner) skipContainer(opener, closer byte) bool {
	if s.depth >= maxDepth {
		return s.fail("nesting too deep")
	}
	s.depth++
	s.pos++
	s.skipWS()
	if s.pos < len(s.buf) && s.buf[s.pos] == closer {
		s.pos++
		s.depth--
		return true
	}
	for {
		if opener == '{' {
			if s.pos >= len(s.buf) || s.buf[s.pos] != '"' {
				return s.unexpected()
			}
			if _, _, ok := s.scanString(); !ok {
				return false
			}
			s.skipWS()
			if s.pos >= len(s.buf) || s.buf[s.pos] != ':' {
				return s.unexpected()
			}
			s.pos++
			s.skipWS()
		}
		if k, _, _ := s.value(); k == kindInvalid {
			return false
		}
		if opener == '[' && s.depth == 1 {
			s.items++
			if s.maxItems > 0 && s.items > s.maxItems {
				s.tooMany = true
				return false
			}
		}
		s.skipWS()
		if s.pos >= len(s.buf) {
			return s.unexpected()
		}
		switch s.buf[s.pos] {
		case ',':
			s.pos++
			s.skipWS()
		case closer:
			s.pos++
			s.depth--
			return true
		default:
			return s.unexpected()
		}
	}
}

// unescape decodes the raw content of a validated string into dst. It stops before the first
// rune that does not fit, so a truncated result is still valid UTF-8, and reports whether it
// had to. Lone surrogates become U+FFFD, as encoding/json does.
func unescape(dst, raw []byte) (n int, truncated bool) {
	i := 0
	for i < len(raw) {
		c := raw[i]
		if c != '\\' {
			// Copy the run up to the next escape in one go.
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			run := raw[i:j]
			if n+len(run) > len(dst) {
				m := copy(dst[n:], run)
				// Back off to the start of a rune so no partial rune is kept.
				k := n + m
				if m < len(run) && !utf8.RuneStart(run[m]) {
					for k > n && !utf8.RuneStart(dst[k-1]) {
						k--
					}
					if k > n {
						k-- // drop the rune whose start byte we reached
					}
					clear(dst[k : n+m]) // leave no stray bytes past the length
				}
				return k, true
			}
			n += copy(dst[n:], run)
			i = j
			continue
		}
		var r rune
		switch raw[i+1] {
		case '"':
			r = '"'
		case '\\':
			r = '\\'
		case '/':
			r = '/'
		case 'b':
			r = '\b'
		case 'f':
			r = '\f'
		case 'n':
			r = '\n'
		case 'r':
			r = '\r'
		case 't':
			r = '\t'
		case 'u':
			r = hex4(raw[i+2:])
			i += 4
			if r >= 0xD800 && r < 0xE000 {
				r2 := rune(-1)
				if r < 0xDC00 && i+8 <= len(raw) && raw[i+2] == '\\' && raw[i+3] == 'u' {
					r2 = hex4(raw[i+4:])
				}
				if r2 >= 0xDC00 && r2 < 0xE000 {
					r = (r-0xD800)<<10 | (r2 - 0xDC00) + 0x10000
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
		}
		i += 2
		if n+utf8.RuneLen(r) > len(dst) {
			return n, true
		}
		n += utf8.EncodeRune(dst[n:], r)
	}
	return n, false
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r = r<<4 | rune(hexVal[c])
	}
	return r
}

// Bits of the fields already seen in one object, for duplicate detection.
const (
	seenAdID uint16 = 1 << iota
	seenTimestamp
	seenIP
	seenPlayback
	seenEventID
	seenViewer
	seenSession
	seenUA
	seenType
)

// stringField decodes a string value into a small stack buffer. ok is false when the value is
// not a string or does not fit (no field we read this way is longer than the buffer).
func stringField(buf []byte, kind valueKind, raw []byte, esc bool) ([]byte, bool) {
	if kind != kindString {
		return nil, false
	}
	if !esc {
		return raw, len(raw) <= len(buf)
	}
	n, trunc := unescape(buf, raw)
	return buf[:n], !trunc
}

// object decodes one object at s.pos into e. Syntax errors leave s.errMsg set and return nil;
// the caller checks s.errMsg first.
func (s *jsonScanner) object(w *acceptWindow, e *event.Event) *FieldError {
	if s.pos >= len(s.buf) || s.buf[s.pos] != '{' {
		s.unexpected()
		return nil
	}
	s.pos++
	s.depth = 1
	var (
		ferr     *FieldError
		seen     uint16
		haveTime bool
		keyBuf   [24]byte
		valBuf   [64]byte
	)
	s.skipWS()
	if s.pos < len(s.buf) && s.buf[s.pos] == '}' {
		s.pos++
		return w.finish(e, false, false)
	}
	for {
		if s.pos >= len(s.buf) || s.buf[s.pos] != '"' {
			s.unexpected()
			return nil
		}
		rawKey, esc, ok := s.scanString()
		if !ok {
			return nil
		}
		key := rawKey
		if esc {
			n, trunc := unescape(keyBuf[:], rawKey)
			key = keyBuf[:n]
			if trunc {
				key = nil // longer than any known key
			}
		}
		s.skipWS()
		if s.pos >= len(s.buf) || s.buf[s.pos] != ':' {
			s.unexpected()
			return nil
		}
		s.pos++
		s.skipWS()
		kind, raw, esc := s.value()
		if kind == kindInvalid {
			return nil
		}
		var bit uint16
		var err *FieldError
		absent := kind == kindNull || (kind == kindString && len(raw) == 0)
		switch string(key) {
		case "ad_id":
			bit = seenAdID
			st := adIDBad
			switch kind {
			case kindNumber:
				e.AdID, st = parseAdID(raw)
			case kindString:
				if v, ok := stringField(valBuf[:], kind, raw, esc); ok {
					e.AdID, st = parseAdID(v)
				}
			case kindNull:
				err = badField("ad_id", "ad_id is required")
				st = adIDOK
			}
			if st != adIDOK {
				err = adIDError("ad_id", st)
			}
		case "timestamp":
			bit = seenTimestamp
			if absent {
				break
			}
			v, ok := stringField(valBuf[:], kind, raw, esc)
			var t int64
			if ok {
				t, ok = parseTime(v, false)
			}
			if !ok {
				err = badField("timestamp", "timestamp must be an rfc 3339 string")
				break
			}
			if err = w.checkTime("timestamp", t); err == nil {
				e.EventTime = t
				haveTime = true
			}
		case "ip":
			bit = seenIP
			if absent {
				break
			}
			v, ok := stringField(valBuf[:], kind, raw, esc)
			if ok {
				e.IP, ok = event.ParseIP(v)
			}
			if !ok {
				err = badField("ip", "ip must be an ipv4 or ipv6 address")
			}
		case "video_playback_time":
			bit = seenPlayback
			if kind == kindNull {
				break
			}
			if kind != kindNumber {
				err = badField("video_playback_time", "video_playback_time must be a number")
				break
			}
			ms, st := secondsToMs(raw)
			err = w.setPlayback("video_playback_time", e, ms, st)
		case "event_id":
			bit = seenEventID
			if absent {
				break
			}
			v, ok := stringField(valBuf[:], kind, raw, esc)
			if !ok {
				err = badField("event_id", "event_id must be a uuid")
				break
			}
			err = setEventID("event_id", e, v)
		case "viewer_id":
			bit = seenViewer
			if absent {
				break
			}
			v, ok, msg := idField(e.Viewer[:], kind, raw, esc, "viewer_id")
			if msg != nil {
				err = msg
				break
			}
			if ok {
				e.ViewerLen = uint8(len(v))
			}
		case "session_id":
			bit = seenSession
			if absent {
				break
			}
			v, ok, msg := idField(e.Session[:], kind, raw, esc, "session_id")
			if msg != nil {
				err = msg
				break
			}
			if ok {
				e.SessionLen = uint8(len(v))
			}
		case "user_agent":
			bit = seenUA
			if absent {
				break
			}
			if kind != kindString {
				err = badField("user_agent", "user_agent must be a string")
				break
			}
			n, _ := unescape(e.UserAgent[:], raw)
			sanitizeUA(e.UserAgent[:n])
			e.UALen = uint16(n)
		case "type":
			bit = seenType
			if absent {
				break
			}
			v, ok := stringField(valBuf[:32], kind, raw, esc)
			if !ok {
				if kind != kindString {
					err = badField("type", "type must be a string")
				} else {
					err = badField("type", "type is not a known event type")
				}
				break
			}
			err = w.setType("type", e, v)
		}
		if bit != 0 {
			if seen&bit != 0 && err == nil {
				err = badField(string(key), string(key)+" appears more than once")
			}
			seen |= bit
		}
		if err != nil && ferr == nil {
			ferr = err
		}
		s.skipWS()
		if s.pos >= len(s.buf) {
			s.unexpected()
			return nil
		}
		switch s.buf[s.pos] {
		case ',':
			s.pos++
			s.skipWS()
		case '}':
			s.pos++
			if ferr != nil {
				return ferr
			}
			return w.finish(e, seen&seenAdID != 0, haveTime)
		default:
			s.unexpected()
			return nil
		}
	}
}

// idField copies a viewer or session id into dst (an Event array of MaxIDLen bytes).
func idField(dst []byte, kind valueKind, raw []byte, esc bool, field string) ([]byte, bool, *FieldError) {
	if kind != kindString {
		return nil, false, badField(field, field+" must be a string")
	}
	var n int
	if esc {
		var trunc bool
		n, trunc = unescape(dst, raw)
		if trunc {
			return nil, false, tooLongID(field)
		}
	} else {
		if len(raw) > len(dst) {
			return nil, false, tooLongID(field)
		}
		n = copy(dst, raw)
	}
	if err := checkID(field, dst[:n]); err != nil {
		return nil, false, err
	}
	return dst[:n], true, nil
}

// copyText copies src into dst as the JSON decoder leaves a decoded string: valid UTF-8 (an invalid byte becomes U+FFFD, as
// encoding/json writes it; a JSON body holding one is refused, a header cannot be), stopping before the first rune that does not
// fit. It returns the bytes written.
func copyText(dst, src []byte) int {
	n := 0
	for i := 0; i < len(src); {
		if c := src[i]; c < utf8.RuneSelf {
			if n == len(dst) {
				break
			}
			dst[n] = c
			n++
			i++
			continue
		}
		r, size := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && size == 1 {
			if n+3 > len(dst) {
				break
			}
			n += utf8.EncodeRune(dst[n:], utf8.RuneError)
			i++
			continue
		}
		if n+size > len(dst) {
			break
		}
		n += copy(dst[n:], src[i:i+size])
		i += size
	}
	return n
}

// sanitizeUA blanks control characters: user agents are shown in dashboards and logs, where a
// raw newline or escape sequence does harm and carries no information.
func sanitizeUA(b []byte) {
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = ' '
		}
	}
}

// document decodes a whole JSON text holding one object.
func (d *Decoder) document(s *jsonScanner, w *acceptWindow, e *event.Event) *FieldError {
	s.skipWS()
	if s.pos >= len(s.buf) {
		return badField("body", "body is empty")
	}
	if s.buf[s.pos] != '{' {
		// Tell a wrong shape from broken JSON: a valid array or number gets the plainer message.
		s.value()
		s.skipWS()
		if s.errMsg != "" || s.pos != len(s.buf) {
			if s.errMsg == "" {
				s.unexpected()
			}
			return s.syntaxError()
		}
		return errNotObject
	}
	ferr := s.object(w, e)
	if s.errMsg != "" {
		return s.syntaxError()
	}
	s.skipWS()
	if s.pos != len(s.buf) {
		s.fail("unexpected data after the object")
		return s.syntaxError()
	}
	return ferr
}

// DecodeJSON decodes one JSON object into e, which the caller has Reset (and may have given the request's receive time: see
// Decoder). typ is the route's type, or TypeUnknown when the object must name it in "type"; when both are given they must
// agree. Fields: ad_id (required), timestamp (RFC 3339, absent = now), ip (absent = left zero for the handler to fill from the
// peer), video_playback_time (seconds, rounded to ms), event_id (UUID, marks the event retryable), viewer_id and session_id
// (printable ASCII, <= 64 bytes), user_agent (truncated to 256 bytes on a rune boundary), type. Unknown keys are skipped. See
// the comment at the top of this file for the edge cases.
func (d *Decoder) DecodeJSON(body []byte, typ event.Type, e *event.Event) *FieldError {
	w := d.windowFor(typ, e.ReceiveTime)
	s := jsonScanner{buf: body, pos: bomLen(body)}
	return d.document(&s, &w, e)
}

// utf8BOM is the byte order mark a body may start with (RFC 8259 §8.1 lets a parser ignore it).
const utf8BOM = "\xef\xbb\xbf"

// bomLen is the length of the byte order mark body starts with: 3 or 0.
func bomLen(body []byte) int {
	if len(body) >= 3 && string(body[:3]) == utf8BOM {
		return 3
	}
	return 0
}

// StartsWithObject reports whether body, after a byte order mark and JSON whitespace, starts with '{': an NDJSON batch (or a
// single object), where a JSON array starts with '['. The handler uses it for batches whose Content-Type does not say.
func StartsWithObject(body []byte) bool {
	for _, c := range body[bomLen(body):] {
		switch c {
		case ' ', '\t', '\r', '\n':
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}

// DecodeBatch decodes a JSON array of objects (ndjson false) or one object per line (ndjson
// true; CRLF accepted, blank lines skipped) and calls fn for each item in order: i counts
// items (blank lines are not items, so an array and the same events as NDJSON number alike),
// and either e (reset and decoded, valid only during the call) or err is non-nil. Each item
// must carry "type".
//
// A batch of more than Limits.MaxBatchItems items is refused whole (413, field "body") before
// fn is first called: the items are counted before any is decoded, so a client never sees part
// of an oversized batch accepted. An array is also checked whole before fn is first called, so
// a body whose framing is broken is rejected (top-level error, field "body") without any item
// having been accepted; an item that is valid JSON but not an object is a per-item error. In
// NDJSON every line stands alone, so a malformed line is that item's error and never a
// top-level one.
//
// Items from index MaxItemErrors on get terse shared errors when they are not JSON objects or
// not JSON at all (the handler lists only the first ones), so a body of such junk allocates
// nothing per item; a well-formed object with a bad field still gets its own short-lived
// error. Nothing is kept per item: a request's memory is the body (http.max_body_bytes) and
// e, whatever its item count.
func (d *Decoder) DecodeBatch(body []byte, ndjson bool, e *event.Event, fn func(i int, e *event.Event, err *FieldError)) *FieldError {
	_, top := d.DecodeBatchWhile(body, ndjson, e, func(i int, e *event.Event, err *FieldError) bool {
		fn(i, e, err)
		return true
	})
	return top
}

// DecodeBatchWhile is DecodeBatch that stops when fn returns false: the items after that one are not decoded. It returns the
// batch's item count, known before the first call (the count that refuses an oversized batch), so a caller that stops early
// still knows how many it left. The handler stops at the first item the queue refuses: a refused batch costs its framing check
// and one item's decoding instead of every item's (under overload most batches end that way).
func (d *Decoder) DecodeBatchWhile(body []byte, ndjson bool, e *event.Event, fn func(i int, e *event.Event, err *FieldError) bool) (int, *FieldError) {
	w := d.windowFor(event.TypeUnknown, e.ReceiveTime)
	maxItems := d.Limits.MaxBatchItems
	if maxItems <= 0 {
		maxItems = DefaultLimits().MaxBatchItems
	}
	if ndjson {
		body = body[bomLen(body):] // NDJSON errors are per line, with offsets within the line
		n := countLines(body, maxItems+1)
		if n > maxItems {
			return n, tooManyItems(maxItems)
		}
		d.lines(body, &w, e, fn)
		return n, nil
	}
	s := jsonScanner{buf: body, pos: bomLen(body), maxItems: maxItems}
	s.skipWS()
	if s.pos >= len(s.buf) {
		return 0, badField("body", "body is empty")
	}
	if s.buf[s.pos] != '[' {
		return 0, badField("body", "body must be a json array")
	}
	start := s.pos
	if !s.skipContainer('[', ']') {
		if s.tooMany {
			return s.items, tooManyItems(maxItems)
		}
		return 0, s.syntaxError()
	}
	s.skipWS()
	if s.pos != len(s.buf) {
		s.fail("unexpected data after the array")
		return 0, s.syntaxError()
	}
	n := s.items
	s.pos = start + 1
	for i := 0; ; i++ {
		s.skipWS()
		if s.buf[s.pos] == ']' {
			return n, nil
		}
		e.Reset()
		s.quiet = i >= MaxItemErrors
		var err *FieldError
		if s.buf[s.pos] == '{' {
			err = s.object(&w, e)
		} else {
			s.depth = 1
			s.value()
			err = errItemNotObject
		}
		if s.errMsg != "" {
			// Unreachable after the check above; kept so a scanner bug cannot loop or misreport.
			s.quiet = false
			return n, s.syntaxError()
		}
		var more bool
		if err != nil {
			more = fn(i, nil, err)
		} else {
			more = fn(i, e, nil)
		}
		if !more {
			return n, nil
		}
		s.skipWS()
		if s.buf[s.pos] == ',' {
			s.pos++
		}
	}
}

// tooManyItems is the 413 of a batch over Limits.MaxBatchItems; it allocates, but only once per refused request.
func tooManyItems(limit int) *FieldError {
	return &FieldError{Status: 413, Field: "body",
		Msg: "batch has more than " + strconv.Itoa(limit) + " events (ingest.max_batch_items); split it"}
}

// countLines counts the non-blank lines of an NDJSON body, stopping at stop.
func countLines(body []byte, stop int) int {
	n := 0
	for len(body) > 0 && n < stop {
		line := body
		if k := bytes.IndexByte(body, '\n'); k >= 0 {
			line, body = body[:k], body[k+1:]
		} else {
			body = nil
		}
		if !blankLine(line) {
			n++
		}
	}
	return n
}

func blankLine(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

func (d *Decoder) lines(body []byte, w *acceptWindow, e *event.Event, fn func(i int, e *event.Event, err *FieldError) bool) {
	i := 0
	for len(body) > 0 {
		line := body
		next := len(body)
		if k := bytes.IndexByte(body, '\n'); k >= 0 {
			line, next = body[:k], k+1
		}
		body = body[next:]
		if blankLine(line) {
			continue
		}
		e.Reset()
		s := jsonScanner{buf: line, quiet: i >= MaxItemErrors}
		var more bool
		if err := d.document(&s, w, e); err != nil {
			more = fn(i, nil, err)
		} else {
			more = fn(i, e, nil)
		}
		if !more {
			return
		}
		i++
	}
}
