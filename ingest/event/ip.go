package event

// ParseIP parses an IPv4 or IPv6 textual address into 16 bytes (IPv4 as IPv4-mapped IPv6)
// without allocating. It accepts what net/netip does, except zones ("fe80::1%eth0"), which mean
// nothing off the host. It is hand-written, and checked against netip by TestParseIPMatchesNetip
// and FuzzParseIP: netip.ParseAddr keeps its argument in its error, which makes any buffer passed
// to it escape to the heap, and wrapping it (aliasing the bytes, refusing zones) made
// BenchmarkDecodeJSON about 10 % slower (BENCHMARKS.md, "Layout split").
func ParseIP(b []byte) ([16]byte, bool) {
	for _, c := range b {
		if c == ':' {
			return parseIPv6(b)
		}
	}
	v4, ok := parseIPv4(b)
	if !ok {
		return [16]byte{}, false
	}
	return [16]byte{10: 0xff, 11: 0xff, 12: v4[0], 13: v4[1], 14: v4[2], 15: v4[3]}, true
}

// parseIPv4 reads a dotted quad; like netip it refuses leading zeros, which some parsers read
// as octal.
func parseIPv4(s []byte) ([4]byte, bool) {
	var out [4]byte
	val, pos, ndig := 0, 0, 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			if ndig == 1 && val == 0 {
				return out, false
			}
			val = val*10 + int(c-'0')
			ndig++
			if val > 255 {
				return out, false
			}
		case c == '.':
			if ndig == 0 || pos == 3 {
				return out, false
			}
			out[pos] = byte(val)
			pos++
			val, ndig = 0, 0
		default:
			return out, false
		}
	}
	if pos != 3 || ndig == 0 {
		return out, false
	}
	out[3] = byte(val)
	return out, true
}

// parseIPv6 follows net/netip's parser: hex groups of 1-4 digits, at most one "::" standing for
// at least one zero group, and an optional dotted quad in the last 32 bits.
func parseIPv6(s []byte) ([16]byte, bool) {
	var ip [16]byte
	ellipsis := -1 // byte index in ip where "::" was
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis = 0
		s = s[2:]
		if len(s) == 0 {
			return ip, true
		}
	}
	n := 0
	for n < 16 {
		off, acc := 0, 0
		for ; off < len(s); off++ {
			v, ok := unhex(s[off])
			if !ok {
				break
			}
			if off == 4 {
				return ip, false
			}
			acc = acc<<4 | int(v)
		}
		if off == 0 {
			return ip, false
		}
		if off < len(s) && s[off] == '.' {
			if (ellipsis < 0 && n != 12) || n+4 > 16 {
				return ip, false
			}
			v4, ok := parseIPv4(s)
			if !ok {
				return ip, false
			}
			copy(ip[n:], v4[:])
			n += 4
			s = nil
			break
		}
		ip[n], ip[n+1] = byte(acc>>8), byte(acc) //nolint:gosec // G602: n is even and below 16, so n+1 ≤ 15
		n += 2
		s = s[off:]
		if len(s) == 0 {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return ip, false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis >= 0 {
				return ip, false
			}
			ellipsis = n
			s = s[1:]
			if len(s) == 0 {
				break
			}
		}
	}
	if len(s) != 0 {
		return ip, false
	}
	if n < 16 {
		if ellipsis < 0 {
			return ip, false
		}
		gap := 16 - n
		copy(ip[ellipsis+gap:], ip[ellipsis:n])
		clear(ip[ellipsis : ellipsis+gap])
	} else if ellipsis >= 0 {
		return ip, false // "::" must stand for at least one group
	}
	return ip, true
}

// unhex is the value of a hex digit (hexValue, which ParseUUID reads too).
func unhex(c byte) (byte, bool) {
	v := hexValue[c]
	return v, v != 0xff
}
