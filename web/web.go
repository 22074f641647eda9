// Package web serves the built-in dashboard (HTML, CSS and JavaScript embedded in the binary) and the live ingest status it polls.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/internal/httpx"
	"github.com/adtracker/adtracker/ratelimit"
)

// The dashboard is plain files: no bundler, so `go build` needs no JavaScript toolchain and what is served is what is committed.
//
//go:embed assets
var assets embed.FS

// Routes of the dashboard. The page and its files carry no data (the script fetches everything through the JSON API with the
// token the user types), so they are open and unlimited; StatusPath is a read route like the analytics (see RouteClass).
const (
	IndexPath  = "/"
	AssetsPath = "/assets/{file}"
	StatusPath = "/status"
)

// contentSecurityPolicy allows only this origin's own files and API: no inline script, no CDN, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type file struct {
	body        []byte
	contentType string
	etag        string // the content's hash, so a new binary's files replace cached ones at once
}

// Handler serves the embedded files.
type Handler struct {
	files map[string]file // by name under assets/
}

// NewHandler reads the embedded files once; serving them copies nothing.
func NewHandler() *Handler {
	h := &Handler{files: map[string]file{}}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		h.files[strings.TrimPrefix(p, "assets/")] = file{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("web: reading embedded assets: " + err.Error()) // the files are compiled in: only a broken build gets here
	}
	return h
}

// Register adds the dashboard's routes to r: the page at /, its files under /assets/, and the status endpoint when st is not nil.
func (h *Handler) Register(r *router.Router, st *Status) {
	r.GET(IndexPath, func(ctx *fasthttp.RequestCtx) { h.serve(ctx, "index.html") })
	r.GET(AssetsPath, func(ctx *fasthttp.RequestCtx) {
		name, _ := ctx.UserValue("file").(string)
		h.serve(ctx, name)
	})
	if st != nil {
		r.GET(StatusPath, st.ServeHTTP)
	}
}

func (h *Handler) serve(ctx *fasthttp.RequestCtx, name string) {
	f, ok := h.files[name]
	if !ok || name == "index.html" && string(ctx.Path()) != IndexPath {
		httpx.WriteError(ctx, fasthttp.StatusNotFound, "no such dashboard file", "path")
		return
	}
	hd := &ctx.Response.Header
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	// Revalidate every time: the files are small and a new binary must not run an old script against a changed API.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", f.etag)
	if string(ctx.Request.Header.Peek("If-None-Match")) == f.etag {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	ctx.SetContentType(f.contentType)
	ctx.SetBody(f.body)
}

// RouteClass wraps the server's route classifier: the dashboard's page and files are open (class None: no read token, no rate
// limit), because a browser on another host must load the page before its user can type a token. Everything else, /status
// included, keeps next's class, so /status is a read route: token or loopback, like the analytics.
func RouteClass(next func(method, pattern string) ratelimit.Class) func(method, pattern string) ratelimit.Class {
	return func(method, pattern string) ratelimit.Class {
		if method == fasthttp.MethodGet && (pattern == IndexPath || pattern == AssetsPath) {
			return ratelimit.None
		}
		return next(method, pattern)
	}
}
