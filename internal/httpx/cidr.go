package httpx

import (
	"fmt"
	"net/netip"
	"strings"
)

// CIDRs is a list of networks read from configuration (http.trusted_proxies, ratelimit.exempt).
type CIDRs []netip.Prefix

// ParseCIDRs reads CIDRs or single addresses; blank entries are skipped. A single address is its own network; an IPv4-mapped
// IPv6 address ("::ffff:192.0.2.1") means the IPv4 address, as the peers it is matched against are. key names the setting in
// the error.
func ParseCIDRs(key string, list []string) (CIDRs, error) {
	var nets CIDRs
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not an IP or CIDR", key, s)
			}
			a = a.Unmap()
			nets = append(nets, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an IP or CIDR", key, s)
		}
		nets = append(nets, p.Masked())
	}
	return nets, nil
}

// Contains reports whether ip (16 bytes, IPv4 mapped) lies in one of the networks. No allocation.
func (c CIDRs) Contains(ip [16]byte) bool {
	if len(c) == 0 {
		return false
	}
	a := netip.AddrFrom16(ip).Unmap()
	for _, n := range c {
		if n.Contains(a) {
			return true
		}
	}
	return false
}
