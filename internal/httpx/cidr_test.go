package httpx

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseCIDRs(t *testing.T) {
	nets, err := ParseCIDRs("some.key", []string{" 10.0.0.0/8 ", "", "192.0.2.7", "::ffff:198.51.100.1", "2001:db8::/32", "203.0.113.9/24"})
	if err != nil {
		t.Fatal(err)
	}
	f := func(addr string, want bool) {
		t.Helper()
		if got := nets.Contains(netip.MustParseAddr(addr).As16()); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
	f("10.1.2.3", true)
	f("192.0.2.7", true)
	f("192.0.2.8", false)
	f("198.51.100.1", true) // an IPv4-mapped entry means the IPv4 address
	f("2001:db8::1", true)
	f("2001:db9::1", false)
	f("203.0.113.200", true) // host bits of a prefix are masked
	f("11.0.0.1", false)
	for _, bad := range []string{"10.0.0.0/33", "not-an-ip", "fe80::1%eth0/64", "1.2.3"} {
		_, err := ParseCIDRs("some.key", []string{bad})
		if err == nil || !strings.HasPrefix(err.Error(), "some.key: ") || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: error %v, want one naming the key and the entry", bad, err)
		}
	}
	var none CIDRs
	if none.Contains(netip.MustParseAddr("10.0.0.1").As16()) {
		t.Error("an empty list contains nothing")
	}
}
