package decode

// queryScanner walks a raw query string's parameters as fasthttp's Args would parse them — split on '&', a key up to the first
// '=', '+' and %XX decoded, parameters with neither key nor value skipped — without copying them into an Args first: a key or
// value that holds nothing to decode is a slice of the query itself, and only one that does is decoded, into buf. A pixel's
// parameters are plain digits and ids, with at most a time's %3A, so the walk copies little and allocates nothing.
//
// Every key and value returned stays valid while the query and the scanner do: decoded ones take the next free bytes of buf
// (or, past its end, memory of their own), never reused. A scanner is used through a pointer and lives on its caller's stack.
type queryScanner struct {
	rest []byte
	used int // bytes of buf taken
	buf  [512]byte
}

// querySpecial marks the bytes the scan stops at.
var querySpecial = [256]bool{'&': true, '=': true, '%': true, '+': true}

// next returns the next parameter; ok is false at the end. One pass over the parameter finds its end, its '=' and whether its
// key or value needs decoding.
func (s *queryScanner) next() (key, value []byte, ok bool) {
	for len(s.rest) > 0 {
		b := s.rest
		eq, end := -1, len(b)
		var keyEnc, valEnc bool
	scan:
		for i := 0; i < len(b); i++ {
			if !querySpecial[b[i]] { // most bytes: one load and test
				continue
			}
			switch b[i] {
			case '&':
				end = i
				break scan
			case '=':
				if eq < 0 {
					eq = i
				}
			default: // '%', '+'
				if eq < 0 {
					keyEnc = true
				} else {
					valEnc = true
				}
			}
		}
		s.rest = s.rest[min(end+1, len(b)):]
		key, value = b[:end], b[end:end]
		if eq >= 0 {
			key, value = b[:eq], b[eq+1:end]
		}
		if len(key) == 0 && len(value) == 0 {
			continue // "&&" or "=": neither key nor value
		}
		if keyEnc {
			key = s.decoded(key)
		}
		if valEnc {
			value = s.decoded(value)
		}
		return key, value, true
	}
	return nil, nil, false
}

// decoded returns b with '+' read as a space and %XX as its byte. A '%' not followed by two hex digits stays as it is, and so
// does everything from a '%' that has fewer than two bytes after it (fasthttp's rule, '+' included). Decoding never
// lengthens, so len(b) bytes of buf are enough.
func (s *queryScanner) decoded(b []byte) []byte {
	var d []byte
	inBuf := len(b) <= len(s.buf)-s.used
	if inBuf {
		d = s.buf[s.used : s.used+len(b)]
	} else {
		d = make([]byte, len(b)) // a long encoded value: rare, and bounded by the request line
	}
	n := 0
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '%':
			if i+2 >= len(b) {
				n += copy(d[n:], b[i:])
				i = len(b)
				continue
			}
			if hi, lo := hexVal[b[i+1]], hexVal[b[i+2]]; hi == 0xff || lo == 0xff {
				d[n] = '%'
			} else {
				d[n] = hi<<4 | lo
				i += 2
			}
		case '+':
			d[n] = ' '
		default:
			d[n] = c
		}
		n++
	}
	if inBuf {
		s.used += n
	}
	return d[:n]
}
