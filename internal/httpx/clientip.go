package httpx

import (
	"bytes"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/valyala/fasthttp"
)

// Proxies is the set of peers whose X-Forwarded-For is believed (http.trusted_proxies). Rate limiting uses the same rule, so a client
// cannot dodge its limit by sending a forged header.
type Proxies struct{ nets CIDRs }

// ParseProxies parses CIDRs or single addresses.
func ParseProxies(list []string) (*Proxies, error) {
	nets, err := ParseCIDRs("http.trusted_proxies", list)
	if err != nil {
		return nil, err
	}
	return &Proxies{nets: nets}, nil
}

func (p *Proxies) trusted(ip [16]byte) bool { return p != nil && p.nets.Contains(ip) }

// ClientIP returns the address of the client: the peer, or — when the peer is a trusted proxy — the right-most address in
// X-Forwarded-For that is not itself a trusted proxy. No allocation.
//
// Every X-Forwarded-For line counts, in order, as one comma-separated list: a proxy that adds its own line after the client's
// (HAProxy's option forwardfor, several CDNs) must not let the client's forged first line win, so reading only the first line
// (fasthttp's Peek) would be a spoofing hole. The list is walked from the right, from the hop the peer vouches for towards the
// client; the first address that is not a trusted proxy is the client. An entry that is not an address (garbage, "unknown", an
// empty element) stops the walk and the last address a trusted hop vouched for is used: everything left of it was written by
// someone we do not trust. Entries may carry a port ("203.0.113.7:4711", "[2001:db8::1]:443") or brackets; zones are refused.
// RFC 7239 Forwarded is not read (README, "Client address").
func (p *Proxies) ClientIP(ctx *fasthttp.RequestCtx) [16]byte {
	var peer [16]byte
	copy(peer[:], ctx.RemoteIP().To16())
	if !p.trusted(peer) {
		return peer
	}
	client := peer
	lines := ctx.Request.Header.PeekAll("X-Forwarded-For")
	for l := len(lines) - 1; l >= 0; l-- {
		xff := lines[l]
		for {
			i := bytes.LastIndexByte(xff, ',')
			part := xff[i+1:]
			ip, ok := parseForwardedAddr(trimSpace(part))
			if !ok {
				return client // garbage: stop at the last hop we trust
			}
			client = ip
			if !p.trusted(ip) {
				return client
			}
			if i < 0 {
				break
			}
			xff = xff[:i]
		}
	}
	return client
}

// parseForwardedAddr reads one X-Forwarded-For entry: an IPv4 or IPv6 address, optionally with a port ("1.2.3.4:80") or in
// brackets with or without a port ("[::1]", "[::1]:80"). A bare IPv6 address is never read as having a port.
func parseForwardedAddr(b []byte) ([16]byte, bool) {
	if len(b) > 0 && b[0] == '[' {
		k := bytes.IndexByte(b, ']')
		if k < 0 || !validPort(b[k+1:]) {
			return [16]byte{}, false
		}
		inner := b[1:k]
		if bytes.IndexByte(inner, ':') < 0 {
			return [16]byte{}, false // brackets hold IPv6 only
		}
		return event.ParseIP(inner)
	}
	if c := bytes.IndexByte(b, ':'); c >= 0 && bytes.IndexByte(b[c+1:], ':') < 0 {
		// One colon: IPv4 with a port (IPv6 has at least two).
		if !validPort(b[c:]) {
			return [16]byte{}, false
		}
		b = b[:c]
		if bytes.IndexByte(b, '.') < 0 {
			return [16]byte{}, false
		}
	}
	return event.ParseIP(b)
}

// validPort accepts "" or ":" followed by a decimal port up to 65535.
func validPort(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if b[0] != ':' || len(b) < 2 || len(b) > 6 {
		return false
	}
	n := 0
	for _, c := range b[1:] {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
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
