package vast

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/catalog"
	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/httpx"
)

// Catalog is what serving needs of the ad catalogue; *catalog.Catalog implements it. Nil before the first load.
type Catalog interface {
	Snapshot() *catalog.Snapshot
}

// ContentType is the Content-Type of every VAST answer.
const ContentType = "application/xml"

// Routes served by Handler.
const (
	PathAny = "/vast"
	PathAd  = "/vast/{ad_id}"
)

// Config configures a Handler.
type Config struct {
	Catalog Catalog
	// PublicURL is the base of every URL in the documents (http.public_url). Empty: derived per request from the Host header and
	// the scheme (https when the connection is TLS or a trusted proxy says X-Forwarded-Proto: https) — meant for development; set it
	// in production, where the address players reach may not be what the Host header says.
	PublicURL string
	// Proxies decides whom X-Forwarded-Proto / X-Forwarded-Host are believed from when PublicURL is empty.
	Proxies *httpx.Proxies
	IDs     *event.IDs
	// CORSOrigins are the origins whose XHRs may read the answers, with credentials (http.cors_origins: players call /vast and the
	// pixels from the same pages). An allowed Origin is echoed, never "*", because browsers refuse "*" on credentialed requests.
	CORSOrigins []string
}

// Handler serves GET /vast and GET /vast/{ad_id}.
//
// Per request it takes the current catalogue snapshot, finds (or, once per snapshot, builds) the rendered set for it, draws a serve
// id, and writes the ad's template with the serve id spliced in. No database, no XML encoding and no allocation per request once the
// set is built.
type Handler struct {
	cfg     Config
	base    string
	origins httpx.Origins

	mu  sync.Mutex // serialises set builds; readers never take it
	cur atomic.Pointer[set]
}

// ErrPublicURL is returned by New for an http.public_url that cannot prefix tracking URLs.
var ErrPublicURL = errors.New("http.public_url must be an absolute http(s) URL without query or fragment, such as https://track.example.com")

// New checks cfg and returns a handler.
func New(cfg Config) (*Handler, error) {
	h := &Handler{cfg: cfg}
	if cfg.PublicURL != "" {
		base, err := ParsePublicURL(cfg.PublicURL)
		if err != nil {
			return nil, err
		}
		h.base = base
	}
	if h.cfg.IDs == nil {
		h.cfg.IDs = event.NewIDs()
	}
	h.origins = httpx.ParseOrigins(cfg.CORSOrigins)
	return h, nil
}

// ParsePublicURL validates an http.public_url and returns it without a trailing slash.
func ParsePublicURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" ||
		u.User != nil || strings.ContainsAny(s, " \t\r\n\x00<>\"'[]") {
		return "", fmt.Errorf("%w (got %q)", ErrPublicURL, s)
	}
	return strings.TrimRight(s, "/"), nil
}

// Register adds the routes, with their CORS preflights.
func (h *Handler) Register(r *router.Router) {
	r.GET(PathAny, h.serveAny)
	r.GET(PathAd, h.serveAd)
	r.OPTIONS(PathAny, h.preflight)
	r.OPTIONS(PathAd, h.preflight)
}

func (h *Handler) serveAd(ctx *fasthttp.RequestCtx) {
	s, _ := ctx.UserValue("ad_id").(string)
	id, ok := decode.ParseAdID([]byte(s))
	if !ok {
		h.cors(ctx)
		httpx.WriteError(ctx, fasthttp.StatusBadRequest, "ad_id must be a positive integer", "ad_id")
		return
	}
	h.serve(ctx, id)
}

func (h *Handler) serveAny(ctx *fasthttp.RequestCtx) { h.serve(ctx, 0) }

// serve answers the document of ad id, or of a weighted draw when id is 0; the empty VAST when there is no such eligible ad.
func (h *Handler) serve(ctx *fasthttp.RequestCtx, id uint64) {
	h.cors(ctx)
	base, ok := h.baseOf(ctx)
	if !ok {
		httpx.WriteError(ctx, fasthttp.StatusBadRequest, "the Host header is not a host name; tracking URLs cannot be built (set http.public_url)", "Host")
		return
	}
	s := h.current(base)
	if id == 0 {
		id = s.pick()
	}
	t := s.ads[id]
	if t != nil && s.base != base {
		// Only without http.public_url, for a Host other than the one the set was built for: rendered for this answer alone.
		e, _ := s.snap.Lookup(id)
		t = Render(base, id, e)
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(ContentType)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if t == nil {
		ctx.Response.SetBodyString(Empty)
		return
	}
	var buf [36]byte
	serve := h.cfg.IDs.Next().AppendString(buf[:0])
	// The response's own buffer, swapped out and back: the document is written once, without a copy or an allocation.
	ctx.Response.SwapBody(t.AppendTo(ctx.Response.SwapBody(nil)[:0], serve))
}

// current returns the set for the current snapshot, building it when the snapshot changed since the last build.
func (h *Handler) current(base string) *set {
	var snap *catalog.Snapshot
	if h.cfg.Catalog != nil {
		snap = h.cfg.Catalog.Snapshot()
	}
	if s := h.cur.Load(); s != nil && s.snap == snap {
		return s
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	prev := h.cur.Load()
	if prev != nil && prev.snap == snap {
		return prev // built by another request meanwhile
	}
	s := buildSet(snap, base, prev)
	h.cur.Store(s)
	return s
}

// baseOf is the base URL of the answer: http.public_url, or one derived from the request.
func (h *Handler) baseOf(ctx *fasthttp.RequestCtx) (string, bool) {
	if h.base != "" {
		return h.base, true
	}
	host := ctx.Host()
	scheme := "http"
	if ctx.IsTLS() {
		scheme = "https"
	}
	if h.cfg.Proxies.TrustedPeer(ctx) {
		if p := ctx.Request.Header.Peek("X-Forwarded-Proto"); bytes.EqualFold(p, []byte("https")) {
			scheme = "https"
		}
		if fh := ctx.Request.Header.Peek("X-Forwarded-Host"); len(fh) > 0 {
			host = fh
		}
	}
	if !validHost(host) {
		return "", false
	}
	return scheme + "://" + string(host), true
}

// validHost accepts a host name or address with an optional port, and nothing that could break out of a URL or XML.
func validHost(h []byte) bool {
	if len(h) == 0 || len(h) > 255 {
		return false
	}
	for _, c := range h {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

// cors lets an allowed origin's XHR read the answer with credentials (cookies): the origin is echoed and the answer varies by it.
func (h *Handler) cors(ctx *fasthttp.RequestCtx) {
	if !h.origins.Enabled() {
		return
	}
	ctx.Response.Header.Set("Vary", "Origin")
	origin := ctx.Request.Header.Peek("Origin")
	if len(origin) == 0 || !h.origins.Allows(origin) {
		return
	}
	ctx.Response.Header.SetBytesV("Access-Control-Allow-Origin", origin)
	ctx.Response.Header.Set("Access-Control-Allow-Credentials", "true")
}

// preflight answers a CORS preflight for the /vast routes: 204 with the credentialed allow headers for an allowed origin, 403 naming
// the setting for another one, a plain 204 with Allow when it is no preflight.
func (h *Handler) preflight(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("Allow", "GET, OPTIONS")
	origin := ctx.Request.Header.Peek("Origin")
	if len(origin) == 0 || len(ctx.Request.Header.Peek("Access-Control-Request-Method")) == 0 {
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	if !h.origins.Allows(origin) {
		httpx.WriteError(ctx, fasthttp.StatusForbidden, "origin not allowed by http.cors_origins", "Origin")
		return
	}
	h.cors(ctx)
	ctx.Response.Header.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
	ctx.Response.Header.Set("Access-Control-Allow-Headers", "Content-Type, X-Request-ID")
	ctx.Response.Header.Set("Access-Control-Max-Age", "7200")
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}
