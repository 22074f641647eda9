package decode

import (
	"encoding/binary"
	"math"

	"github.com/adtracker/adtracker/ingest/event"
)

// maxAdID keeps ad ids inside Postgres bigint, where the ads table keeps them.
const maxAdID = math.MaxInt64

type adIDStatus uint8

const (
	adIDOK adIDStatus = iota
	adIDBad
	adIDTooLarge
)

// parseAdID accepts a positive decimal integer without sign, leading zeros or exponent; the
// same rule serves JSON numbers, JSON strings and pixel parameters.
func parseAdID(b []byte) (uint64, adIDStatus) {
	if len(b) == 0 || b[0] == '0' {
		return 0, adIDBad
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, adIDBad
		}
		if v > (maxAdID-uint64(c-'0'))/10 {
			// Keep reading: "99999999999999999999x" is malformed, not merely large.
			for _, c := range b {
				if c < '0' || c > '9' {
					return 0, adIDBad
				}
			}
			return 0, adIDTooLarge
		}
		v = v*10 + uint64(c-'0')
	}
	return v, adIDOK
}

func adIDError(field string, st adIDStatus) *FieldError {
	if st == adIDTooLarge {
		return badField(field, field+" is too large")
	}
	return badField(field, field+" must be a positive integer")
}

// printableASCII reports whether b is visible ASCII (no space, control or non-ASCII byte): ids
// end up in URLs, logs and CSV exports, where anything else causes trouble.
func printableASCII(b []byte) bool {
	for len(b) >= 8 {
		if idStops(load64(b)) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// isMacro reports an unexpanded VAST macro such as "[TIMESTAMP]": the player did not know the
// value, which is not the event's fault.
func isMacro(b []byte) bool {
	return len(b) >= 2 && b[0] == '[' && b[len(b)-1] == ']'
}

// parseTime reads an event time into unix seconds (the fraction is dropped: ClickHouse DateTime
// has second precision). Strict mode is RFC 3339 as JSON SDKs send it:
//
//	2006-01-02T15:04:05[.frac](Z|±hh:mm)
//
// Lenient mode also takes what VAST players expand [TIMESTAMP] to, whose spec example is
// "2016-01-17T8:15:07.127-05": a one-digit hour, 't' or ' ' for 'T', ',' for '.', a lowercase
// 'z', an offset of ±hh, ±hhmm or ±hh:mm, a space for '+' (an unencoded '+' in a query string
// decodes to a space), and no zone at all, read as UTC.
//
// time.Parse does not allocate for RFC 3339 on Go 1.26 either, but it cannot read the VAST
// forms, and one parser for both keeps the two paths agreeing.
func parseTime(b []byte, lenient bool) (int64, bool) {
	if len(b) < len("2006-01-02T1:04:05") {
		return 0, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	if !ok1 || !ok2 || !ok3 || b[4] != '-' || b[7] != '-' {
		return 0, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) {
		return 0, false
	}
	switch b[10] {
	case 'T':
	case 't', ' ':
		if !lenient {
			return 0, false
		}
	default:
		return 0, false
	}
	p := 11
	hourLen := 2
	if lenient && b[p+1] == ':' {
		hourLen = 1
	}
	if len(b) < p+hourLen+6 {
		return 0, false
	}
	hour, ok1 := digits(b[p : p+hourLen])
	p += hourLen
	if !ok1 || b[p] != ':' || b[p+3] != ':' {
		return 0, false
	}
	minute, ok2 := digits(b[p+1 : p+3])
	sec, ok3 := digits(b[p+4 : p+6])
	if !ok2 || !ok3 || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	p += 6
	if p < len(b) && (b[p] == '.' || (lenient && b[p] == ',')) {
		p++
		start := p
		for p < len(b) && b[p] >= '0' && b[p] <= '9' {
			p++
		}
		if p == start {
			return 0, false
		}
	}
	off, ok := parseZone(b[p:], lenient)
	if !ok {
		return 0, false
	}
	return daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec) - off, true
}

// parseZone reads the zone suffix of a time into seconds east of UTC.
func parseZone(z []byte, lenient bool) (int64, bool) {
	if len(z) == 0 {
		return 0, lenient
	}
	if len(z) == 1 && (z[0] == 'Z' || (lenient && z[0] == 'z')) {
		return 0, true
	}
	sign := int64(1)
	switch z[0] {
	case '+':
	case '-':
		sign = -1
	case ' ':
		if !lenient {
			return 0, false
		}
	default:
		return 0, false
	}
	z = z[1:]
	var hh, mm int
	var ok1, ok2 bool
	switch {
	case len(z) == 5 && z[2] == ':':
		hh, ok1 = digits(z[0:2])
		mm, ok2 = digits(z[3:5])
	case lenient && len(z) == 4:
		hh, ok1 = digits(z[0:2])
		mm, ok2 = digits(z[2:4])
	case lenient && len(z) == 2:
		hh, ok1 = digits(z)
		ok2 = true
	default:
		return 0, false
	}
	if !ok1 || !ok2 || hh > 23 || mm > 59 {
		return 0, false
	}
	return sign * int64(hh*3600+mm*60), true
}

// digits parses a short run of ASCII digits.
func digits(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil counts days from 1970-01-01 in the proleptic Gregorian calendar
// (H. Hinnant's algorithm), so no time.Time or location is needed.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// parseUnixTime reads a pixel "t" given as epoch digits: up to 11 digits are seconds, 12 or 13
// are milliseconds (some players expand [TIMESTAMP] as Date.now()); the two ranges cannot be
// confused before the year 5138.
func parseUnixTime(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 13 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if len(b) > 11 {
		v /= 1000
	}
	return v, true
}

type numStatus uint8

const (
	numOK numStatus = iota
	numBad
	numNegative
	numTooLarge
)

// maxMs bounds intermediate values far above any playback limit, so overflow cannot happen.
const maxMs = 1 << 50

// secondsToMs converts a decimal number of seconds (JSON number grammar, already validated by
// the caller, or the pixel's digits[.digits]) to milliseconds rounded half up. It works on the
// decimal digits themselves rather than a float64 so 0.0125 s is 13 ms, not 12.
func secondsToMs(b []byte) (uint64, numStatus) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	// Split into mantissa digits and a decimal exponent.
	mant := b
	var exp int
	for i, c := range b {
		if c == 'e' || c == 'E' {
			mant = b[:i]
			e, ok := parseExp(b[i+1:])
			if !ok {
				return 0, numBad
			}
			exp = e
			break
		}
	}
	point := -1 // digits before the decimal point
	nd := 0
	for _, c := range mant {
		if c == '.' {
			if point >= 0 {
				return 0, numBad
			}
			point = nd
			continue
		}
		if c < '0' || c > '9' {
			return 0, numBad
		}
		nd++
	}
	if nd == 0 {
		return 0, numBad
	}
	if point < 0 {
		point = nd
	}
	// Digit k (0-based, the point skipped) has weight 10^(point-1-k+exp) s, so the first
	// msDigits digits are at or above the millisecond place and digit msDigits rounds.
	msDigits := point + exp + 3
	var ms uint64
	nonzero := false
	k := 0
	for _, c := range mant {
		if c == '.' {
			continue
		}
		d := uint64(c - '0')
		if d != 0 {
			nonzero = true
		}
		if k < msDigits {
			if ms > maxMs/10 {
				if neg {
					return 0, numNegative
				}
				return 0, numTooLarge
			}
			ms = ms*10 + d
		} else if k == msDigits && d >= 5 {
			ms++
		}
		k++
	}
	if neg && nonzero {
		return 0, numNegative
	}
	// Positions between the last digit and the millisecond place are zeros.
	for ; k < msDigits && ms != 0; k++ {
		if ms > maxMs/10 {
			return 0, numTooLarge
		}
		ms *= 10
	}
	return ms, numOK
}

// parseExp reads a JSON exponent ([+-]digits), clamping huge values: anything past ±1000 is
// as good as infinite or zero here.
func parseExp(b []byte) (int, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if v < 100000 {
			v = v*10 + int(c-'0')
		}
	}
	if v > 1000 {
		v = 1000
	}
	if neg {
		v = -v
	}
	return v, true
}

// parsePlayhead reads the VAST playhead form HH:MM:SS[.mmm] ([ADPLAYHEAD], [CONTENTPLAYHEAD],
// [MEDIAPLAYHEAD]) into milliseconds. Hours may have any number of digits.
func parsePlayhead(b []byte) (uint64, bool) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 || i > 5 || len(b) < i+6 || b[i] != ':' || b[i+3] != ':' {
		return 0, false
	}
	h, _ := digits(b[:i])
	m, ok1 := digits(b[i+1 : i+3])
	s, ok2 := digits(b[i+4 : i+6])
	if !ok1 || !ok2 || m > 59 || s > 59 {
		return 0, false
	}
	ms := uint64(h*3600+m*60+s) * 1000
	rest := b[i+6:]
	if len(rest) == 0 {
		return ms, true
	}
	if rest[0] != '.' || len(rest) == 1 {
		return 0, false
	}
	// Fraction: milliseconds from the first three digits, rounded on the fourth.
	var frac uint64
	for k, c := range rest[1:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		switch {
		case k < 3:
			frac = frac*10 + uint64(c-'0')
		case k == 3 && c >= '5':
			frac++
		}
	}
	for k := len(rest) - 1; k < 3; k++ {
		frac *= 10
	}
	return ms + frac, true
}

// SetUserAgent stores ua (a User-Agent header) in e cleaned exactly as the JSON user_agent field is: valid UTF-8 cut on a rune
// boundary, control characters blanked.
//
// Every event without its own user_agent takes the header's, so the common case is fast: eight bytes at a time while they are
// printable ASCII (nothing to clean, each a whole rune), then the byte-wise rule for the rest.
func SetUserAgent(e *event.Event, ua []byte) {
	dst := e.UserAgent[:]
	i := 0
	for ; i+8 <= len(ua) && i+8 <= len(dst); i += 8 {
		w := binary.LittleEndian.Uint64(ua[i:])
		if !printable8(w) {
			break
		}
		binary.LittleEndian.PutUint64(dst[i:], w)
	}
	n := i + copyText(dst[i:], ua[i:])
	sanitizeUA(dst[i:n])
	e.UALen = uint16(n)
}

// printable8 reports whether all eight bytes of w are printable ASCII (0x20–0x7e), by the word-at-a-time tests of "Bit
// Twiddling Hacks": no high bit, no byte below 0x20 (hasless), no byte equal to 0x7f (haszero of w^0x7f…).
func printable8(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	del := w ^ 0x7f*ones
	return w&highs == 0 && (w-0x20*ones)&^w&highs == 0 && (del-ones)&^del&highs == 0
}

// ValidID reports whether b may be stored as a viewer or session id as it stands: 1 to MaxIDLen printable ASCII bytes.
func ValidID(b []byte) bool { return len(b) > 0 && len(b) <= event.MaxIDLen && printableASCII(b) }

// ParseAdID reads an ad id by the decoders' rule: a positive decimal integer without sign or leading zeros.
func ParseAdID(b []byte) (uint64, bool) {
	id, st := parseAdID(b)
	return id, st == adIDOK
}
