package ingest

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"
)

// Proxies is the set of peers whose X-Forwarded-For is believed (http.trusted_proxies). Rate limiting uses the same rule, so a client
// cannot dodge its limit by sending a forged header.
type Proxies struct{ nets []netip.Prefix }

// ParseProxies parses CIDRs or single addresses.
func ParseProxies(list []string) (*Proxies, error) {
	p := &Proxies{}
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("http.trusted_proxies: %q is not an IP or CIDR", s)
			}
			p.nets = append(p.nets, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		n, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("http.trusted_proxies: %q is not an IP or CIDR", s)
		}
		p.nets = append(p.nets, n.Masked())
	}
	return p, nil
}

func (p *Proxies) trusted(ip [16]byte) bool {
	if p == nil || len(p.nets) == 0 {
		return false
	}
	a := netip.AddrFrom16(ip).Unmap()
	for _, n := range p.nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP returns the address of the client: the peer, or — when the peer is a trusted proxy — the right-most address in
// X-Forwarded-For that is not itself a trusted proxy (the left-most entries are whatever the client chose to send). No allocation.
func (p *Proxies) ClientIP(ctx *fasthttp.RequestCtx) [16]byte {
	var peer [16]byte
	copy(peer[:], ctx.RemoteIP().To16())
	if !p.trusted(peer) {
		return peer
	}
	xff := ctx.Request.Header.Peek("X-Forwarded-For")
	client := peer
	for len(xff) > 0 {
		i := len(xff) - 1
		for i >= 0 && xff[i] != ',' {
			i--
		}
		part := trimSpace(xff[i+1:])
		if i < 0 {
			xff = nil
		} else {
			xff = xff[:i]
		}
		ip, ok := ParseIP(part)
		if !ok {
			break // garbage in the header: stop at the last proxy we trust
		}
		client = ip
		if !p.trusted(ip) {
			break
		}
	}
	return client
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
