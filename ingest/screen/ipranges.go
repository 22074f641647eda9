package screen

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/adtracker/adtracker/internal/httpx"
)

// ipRanges is a deny list as sorted, merged, disjoint address ranges over the 16-byte form events store (IPv4 mapped into
// ::ffff:0:0/96), so a lookup is a binary search however many networks the list holds (data-centre lists run to thousands).
type ipRanges struct {
	lo, hi []u128
}

type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func (a u128) next() (u128, bool) {
	if a.lo != ^uint64(0) {
		return u128{a.hi, a.lo + 1}, true
	}
	if a.hi != ^uint64(0) {
		return u128{a.hi + 1, 0}, true
	}
	return a, false
}

func load128(b [16]byte) u128 {
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// hostMask returns the mask of the host bits of a prefix of bits (0..128).
func hostMask(bits int) u128 {
	switch {
	case bits >= 128:
		return u128{}
	case bits >= 64:
		return u128{0, ^uint64(0) >> (bits - 64)}
	default:
		return u128{^uint64(0) >> bits, ^uint64(0)}
	}
}

func newIPRanges(nets httpx.CIDRs) ipRanges {
	type span struct{ lo, hi u128 }
	spans := make([]span, 0, len(nets))
	for _, p := range nets {
		a, bits := p.Addr(), p.Bits()
		if a.Is4() {
			bits += 96 // the IPv4-mapped form
		}
		lo := load128(netip.AddrFrom16(a.As16()).As16())
		m := hostMask(bits)
		lo = u128{lo.hi &^ m.hi, lo.lo &^ m.lo}
		spans = append(spans, span{lo, u128{lo.hi | m.hi, lo.lo | m.lo}})
	}
	slices.SortFunc(spans, func(a, b span) int {
		switch {
		case a.lo.less(b.lo):
			return -1
		case b.lo.less(a.lo):
			return 1
		}
		return 0
	})
	var r ipRanges
	for _, s := range spans {
		if n := len(r.hi); n > 0 {
			// Overlapping or adjacent to the last range: extend it.
			if after, ok := r.hi[n-1].next(); !ok || !after.less(s.lo) {
				if r.hi[n-1].less(s.hi) {
					r.hi[n-1] = s.hi
				}
				continue
			}
		}
		r.lo, r.hi = append(r.lo, s.lo), append(r.hi, s.hi)
	}
	return r
}

// contains reports whether ip (16 bytes, IPv4 mapped) is in a range. No allocation.
func (r *ipRanges) contains(ip [16]byte) bool {
	if len(r.lo) == 0 {
		return false
	}
	x := load128(ip)
	// The last range starting at or before x.
	i, j := 0, len(r.lo)
	for i < j {
		m := int(uint(i+j) >> 1)
		if x.less(r.lo[m]) {
			j = m
		} else {
			i = m + 1
		}
	}
	return i > 0 && !r.hi[i-1].less(x)
}
