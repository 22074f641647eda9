package screen

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/adtracker/adtracker/internal/httpx"
)

// The merged-range form answers as httpx.CIDRs does, on random lists and addresses near their edges.
func TestIPRangesMatchCIDRs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	addr := func() netip.Addr {
		if r.IntN(2) == 0 {
			return netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))})
		}
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(r.IntN(4)), 14: byte(r.IntN(256)), 15: byte(r.IntN(256))})
	}
	for round := 0; round < 200; round++ {
		var list []string
		for i := r.IntN(12); i >= 0; i-- {
			a := addr()
			bits := 16 + r.IntN(113)
			if a.Is4() {
				bits = 8 + r.IntN(25)
			}
			list = append(list, netip.PrefixFrom(a, bits).String())
		}
		nets, err := httpx.ParseCIDRs("k", list)
		if err != nil {
			t.Fatal(err)
		}
		rs := newIPRanges(nets)
		for i := 0; i < 500; i++ {
			a := addr()
			if i%2 == 0 && len(nets) > 0 { // the first and last address of a listed network, and their neighbours
				p := nets[r.IntN(len(nets))]
				a = p.Addr()
				if i%4 == 0 {
					a = a.Prev()
				}
			}
			if !a.IsValid() {
				continue
			}
			if got, want := rs.contains(a.As16()), nets.Contains(a.As16()); got != want {
				t.Fatalf("list %v: %s in ranges %v, in CIDRs %v", list, a, got, want)
			}
		}
	}
	if (&ipRanges{}).contains(netip.MustParseAddr("::").As16()) {
		t.Fatal("empty list contains ::")
	}
	all := newIPRanges(httpx.CIDRs{netip.MustParsePrefix("::/0"), netip.MustParsePrefix("0.0.0.0/0")})
	if len(all.lo) != 1 || !all.contains(netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").As16()) {
		t.Fatalf("::/0 with 0.0.0.0/0: %+v", all)
	}
}

// A bucket is one cache line, which the documented memory figures assume.
func TestBucketIsOneCacheLine(t *testing.T) {
	if n := unsafe.Sizeof(bucket{}); n != bucketBytes {
		t.Fatalf("bucket is %d bytes", n)
	}
}
