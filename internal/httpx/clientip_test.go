package httpx

import (
	"net"
	"net/netip"
	"testing"

	"github.com/valyala/fasthttp"
)

// xffCtx is a request from peer carrying one X-Forwarded-For header line per element of lines, in order.
func xffCtx(peer string, lines ...string) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/ads/impression")
	for _, l := range lines {
		req.Header.Add("X-Forwarded-For", l)
	}
	ctx := new(fasthttp.RequestCtx)
	ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP(peer), Port: 5555}, nil)
	return ctx
}

func TestClientIPEveryForwardedLine(t *testing.T) {
	p, err := ParseProxies([]string{"192.0.2.0/24", "10.0.0.0/8", "2001:db8:ffff::/48"})
	if err != nil {
		t.Fatal(err)
	}
	f := func(peer string, lines []string, want string) {
		t.Helper()
		got := netip.AddrFrom16(p.ClientIP(xffCtx(peer, lines...))).Unmap()
		if got != netip.MustParseAddr(want) {
			t.Errorf("peer %s, X-Forwarded-For %q: client %s, want %s", peer, lines, got, want)
		}
	}
	type l = []string
	// The proxy appends its own line after the client's: the forged first line never wins.
	f("192.0.2.10", l{"6.6.6.6", "203.0.113.77"}, "203.0.113.77")
	f("192.0.2.10", l{"6.6.6.6, 7.7.7.7", "203.0.113.77"}, "203.0.113.77")
	// Chained trusted proxies across lines and inside comma lists are skipped.
	f("192.0.2.10", l{"6.6.6.6", "203.0.113.77, 10.1.2.3"}, "203.0.113.77")
	f("192.0.2.10", l{"6.6.6.6, 203.0.113.77", "10.1.2.3"}, "203.0.113.77")
	f("192.0.2.10", l{"203.0.113.77", "10.9.9.9", "10.1.2.3"}, "203.0.113.77")
	// Only trusted hops: the left-most of them (the client is one of our own proxies).
	f("192.0.2.10", l{"10.1.1.1, 10.2.2.2"}, "10.1.1.1")
	// IPv6 bare, bracketed, with a port; IPv4 with a port; spaces and tabs.
	f("192.0.2.10", l{"2001:db8::7"}, "2001:db8::7")
	f("192.0.2.10", l{"[2001:db8::7]:4711"}, "2001:db8::7")
	f("192.0.2.10", l{"[2001:db8::7]"}, "2001:db8::7")
	f("192.0.2.10", l{" 203.0.113.9:80 ,\t10.0.0.1 "}, "203.0.113.9")
	f("2001:db8:ffff::1", l{"6.6.6.6", "2001:db8:ffff::2, 2001:db8::8"}, "2001:db8::8")
	// Garbage stops the walk at the last hop a trusted proxy vouched for.
	f("192.0.2.10", l{"garbage"}, "192.0.2.10")
	f("192.0.2.10", l{"203.0.113.9", "unknown, 10.1.2.3"}, "10.1.2.3")
	f("192.0.2.10", l{"203.0.113.9,,10.1.2.3"}, "10.1.2.3")
	f("192.0.2.10", l{"203.0.113.9", ""}, "192.0.2.10")
	f("192.0.2.10", l{"fe80::1%eth0"}, "192.0.2.10")
	f("192.0.2.10", l{"[203.0.113.9]"}, "192.0.2.10")
	f("192.0.2.10", l{"203.0.113.9:http"}, "192.0.2.10")
	f("192.0.2.10", l{"[2001:db8::7]:123456"}, "192.0.2.10")
	// An untrusted peer's lines are never read.
	f("198.51.100.1", l{"203.0.113.9", "10.1.2.3"}, "198.51.100.1")
	// No header at all.
	f("192.0.2.10", nil, "192.0.2.10")
}

func TestClientIPAllocs(t *testing.T) {
	p, _ := ParseProxies([]string{"192.0.2.0/24", "10.0.0.0/8"})
	ctx := xffCtx("192.0.2.10", "6.6.6.6", "203.0.113.77, 10.1.2.3")
	p.ClientIP(ctx) // the header's list of lines grows once per connection
	if n := testing.AllocsPerRun(100, func() { p.ClientIP(ctx) }); n != 0 {
		t.Fatalf("%v allocations per ClientIP", n)
	}
}

// parseForwardedAddr agrees with net/netip: an entry it accepts is an address (netip.ParseAddr) or an address and port
// (netip.ParseAddrPort) with the same address, never a zone.
func FuzzParseForwardedAddr(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "203.0.113.7:80", "[2001:db8::1]:443", "[2001:db8::1]", "2001:db8::1", "::ffff:1.2.3.4",
		"unknown", "", "[1.2.3.4]", "1.2.3.4:", "fe80::1%eth0", "[::1]:99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ip, ok := parseForwardedAddr([]byte(s))
		if !ok {
			return
		}
		got := netip.AddrFrom16(ip)
		if a, err := netip.ParseAddr(s); err == nil {
			if a.Zone() != "" || netip.AddrFrom16(a.As16()) != got {
				t.Fatalf("%q: got %s, netip %s", s, got, a)
			}
			return
		}
		var inner string
		if len(s) > 0 && s[0] == '[' && s[len(s)-1] == ']' {
			inner = s[1 : len(s)-1]
		} else {
			ap, err := netip.ParseAddrPort(s)
			if err != nil {
				t.Fatalf("%q accepted; netip reads neither an address nor address:port (%v)", s, err)
			}
			inner = ap.Addr().String()
		}
		a, err := netip.ParseAddr(inner)
		if err != nil || a.Zone() != "" || netip.AddrFrom16(a.As16()) != got {
			t.Fatalf("%q: got %s, netip %v %v", s, got, a, err)
		}
	})
}
