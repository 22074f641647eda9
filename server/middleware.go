package server

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/adtracker/adtracker/internal/httpx"
	"github.com/adtracker/adtracker/ratelimit"
)

// HeaderRequestID carries the request id: echoed when the client (or a proxy) sends a valid one, generated otherwise; on every
// response, and in every log line the server writes about a request.
const HeaderRequestID = "X-Request-ID"

const maxRequestIDLen = 128

// RequestID returns the current request's id. Valid until the handler returns; copy it to keep it.
func RequestID(ctx *fasthttp.RequestCtx) []byte {
	return ctx.Response.Header.PeekCanonical(hdrRequestID)
}

// routeKey is the user value under which a route wrapper leaves its *route for the middleware: a pointer key and a pointer value,
// so setting it allocates nothing (the router's own SaveMatchedRoutePath boxes two strings per request).
var routeKey any = new(byte)

// build copies Router's routes into a fresh router, wrapping each handler with its route's pre-resolved metrics and rate-limit class,
// and puts the middleware around it. The handlers are found with Router.Lookup on the pattern itself — a literal "{id}" matches the
// parameter it names — which fails only for regexp parameters ("{id:[0-9]+}"); no route uses them, and build reports one if it
// appears.
func (s *Server) build() (fasthttp.RequestHandler, error) {
	src := s.Router
	r := router.New()
	r.RedirectTrailingSlash = src.RedirectTrailingSlash
	r.RedirectFixedPath = src.RedirectFixedPath
	r.HandleMethodNotAllowed = src.HandleMethodNotAllowed
	r.HandleOPTIONS = true
	r.GlobalOPTIONS = s.options
	r.NotFound = src.NotFound
	r.MethodNotAllowed = src.MethodNotAllowed
	r.PanicHandler = src.PanicHandler
	list := src.List()
	methodNames := make([]string, 0, len(list))
	for m := range list {
		methodNames = append(methodNames, m)
	}
	sort.Strings(methodNames)
	var scratch fasthttp.RequestCtx
	for _, method := range methodNames {
		for _, pattern := range list[method] {
			h, _ := src.Lookup(method, pattern, &scratch)
			scratch.ResetUserValues()
			if h == nil {
				return nil, fmt.Errorf("server: cannot instrument route %s %s (regexp path parameters are not supported)", method, pattern)
			}
			label := method
			if method == router.MethodWild {
				label = "ANY"
			}
			class := s.opt.RouteClass(method, pattern)
			if s.opt.Compress != nil && s.opt.Compress(method, pattern) {
				// Inside the read guard and the limit: a refused request's short JSON error is not worth compressing anyway.
				h = httpx.Compress(h)
			}
			rt := s.metrics.route(s.opt.RouteLabel(method, pattern), label)
			rt.readCORS = class != ratelimit.Ingest
			if guardedRead(class, pattern) {
				next := h
				h = func(ctx *fasthttp.RequestCtx) {
					if s.access.check(ctx) {
						next(ctx)
					}
				}
			}
			r.Handle(method, pattern, s.instrument(rt, class, h))
		}
	}
	inner := r.Handler
	return func(ctx *fasthttp.RequestCtx) { s.serve(ctx, inner) }, nil
}

// guardedRead reports whether a route needs read access (readAccess): the query class — the ads catalogue and analytics — and
// /metrics. Ingest routes stay open to players; admin writes check admin.token themselves; health answers carry no business data.
func guardedRead(class ratelimit.Class, pattern string) bool {
	return class == ratelimit.Query || pattern == "/metrics"
}

// instrument wraps h (already guarded by read access where needed) with the route's metrics and rate limit; the limit comes first,
// so guessing tokens costs a client its query budget.
func (s *Server) instrument(rt *route, class ratelimit.Class, h fasthttp.RequestHandler) fasthttp.RequestHandler {
	lim := s.opt.Limiter
	if lim == nil || !lim.Enabled(class) {
		return func(ctx *fasthttp.RequestCtx) {
			ctx.SetUserValue(routeKey, rt)
			h(ctx)
		}
	}
	return func(ctx *fasthttp.RequestCtx) {
		ctx.SetUserValue(routeKey, rt)
		if lim.Check(class, ctx) {
			h(ctx)
		}
	}
}

// serve is the middleware around routing. Per request: one clock read, a few header writes into fasthttp's reused buffers, atomic
// metric updates. No lock (the rate limiter's per-shard mutex and, for a body over 8 KiB, the body gate's semaphore aside) and no
// allocation.
func (s *Server) serve(ctx *fasthttp.RequestCtx, inner fasthttp.RequestHandler) {
	start := ctx.Time() // fasthttp read the clock right before calling us; a clock read is not free on a VM clock
	s.metrics.inFlight.Add(1)
	s.rid.set(ctx)
	if body, ok := s.body.read(ctx); ok {
		inner(ctx)
		s.body.release(body)
	} else {
		ctx.SetUserValue(routeKey, s.rejected.of(ctx)) // no route ran: counted with what fasthttp refuses before routing
	}
	rt, _ := ctx.UserValue(routeKey).(*route)
	if rt == nil {
		rt = s.unmatched.of(ctx)
	}
	s.decorate(ctx, rt)
	code := ctx.Response.StatusCode()
	d := time.Since(start)
	rt.observe(code, d, ctx.ConnID())
	s.metrics.inFlight.Add(-1)
	if code >= 500 {
		s.logFailure(ctx, rt, code, d)
	} else if code >= 400 {
		s.logRefused(ctx, rt, code, d)
	}
}

// logRefused logs a 4xx at info, so a client (or a newcomer following the README) can find why a request was refused by its
// X-Request-ID. A flood of bad requests must not flood the log: refusedLog keeps the first RefusedLogPerSecond a second and drops
// the rest (adtracker_http_requests_total counts every one by route and status). Dropped or not, nothing allocates per request.
func (s *Server) logRefused(ctx *fasthttp.RequestCtx, rt *route, code int, d time.Duration) {
	writeRequestLine(s.refusedLog.Check(zapcore.InfoLevel, "request refused"), ctx, rt, code, d)
}

// writeRequestLine completes a checked log entry (nil when the level or the sampler dropped it) with the request and the first
// 512 bytes of the answer.
func writeRequestLine(ce *zapcore.CheckedEntry, ctx *fasthttp.RequestCtx, rt *route, code int, d time.Duration) {
	if ce == nil {
		return
	}
	body := ctx.Response.Body()
	if len(body) > 512 {
		body = body[:512]
	}
	ce.Write(zap.ByteString("request_id", RequestID(ctx)), zap.String("route", rt.pattern), zap.String("method", rt.method),
		zap.ByteString("path", ctx.Path()), zap.Int("status", code), zap.Duration("duration", d), zap.ByteString("response", body))
}

// RefusedLogPerSecond bounds the "request refused" (4xx) lines a server writes per second; the rest of a second's are dropped.
const RefusedLogPerSecond = 10

func newRefusedLog(l *zap.Logger) *zap.Logger {
	return l.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, time.Second, RefusedLogPerSecond, 0)
	}))
}

// logFailure logs a 5xx through the sampled logger: an outage turns every request into one, and the log must not become the next
// bottleneck. 500 is a bug (error); 503 and the like are load or a dependency (warn), and have their own metrics.
func (s *Server) logFailure(ctx *fasthttp.RequestCtx, rt *route, code int, d time.Duration) {
	lvl := zapcore.WarnLevel
	if code == fasthttp.StatusInternalServerError {
		lvl = zapcore.ErrorLevel
	}
	writeRequestLine(s.hotLog.Check(lvl, "request failed"), ctx, rt, code, d)
}

var jsonType = []byte("application/json")

// Header names in fasthttp's canonical form, set with SetCanonical and read with PeekCanonical: Set and Peek would re-normalise and
// re-validate the name on every call, which was most of the middleware's cost. fasthttp stores every header name in this form
// (request headers as it parses them: the server does not disable normalizing), so the canonical calls find a header whatever
// its case on the wire.
var (
	hdrRequestID      = []byte("X-Request-Id")
	hdrNosniff        = []byte("X-Content-Type-Options")
	hdrReferrerPolicy = []byte("Referrer-Policy")
	hdrCacheControl   = []byte("Cache-Control")
	hdrVary           = []byte("Vary")
	hdrAllowOrigin    = []byte("Access-Control-Allow-Origin")
	hdrExposeHeaders  = []byte("Access-Control-Expose-Headers")
	hdrAllowMethods   = []byte("Access-Control-Allow-Methods")
	hdrAllowHeaders   = []byte("Access-Control-Allow-Headers")
	hdrMaxAge         = []byte("Access-Control-Max-Age")
	hdrOrigin         = []byte("Origin")

	valNosniff       = []byte("nosniff")
	valNoReferrer    = []byte("no-referrer")
	valNoStore       = []byte("no-store")
	valOrigin        = []byte("Origin")
	valStar          = []byte("*")
	valAllowHeaders  = []byte(corsAllowHeaders)
	valExposeHeaders = []byte(corsExposeHeaders)
	valMaxAge        = []byte(corsMaxAge)
)

// decorate adds the security headers and CORS headers. nosniff everywhere; the others on JSON only, because the click redirect must
// keep the publisher page as the landing page's referrer and the pixel sets its own caching.
func (s *Server) decorate(ctx *fasthttp.RequestCtx, rt *route) {
	h := &ctx.Response.Header
	h.SetCanonical(hdrNosniff, valNosniff)
	if bytes.HasPrefix(h.ContentType(), jsonType) {
		h.SetCanonical(hdrReferrerPolicy, valNoReferrer)
		if len(h.PeekCanonical(hdrCacheControl)) == 0 {
			h.SetCanonical(hdrCacheControl, valNoStore)
		}
	}
	if rt != nil && rt.readCORS {
		s.readCORS.apply(ctx)
		return
	}
	s.cors.apply(ctx)
}

// Headers a browser may send cross-origin (Content-Type: application/json already makes a POST "non-simple") and read back.
const (
	corsAllowHeaders  = "Content-Type, Authorization, If-Match, X-Request-ID"
	corsExposeHeaders = "Retry-After, X-Request-ID, ETag, Location, Link"
	corsMaxAge        = "7200" // Chrome's cap; Firefox allows a day
)

type corsPolicy struct{ httpx.Origins }

func newCORS(list []string) corsPolicy { return corsPolicy{httpx.ParseOrigins(list)} }

func (c *corsPolicy) apply(ctx *fasthttp.RequestCtx) {
	if !c.Enabled() {
		return
	}
	h := &ctx.Response.Header
	if len(h.PeekCanonical(hdrAllowOrigin)) > 0 {
		return // the route answered CORS itself (GET /vast: an echoed origin with credentials, which "*" would break)
	}
	if !c.Any() {
		// The answer depends on Origin: a shared cache must not hand one origin's answer to another.
		if len(h.PeekCanonical(hdrVary)) == 0 {
			h.SetCanonical(hdrVary, valOrigin)
		} else {
			h.Add("Vary", "Origin")
		}
	}
	origin := ctx.Request.Header.PeekCanonical(hdrOrigin)
	if len(origin) == 0 || !c.Allows(origin) {
		return
	}
	if c.Any() {
		// No credentials are involved (the admin token is a header, not a cookie), so "*" exposes nothing a page could not send itself.
		h.SetCanonical(hdrAllowOrigin, valStar)
	} else {
		h.SetCanonical(hdrAllowOrigin, origin)
	}
	h.SetCanonical(hdrExposeHeaders, valExposeHeaders)
}

// options answers OPTIONS for a path that has routes (the router has already set Allow): 204, and for a CORS preflight from an allowed
// origin the Access-Control-Allow-* headers; from another origin 403, so the browser console says why.
func (s *Server) options(ctx *fasthttp.RequestCtx) {
	ctx.SetUserValue(routeKey, s.preflight.of(ctx))
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	origin := ctx.Request.Header.Peek("Origin")
	if len(origin) == 0 || len(ctx.Request.Header.Peek("Access-Control-Request-Method")) == 0 {
		return
	}
	// The route's class from the method the browser asks about and the raw path: ClassOf classifies paths as it does patterns (no
	// ingest route has a parameter outside its /t/ or /c/ prefix).
	policy, setting := &s.cors, "http.cors_origins"
	if s.opt.RouteClass(string(ctx.Request.Header.Peek("Access-Control-Request-Method")), string(ctx.Path())) != ratelimit.Ingest {
		policy, setting = &s.readCORS, "http.read_cors_origins"
		ctx.SetUserValue(routeKey, s.preflightRead.of(ctx)) // so decorate applies the same policy
	}
	if !policy.Allows(origin) {
		httpx.WriteError(ctx, fasthttp.StatusForbidden, "origin not allowed by "+setting, "Origin")
		return
	}
	h := &ctx.Response.Header
	var buf [128]byte
	allow := append(buf[:0], h.Peek("Allow")...) // copied: setting a header may move the bytes Peek points into
	h.SetCanonical(hdrAllowMethods, allow)
	h.SetCanonical(hdrAllowHeaders, valAllowHeaders)
	h.SetCanonical(hdrMaxAge, valMaxAge)
}

// requestIDs generates ids: a random per-process prefix and a counter, 32 hex digits like a W3C trace id. Unique without coordination
// and without a random read per request.
type requestIDs struct {
	prefix [16]byte
	seq    *atomic.Uint64
}

func newRequestIDs() requestIDs {
	var r requestIDs
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails on Linux; a zero prefix would still give unique ids within the process
	hex.Encode(r.prefix[:], b[:])
	r.seq = new(atomic.Uint64)
	return r
}

const hexDigits = "0123456789abcdef"

func (r *requestIDs) set(ctx *fasthttp.RequestCtx) {
	if v := ctx.Request.Header.PeekCanonical(hdrRequestID); validRequestID(v) {
		ctx.Response.Header.SetCanonical(hdrRequestID, v)
		return
	}
	var buf [32]byte
	copy(buf[:16], r.prefix[:])
	n := r.seq.Add(1)
	for i := len(buf) - 1; i >= 16; i-- {
		buf[i] = hexDigits[n&0xf]
		n >>= 4
	}
	ctx.Response.Header.SetCanonical(hdrRequestID, buf[:])
}

// validRequestID accepts what tracing systems send (UUIDs, hex, base64) and nothing that could break a header or a log line.
func validRequestID(v []byte) bool {
	if len(v) == 0 || len(v) > maxRequestIDLen {
		return false
	}
	for _, c := range v {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == ':' || c == '/' || c == '+' || c == '=':
		default:
			return false
		}
	}
	return true
}
