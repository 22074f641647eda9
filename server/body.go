package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"golang.org/x/sync/semaphore"

	"github.com/adtracker/adtracker/internal/httpx"
)

// The body gate bounds the memory request bodies take, all connections together.
//
// Without it fasthttp reads each request's whole body before any handler runs, so the bytes held at once are the connections
// times http.max_body_bytes: sixteen clients posting 1 MiB of junk held 16 MiB, the largest item of the process's heap under that
// load (BENCHMARKS.md, "Peak RSS"), and nothing bounded how many such clients there could be. The server therefore runs with
// fasthttp's StreamRequestBody: fasthttp reads the headers and at most prefetchBytes of the body, then calls the handler. The gate,
// first thing in every request, reads the rest into a pooled buffer once the body's size class fits in the budget
// (http.body_buffer_bytes), hands it to the handler as the request body, and gives the room back when the handler returns. Handlers
// see a whole body exactly as before; only the admission changed.
//
// Bodies of at most prefetchBytes (single events, pixels, the catalogue's writes) are whole after fasthttp's prefetch and pass
// without touching the budget: one connection's prefetch is bounded like its header buffer. A larger body waits for room up to
// the read timeout, then gets 503 + Retry-After. The gate also keeps the 413 rule that fasthttp's streaming mode drops: a declared
// Content-Length over the limit is refused before its body is read, a chunked body when it passes the limit. Any answer the gate
// gives leaves the rest of the body unread, so it closes the connection (the next "request" would be body bytes), lingering so the
// client still sending gets the answer instead of a reset (linger.go).
type bodyGate struct {
	maxBody int
	budget  *semaphore.Weighted
	wait    time.Duration // longest wait for room: http.read_timeout, past which the connection could not read the body anyway
	pools   []sync.Pool   // *[]byte, one pool per size class c, of classBytes(c)
	held    atomic.Int64  // bytes of budget held now (the gauge)
	waits   atomic.Int64  // bodies that had to wait for room
	linger  *lingerSet    // where a refusal asks for its connection's lingering close (set by New)
}

// prefetchBytes is how much of a body fasthttp reads with the headers in streaming mode (readBodyWithStreaming, fixed in v1.74.0).
const prefetchBytes = 8 << 10

// minClass is the smallest pooled buffer: the bodies that reach the pools are larger than prefetchBytes.
const minClass = 16 << 10

// DefaultBodyBufferBytes is the budget when Options.BodyBufferBytes is zero.
const DefaultBodyBufferBytes = 8 << 20

func newBodyGate(maxBody, budget int, wait time.Duration) *bodyGate {
	if maxBody <= 0 {
		maxBody = fasthttp.DefaultMaxRequestBodySize
	}
	if budget <= 0 {
		budget = DefaultBodyBufferBytes
	}
	// A body of the largest size must fit on its own, or it could never be read.
	budget = max(budget, classBytes(classOf(maxBody)))
	if wait <= 0 {
		wait = 10 * time.Second
	}
	return &bodyGate{maxBody: maxBody, budget: semaphore.NewWeighted(int64(budget)), wait: wait,
		pools: make([]sync.Pool, classOf(maxBody)+1)}
}

// classOf is the index of the smallest class holding n bytes.
func classOf(n int) int {
	if n <= minClass {
		return 0
	}
	return bits.Len(uint(n-1)) - bits.Len(uint(minClass-1))
}

// classBytes is the size of class c's buffers, and the room a body of that class takes from the budget.
func classBytes(c int) int { return minClass << c }

// bodyRefusal is why the gate answered instead of the handler.
type bodyRefusal struct {
	status int
	msg    string
}

var (
	errBodyTooLarge = &bodyRefusal{fasthttp.StatusRequestEntityTooLarge, "request body too large"}
	errBodyBusy     = &bodyRefusal{fasthttp.StatusServiceUnavailable, "too many request bodies in flight; retry"}
	errBodyTimeout  = &bodyRefusal{fasthttp.StatusRequestTimeout, "request timeout"}
	errBodyBroken   = &bodyRefusal{fasthttp.StatusBadRequest, "malformed request body"}
	errBodyFraming  = &bodyRefusal{fasthttp.StatusBadRequest, "both Content-Length and Transfer-Encoding: chunked"}
	errBodyEncoded  = &bodyRefusal{fasthttp.StatusUnsupportedMediaType, "Content-Encoding is not supported: send the body uncompressed"}
)

// admitted is what read hands back: the buffer and budget to return after the handler (zero for a body that took none).
type admitted struct {
	buf   *[]byte
	class int
}

// read makes ctx's whole body available to the handler. On a refusal it has written the answer and marked the connection to close.
func (g *bodyGate) read(ctx *fasthttp.RequestCtx) (admitted, bool) {
	n := ctx.Request.Header.ContentLength() // -1: chunked; -2: none
	switch {
	case n == -1 && hasContentLength(ctx.Request.Header.RawHeaders()):
		// Two framings: fasthttp reads the chunked one, as RFC 9112 (6.3) says, but a proxy in front that read the Content-Length
		// sees another request boundary, which is how requests are smuggled past it. The RFC lets a server refuse such a request
		// and requires it to close the connection; fasthttp would keep it open for the bytes after the chunks.
		return admitted{}, g.refuse(ctx, errBodyFraming)
	case n > g.maxBody:
		return admitted{}, g.refuse(ctx, errBodyTooLarge)
	case n != 0 && n != -2 && encoded(ctx.Request.Header.ContentEncoding()):
		// No handler decodes a content coding: a gzip body reached the JSON decoder as binary and was refused for its first byte
		// ("unexpected character '\x1f'"), which names nothing the client did. RFC 9110 (15.5.16) answers 415 with the codings
		// the server takes.
		return admitted{}, g.refuse(ctx, errBodyEncoded)
	case !ctx.Request.IsBodyStream(), n >= 0 && n <= prefetchBytes:
		return admitted{}, true // no body (no stream either), or whole already (a server without streaming, or fasthttp's prefetch)
	}
	size := n
	if n < 0 { // chunked: the length is unknown until the end, so the room is the limit's
		size = g.maxBody
	}
	c := classOf(size)
	if !g.acquire(c) {
		return admitted{}, g.refuse(ctx, errBodyBusy)
	}
	a := admitted{buf: g.get(c), class: c}
	b, err := readBody(ctx.RequestBodyStream(), (*a.buf)[:0], n, g.maxBody)
	if err != nil {
		g.release(a)
		return admitted{}, g.refuse(ctx, err)
	}
	ctx.Request.SetBodyRaw(b) // b is *a.buf's array: the handler must not keep the body, as fasthttp already requires
	return a, true
}

// readBody reads the rest of a streamed body into dst (with room for it): exactly n bytes, or up to the end of a chunked body (n < 0)
// but not more than limit.
func readBody(r io.Reader, dst []byte, n, limit int) ([]byte, *bodyRefusal) {
	if n >= 0 {
		dst = dst[:n]
		if _, err := io.ReadFull(r, dst); err != nil {
			return nil, readRefusal(err)
		}
		return dst, nil
	}
	for {
		if len(dst) == cap(dst) {
			// Full at limit bytes (the buffer's class is the limit's): the body may end here, or one more byte is over the limit.
			var one [1]byte
			m, err := r.Read(one[:])
			switch {
			case m > 0:
				return nil, errBodyTooLarge
			case errors.Is(err, io.EOF):
				return dst, nil
			case err != nil:
				return nil, readRefusal(err)
			}
			continue
		}
		m, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+m]
		switch {
		case len(dst) > limit:
			return nil, errBodyTooLarge
		case errors.Is(err, io.EOF):
			return dst, nil
		case err != nil:
			return nil, readRefusal(err)
		}
	}
}

// hasContentLength reports whether raw (the request's header lines as received, fasthttp's RawHeaders) has a Content-Length line.
// fasthttp drops the value once Transfer-Encoding: chunked is seen, so the raw lines are the only record of it.
func hasContentLength(raw []byte) bool {
	const name = "content-length:"
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(line) >= len(name) && bytes.EqualFold(line[:len(name)], []byte(name)) {
			return true
		}
	}
	return false
}

// encoded reports whether a Content-Encoding value names a coding other than identity.
func encoded(ce []byte) bool {
	return len(ce) > 0 && !bytes.EqualFold(bytes.TrimSpace(ce), []byte("identity"))
}

func readRefusal(err error) *bodyRefusal {
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return errBodyTimeout
	}
	return errBodyBroken
}

func (g *bodyGate) acquire(c int) bool {
	w := int64(classBytes(c))
	if !g.budget.TryAcquire(w) {
		g.waits.Add(1)
		wctx, cancel := context.WithTimeout(context.Background(), g.wait)
		err := g.budget.Acquire(wctx, w)
		cancel()
		if err != nil {
			return false
		}
	}
	g.held.Add(w)
	return true
}

func (g *bodyGate) get(c int) *[]byte {
	if b, ok := g.pools[c].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, classBytes(c))
	return &b
}

// release gives back the buffer and the room of a body the handler is done with.
func (g *bodyGate) release(a admitted) {
	if a.buf == nil {
		return
	}
	w := int64(classBytes(a.class))
	g.pools[a.class].Put(a.buf)
	g.held.Add(-w)
	g.budget.Release(w)
}

func (g *bodyGate) refuse(ctx *fasthttp.RequestCtx, r *bodyRefusal) bool {
	if r == errBodyBusy {
		ctx.Response.Header.Set("Retry-After", "1")
	}
	field := ""
	switch r {
	case errBodyTooLarge:
		field = "body"
	case errBodyFraming:
		field = "Content-Length"
	case errBodyEncoded:
		field = "Content-Encoding"
		ctx.Response.Header.Set("Accept-Encoding", "identity")
	}
	httpx.WriteError(ctx, r.status, r.msg, field)
	ctx.SetConnectionClose()
	g.linger.mark(ctx.RemoteAddr()) // the client may still be sending the body: let it read this answer (linger.go)
	return false
}

func (g *bodyGate) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "adtracker_http_body_buffer_bytes",
			Help: "Memory held by request bodies over 8 KiB being read or handled now (bounded by http.body_buffer_bytes).",
		}, func() float64 { return float64(g.held.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "adtracker_http_body_waits_total",
			Help: "Request bodies that waited for room under http.body_buffer_bytes (those still waiting after http.read_timeout got 503).",
		}, func() float64 { return float64(g.waits.Load()) }),
	}
}
