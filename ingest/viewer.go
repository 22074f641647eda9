package ingest

import (
	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/event"
)

// requestViewer is the viewer a batch request's headers name — its address and user agent after trusted proxies and the SSAI
// headers (X-Device-IP, X-Device-User-Agent) — worked out at most once per request. Every item that leaves them out takes the
// same values, so a batch of 1,000 reads and cleans the headers once instead of 1,000 times. The one-event routes pass none.
type requestViewer struct {
	// Zero: not worked out yet.
	ipState, uaState uint8
	ip               [16]byte
	uaLen            uint16
	ua               [event.MaxUserAgentLen]byte // cleaned as decode.SetUserAgent cleans
}

const (
	viewerUnknown uint8 = iota
	viewerKnown
	viewerBadDeviceIP // a trusted peer's X-Device-IP is not an address
)

// fill sets the id, address and user agent e leaves out. Server-side ad insertion: when the TCP peer is a trusted proxy
// (http.trusted_proxies), X-Device-IP and X-Device-User-Agent name the viewer a stitching server fires the pixel for, and take
// the place of the request's own address and User-Agent (fields the event itself carries still win: they are more specific).
// It reports false, having set nothing from the headers, when a trusted peer's X-Device-IP is not an address: recording the
// stitcher's own address as the viewer's would be silently wrong.
func (h *Handlers) fill(ctx *fasthttp.RequestCtx, e *event.Event, v *requestViewer) bool {
	if e.ID.IsZero() {
		e.ID = h.IDs.NextAt(requestTime(ctx))
	}
	if e.IP == ([16]byte{}) {
		ip, ok := h.viewerIP(ctx, v)
		if !ok {
			return false
		}
		e.IP = ip
	}
	if e.UALen == 0 {
		if v != nil && v.uaState == viewerKnown {
			e.SetUserAgent(v.ua[:v.uaLen])
			return true
		}
		ua, ok := h.Proxies.DeviceUserAgent(ctx)
		if !ok {
			ua = ctx.Request.Header.UserAgent()
		}
		// Cleaned exactly as the JSON user_agent field is: valid UTF-8 cut on a rune boundary, control characters blanked.
		decode.SetUserAgent(e, ua)
		if v != nil {
			v.uaLen = uint16(copy(v.ua[:], e.UA()))
			v.uaState = viewerKnown
		}
	}
	return true
}

// viewerIP is the viewer's address the request names (v, when given, keeps it for the request's next items); ok is false when
// a trusted peer's X-Device-IP is not an address.
func (h *Handlers) viewerIP(ctx *fasthttp.RequestCtx, v *requestViewer) (ip [16]byte, ok bool) {
	if v != nil && v.ipState != viewerUnknown {
		return v.ip, v.ipState == viewerKnown
	}
	dev, isDev, bad := h.Proxies.DeviceIP(ctx)
	switch {
	case bad:
	case isDev:
		ip, ok = dev, true
	default:
		ip, ok = h.Proxies.ClientIP(ctx), true
	}
	if v != nil {
		v.ip, v.ipState = ip, viewerKnown
		if !ok {
			v.ipState = viewerBadDeviceIP
		}
	}
	return ip, ok
}
