package event

// ParseIP parses an IPv4 or IPv6 textual address into 16 bytes (IPv4 as IPv4-mapped IPv6)
// without allocating. It accepts what net/netip does, except zones ("fe80::1%eth0"), which mean
// nothing off the host. It is hand-written, and checked against netip by TestParseIPMatchesNetip
// and FuzzParseIP: netip.ParseAddr keeps its argument in its error, which makes any buffer passed
// to it escape to the heap, and wrapping it (aliasing the bytes, refusing zones) made
// BenchmarkDecodeJSON about 10 % slower (BENCHMARKS.md, "Layout split").
func ParseIP(b []byte) ([16]byte, bool) {
	// IPv4 first: nearly every client sends it, and a text with a colon fails parseIPv4 within its first five bytes.
	if v4, ok := parseIPv4(b); ok {
		return [16]byte{10: 0xff, 11: 0xff, 12: v4[0], 13: v4[1], 14: v4[2], 15: v4[3]}, true
	}
	for _, c := range b {
		if c == ':' {
			return parseIPv6(b)
		}
	}
	return [16]byte{}, false
}

// parseIPv4 reads a dotted quad; like netip it refuses leading zeros, which some parsers read
// as octal. It reads octet by octet (a digit, then up to two more unless the first was 0): far
// fewer branches per byte than a loop over one switch, which showed in batch profiles.
func parseIPv4(s []byte) (out [4]byte, ok bool) {
	i := 0
	for k := range out {
		if k > 0 {
			if i >= len(s) || s[i] != '.' {
				return out, false
			}
			i++
		}
		if i >= len(s) {
			return out, false
		}
		d := s[i] - '0'
		if d > 9 {
			return out, false
		}
		i++
		v := uint(d)
		if d != 0 { // a leading 0 stands alone: whatever follows must be a dot or the end
			for n := 1; n < 3 && i < len(s); n++ {
				d = s[i] - '0'
				if d > 9 {
					break
				}
				v = v*10 + uint(d)
				i++
			}
			if v > 255 {
				return out, false
			}
		}
		out[k] = byte(v)
	}
	return out, i == len(s)
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
