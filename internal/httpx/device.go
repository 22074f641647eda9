package httpx

import (
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/valyala/fasthttp"
)

// Server-side ad insertion (VAST 4.3 §1.1.3 and the IAB's guidance for stitchers): a stitching server fires the pixels of its
// viewers itself, so the TCP peer and the User-Agent are the stitcher's. It names the viewer in these headers. They are believed
// only from a trusted proxy (http.trusted_proxies), so an ordinary client cannot choose the address or user agent it is recorded
// with.
const (
	HeaderDeviceIP        = "X-Device-IP"
	HeaderDeviceUserAgent = "X-Device-User-Agent"
)

// The header names in fasthttp's canonical form, for PeekCanonical (no normalising per call; fasthttp stores request header
// names in this form whatever their case on the wire).
var (
	hdrDeviceIP        = []byte("X-Device-Ip")
	hdrDeviceUserAgent = []byte("X-Device-User-Agent")
)

// TrustedPeer reports whether the TCP peer of ctx is a trusted proxy.
func (p *Proxies) TrustedPeer(ctx *fasthttp.RequestCtx) bool {
	if p == nil || len(p.nets) == 0 {
		return false
	}
	var peer [16]byte
	copy(peer[:], ctx.RemoteIP().To16())
	return p.trusted(peer)
}

// DeviceIP returns X-Device-IP when the peer is a trusted proxy and sent one. bad is true when a trusted peer sent a value that is
// not an address: the caller refuses the request rather than record the stitcher's own address as the viewer's.
func (p *Proxies) DeviceIP(ctx *fasthttp.RequestCtx) (ip [16]byte, ok, bad bool) {
	if !p.TrustedPeer(ctx) {
		return ip, false, false
	}
	v := ctx.Request.Header.PeekCanonical(hdrDeviceIP)
	if len(v) == 0 {
		return ip, false, false
	}
	ip, ok = event.ParseIP(trimSpace(v))
	return ip, ok, !ok
}

// DeviceUserAgent returns X-Device-User-Agent when the peer is a trusted proxy and sent a non-empty one.
func (p *Proxies) DeviceUserAgent(ctx *fasthttp.RequestCtx) ([]byte, bool) {
	if !p.TrustedPeer(ctx) {
		return nil, false
	}
	v := ctx.Request.Header.PeekCanonical(hdrDeviceUserAgent)
	if len(v) == 0 {
		return nil, false
	}
	return v, true
}
