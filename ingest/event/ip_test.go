package event

import (
	"net/netip"
	"testing"
)

func ip16(s string) [16]byte { return netip.MustParseAddr(s).As16() }

func TestParseIP(t *testing.T) {
	f := func(in string, want string) {
		t.Helper()
		got, ok := ParseIP([]byte(in))
		if want == "" {
			if ok {
				t.Errorf("ParseIP(%q) = %v, want failure", in, got)
			}
			return
		}
		if !ok || got != ip16(want) {
			t.Errorf("ParseIP(%q) = %v %v, want %s", in, got, ok, want)
		}
	}
	f("203.0.113.1", "203.0.113.1")
	f("0.0.0.0", "0.0.0.0")
	f("255.255.255.255", "255.255.255.255")
	f("::", "::")
	f("::1", "::1")
	f("1::", "1::")
	f("2001:db8::8a2e:370:7334", "2001:db8::8a2e:370:7334")
	f("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1")
	f("::ffff:203.0.113.1", "203.0.113.1")
	f("::1.2.3.4", "::102:304")
	f("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304")
	f("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0")
	f("::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8")
	for _, bad := range []string{"", ".", "1.2.3", "1.2.3.4.5", "1.2.3.256", "01.2.3.4", "1..2.3", "1.2.3.4.",
		".1.2.3", "1.2.3.-4", " 1.2.3.4", "1.2.3.4 ", "a.b.c.d", ":", ":::", "1:2", "1::2::3", "12345::",
		"1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::", "1::2:3:4:5:6:7:8", ":1::", "1:", "1:::2", "g::",
		"fe80::1%eth0", "::ffff:1.2.3", "1:2:3:4:5:6:7:1.2.3.4", "1.2.3.4::", "::1.2.3.4:5", "[::1]"} {
		f(bad, "")
	}
}

// TestParseIPMatchesNetip compares every address form the fuzz seeds cover with net/netip.
func TestParseIPMatchesNetip(t *testing.T) {
	for _, s := range []string{"1.2.3.4", "::", "::ffff:1.2.3.4", "0:0:0:0:0:ffff:102:304", "1:2:3:4:5:6:7:8",
		"1::8", "::1:2:3:4:5:6:7", "a:b::c:d", "ABCD:ef01::", "::0.0.0.0", "1:2:3:4:5::1.2.3.4", "1:2:3:4:5:6::1.2.3.4"} {
		checkIPAgainstNetip(t, s)
	}
}

func checkIPAgainstNetip(t *testing.T, s string) {
	t.Helper()
	got, ok := ParseIP([]byte(s))
	a, err := netip.ParseAddr(s)
	wantOK := err == nil && a.Zone() == ""
	if ok != wantOK {
		t.Fatalf("ParseIP(%q) ok=%v, netip says %v (%v)", s, ok, wantOK, err)
	}
	if ok && got != a.As16() {
		t.Fatalf("ParseIP(%q) = %v, netip says %v", s, got, a.As16())
	}
}

func FuzzParseIP(f *testing.F) {
	for _, s := range []string{"203.0.113.1", "2001:db8::1", "::ffff:1.2.3.4", "1:2:3:4:5:6:7:8", "fe80::1%eth0", "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkIPAgainstNetip(t, s) })
}

func TestParseIPAllocs(t *testing.T) {
	var buf [64]byte
	n := copy(buf[:], "2001:db8::8a2e:370:7334")
	if a := testing.AllocsPerRun(100, func() { ParseIP(buf[:n]) }); a != 0 {
		t.Fatalf("ParseIP allocates %v times", a)
	}
}

// BenchmarkParseIP parses the addresses a batch carries: IPv4 of varying lengths, the form nearly every client sends, and a
// few IPv6.
func BenchmarkParseIP(b *testing.B) {
	addrs := make([][]byte, 0, 256)
	for i := 0; i < 248; i++ {
		a := netip.AddrFrom4([4]byte{byte(i*37 + 1), byte(i * 11), byte(i*101 + 7), byte(255 - i)})
		addrs = append(addrs, []byte(a.String()))
	}
	for _, s := range []string{"2001:db8::1", "::ffff:203.0.113.9", "fe80::1:2:3:4", "2001:db8:85a3::8a2e:370:7334", "::1", "1::",
		"2001:db8::192.0.2.1", "a:b:c:d:e:f:1:2"} {
		addrs = append(addrs, []byte(s))
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, ok := ParseIP(addrs[i&255]); !ok {
			b.Fatal("refused")
		}
	}
}
