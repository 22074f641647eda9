package event

import (
	"bytes"
	"net/netip"
	"unsafe"
)

// ParseIP parses an IPv4 or IPv6 textual address into the form Event.IP stores (IPv4 as IPv4-mapped IPv6) without allocating
// when it succeeds. It accepts what net/netip does, except zones ("fe80::1%eth0"), which mean nothing off the host.
//
// The text is handed to netip as a string that aliases b: netip keeps its argument in its error, so a converted copy would be
// allocated for every call. The error is dropped here, so nothing outlives the call, but escape analysis cannot see that: b counts
// as escaping, and a caller's stack buffer passed here moves to the heap. Pass request memory (the body, a header) instead.
func ParseIP(b []byte) ([16]byte, bool) {
	if len(b) == 0 || bytes.IndexByte(b, '%') >= 0 {
		return [16]byte{}, false
	}
	a, err := netip.ParseAddr(unsafe.String(&b[0], len(b))) //nolint:gosec // G103: the string aliases b for this call only (see above)
	if err != nil {
		return [16]byte{}, false
	}
	return a.As16(), true
}
