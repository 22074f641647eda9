// Package ingest serves the ingest HTTP routes: it decodes requests (ingest/decode) into events (ingest/event) and hands them to the pipeline.
package ingest

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/httpx"
	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
)

// Enqueuer accepts a validated event; nil means it is durable (answer 2xx). Any error means it was not accepted: the client should
// retry after RetryAfter seconds.
type Enqueuer interface {
	Enqueue(e *event.Event) error
}

// Ad is what ingest needs to know about an ad.
type Ad struct {
	Accepts   bool   // false for archived ads: their events are refused with 422
	TargetURL string // for the click redirect
}

// Catalog answers from an in-memory snapshot; it must never reach a database per call.
type Catalog interface {
	Lookup(adID uint64) (Ad, bool)
}

// Handlers serve the ingest routes. HTTP glue only: decoding is in ingest/decode, durability in ingest/pipeline.
type Handlers struct {
	Decoder *decode.Decoder
	Queue   Enqueuer
	Catalog Catalog
	Proxies *httpx.Proxies
	IDs     *event.IDs
	// Screen flags invalid traffic and enriches each event after the catalogue check, right before Enqueue; nil: none.
	Screen Screener
	// RetryAfter is the Retry-After (seconds) sent with 503 when the queue refuses an event.
	RetryAfter int
	// EnqueueWait is how long a request may wait, from when it arrived, for a full queue to take its events, when Queue can wait
	// (WaitingEnqueuer); 0 refuses at once.
	EnqueueWait time.Duration

	waitQ WaitingEnqueuer // Queue, when it can wait; set by Register
	holdQ HoldingEnqueuer // Queue, when a batch can hold it; set by Register
}

// WaitingEnqueuer is an Enqueuer that can hold an event until deadline for room instead of refusing it at once because it is full.
type WaitingEnqueuer interface {
	EnqueueBy(e *event.Event, deadline time.Time) error
}

// HoldingEnqueuer is a queue that a request can hold for all of its events: Hold once, EnqueueHeld per event, Release
// once with the number it took. A batch then announces itself to the queue once instead of once per event (two atomic adds
// per event on lines every core writes; BENCHMARKS.md, "Design measurements"). Hold reports false when the queue is closing.
type HoldingEnqueuer interface {
	Hold() bool
	EnqueueHeld(e *event.Event, deadline time.Time) error
	Release(enqueued int)
}

var eventPool = sync.Pool{New: func() any { return new(event.Event) }}

// Register adds the ingest routes.
func (h *Handlers) Register(r *router.Router) {
	h.waitQ, _ = h.Queue.(WaitingEnqueuer)
	h.holdQ, _ = h.Queue.(HoldingEnqueuer)
	r.POST("/ads/click", h.single(event.TypeClick))
	r.POST("/ads/impression", h.single(event.TypeImpression))
	// Without these, GET /ads/click would match GET /ads/{id} and answer "ad not found" instead of 405.
	r.GET("/ads/click", methodNotAllowed("POST"))
	r.GET("/ads/impression", methodNotAllowed("POST"))
	r.POST("/events", h.batch)
	// One static route per event name, in both spellings: a path parameter costs the router three allocations per request (the
	// value becomes a string, then an interface among the request's user values), and pixels are what players fire most. The
	// parameter route answers the names nothing tracks: every name event.ParseType accepts (the schema's and VAST's spelling) has
	// its static route here. RouteLabel counts them all as PixelRoute.
	for _, t := range event.Types() {
		r.GET("/t/"+t.String(), h.pixelOf(t))
		if v := t.VASTName(); v != t.String() {
			r.GET("/t/"+v, h.pixelOf(t))
		}
	}
	r.GET(PixelRoute, unknownPixel)
	r.GET("/c/{id}", h.clickRedirect)
}

func methodNotAllowed(allow string) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Allow", allow)
		httpx.WriteError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed; use "+allow, "")
	}
}

// complete fills what the client may leave out — id, address, user agent — and checks the ad against the catalogue.
// v keeps what the request's headers say for its next items (batches); nil for one event.
func (h *Handlers) complete(ctx *fasthttp.RequestCtx, e *event.Event, v *requestViewer) (*decode.FieldError, string) {
	if !h.fill(ctx, e, v) {
		return &decode.FieldError{Status: fasthttp.StatusBadRequest, Field: httpx.HeaderDeviceIP,
			Msg: httpx.HeaderDeviceIP + " is not an IP address"}, reasonInvalid
	}
	ad, ok := h.Catalog.Lookup(e.AdID)
	if !ok {
		return &decode.FieldError{Status: fasthttp.StatusUnprocessableEntity, Field: "ad_id", Msg: "unknown ad_id"}, reasonUnknownAd
	}
	if !ad.Accepts {
		return &decode.FieldError{Status: fasthttp.StatusUnprocessableEntity, Field: "ad_id", Msg: "ad is archived"}, reasonArchived
	}
	return nil, ""
}

// stampReceived gives the decoder the request's receive time (see decode.Decoder): the time fasthttp read right before calling
// the handlers, so the decoder need not read the clock again. Outside a served request (a RequestCtx built by hand) it is zero
// and the decoder reads its clock.
func stampReceived(ctx *fasthttp.RequestCtx, e *event.Event) {
	if t := ctx.Time(); !t.IsZero() {
		e.ReceiveTime = t.Unix()
	}
}

// requestTime is when fasthttp started on the request (read right before the handlers), or now outside a served request.
func requestTime(ctx *fasthttp.RequestCtx) time.Time {
	if t := ctx.Time(); !t.IsZero() {
		return t
	}
	return time.Now()
}

// accept is the shared tail of the one-event routes: given the decoder's verdict on e, it checks the catalogue and enqueues. On
// false the error answer (4xx, or 503 + Retry-After) is written and nothing was stored.
func (h *Handlers) accept(ctx *fasthttp.RequestCtx, e *event.Event, ferr *decode.FieldError) bool {
	reason := reasonInvalid
	if ferr == nil {
		ferr, reason = h.complete(ctx, e, nil)
	}
	if ferr != nil {
		rejected[reason].Inc()
		httpx.WriteError(ctx, ferr.Status, ferr.Msg, ferr.Field)
		return false
	}
	if err := h.enqueue(ctx, e, false); err != nil {
		h.unavailable(ctx, err)
		return false
	}
	accepted[e.Type].Inc()
	return true
}

func (h *Handlers) single(typ event.Type) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		e := eventPool.Get().(*event.Event)
		defer eventPool.Put(e)
		e.Reset()
		stampReceived(ctx, e)
		if !h.accept(ctx, e, h.Decoder.DecodeJSON(ctx.PostBody(), typ, e)) {
			return
		}
		ctx.SetStatusCode(fasthttp.StatusAccepted)
		ctx.SetContentType(httpx.ContentJSON)
		var buf [80]byte
		b := append(buf[:0], `{"status":"queued","event_id":"`...)
		b = e.ID.AppendString(b)
		ctx.Response.SetBody(append(b, `"}`...))
	}
}

func (h *Handlers) unavailable(ctx *fasthttp.RequestCtx, err error) {
	rejected[reasonOverload].Inc()
	ra := h.RetryAfter
	if ra <= 0 {
		ra = 1
	}
	ctx.Response.Header.Set("Retry-After", strconv.Itoa(ra))
	httpx.WriteError(ctx, fasthttp.StatusServiceUnavailable, err.Error(), "")
}

// batch answers 202 with per-item results. Items are enqueued in order; if the queue refuses one, the rest are not tried and the answer
// is 503 saying how many went in, so a client that sends event_ids can resend the whole batch without double counting.
//
// The answer is bounded whatever the body holds: errors are listed for items below MaxItemErrors only, the others counted in
// errors_omitted; a batch over ingest.max_batch_items is refused whole (413) before any item is enqueued. The whole batch costs one
// rate-limit token, like any request (README, "Rate limits").
func (h *Handlers) batch(ctx *fasthttp.RequestCtx) {
	e := eventPool.Get().(*event.Event)
	defer eventPool.Put(e)
	e.Reset()
	stampReceived(ctx, e)
	ndjson := batchIsNDJSON(ctx.Request.Header.ContentType(), ctx.PostBody())
	var (
		acc, rej, omitted int
		errs              *[]byte // JSON array items, taken from errsPool when something fails
		qerr              error
		stopAt            = -1
		viewer            requestViewer // the request's address and user agent, read once for all items
		perType           [event.NumTypes]int
		held              = h.holdQ != nil && h.holdQ.Hold() // a closing queue holds nothing: the first item is refused below
	)
	defer func() {
		if held {
			h.holdQ.Release(acc)
		}
		if errs != nil {
			*errs = (*errs)[:0]
			errsPool.Put(errs)
		}
	}()
	// The decoding stops at the first event the queue refuses: the client resends from there (retry_from_index), and the pipeline
	// refuses for a while once it does, so decoding the rest would only burn the CPU the backlog needs.
	items, top := h.Decoder.DecodeBatchWhile(ctx.PostBody(), ndjson, e, func(i int, e *event.Event, ferr *decode.FieldError) bool {
		reason := reasonInvalid
		if ferr == nil {
			ferr, reason = h.complete(ctx, e, &viewer)
		}
		if ferr != nil {
			rej++
			rejected[reason].Inc()
			if i >= decode.MaxItemErrors {
				omitted++
				return true
			}
			if errs == nil {
				errs = errsPool.Get().(*[]byte)
			}
			*errs = appendItemError(*errs, i, ferr)
			return true
		}
		if err := h.enqueue(ctx, e, held); err != nil {
			qerr, stopAt = err, i
			return false
		}
		perType[e.Type]++ // counted once per request below: a counter is an atomic add on a line every core writes
		acc++
		return true
	})
	for t, n := range perType {
		if n > 0 {
			accepted[t].Add(float64(n))
		}
	}
	if top != nil {
		rejected[reasonInvalid].Inc()
		httpx.WriteError(ctx, top.Status, top.Msg, top.Field)
		return
	}
	if items == 0 {
		rejected[reasonInvalid].Inc()
		httpx.WriteError(ctx, fasthttp.StatusBadRequest, "batch has no events", "body")
		return
	}
	var buf [256]byte
	b := buf[:0]
	ctx.SetContentType(httpx.ContentJSON)
	switch {
	case qerr != nil:
		// The metric counts events: the refused one and every item after it, which the client must resend.
		rejected[reasonOverload].Add(float64(items - stopAt))
		ctx.Response.Header.Set("Retry-After", "1")
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		b = append(b, `{"error":`...)
		b = httpx.AppendJSONString(b, qerr.Error())
		b = append(b, `,"retry_from_index":`...)
		b = strconv.AppendInt(b, int64(stopAt), 10)
		b = append(b, ',')
	case acc == 0:
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		b = append(b, `{"error":"no valid event in batch",`...)
	default:
		ctx.SetStatusCode(fasthttp.StatusAccepted)
		b = append(b, '{')
	}
	b = append(b, `"accepted":`...)
	b = strconv.AppendInt(b, int64(acc), 10)
	b = append(b, `,"rejected":`...)
	b = strconv.AppendInt(b, int64(rej), 10)
	b = append(b, `,"errors_omitted":`...)
	b = strconv.AppendInt(b, int64(omitted), 10)
	b = append(b, `,"errors":[`...)
	// Written in pieces straight into the response buffer: the error list is not copied once more.
	ctx.Response.SetBody(b)
	if errs != nil {
		ctx.Response.AppendBody(*errs)
	}
	ctx.Response.AppendBodyString("]}")
}

// batchIsNDJSON says how to read a POST /events body: NDJSON when its Content-Type says so, and also when a text/plain body
// (or one without a type) starts with an object. That is what navigator.sendBeacon sends for a string: a beacon cannot carry
// application/x-ndjson to another origin, because that type needs a preflight a beacon does not make. A text/plain body that
// starts with '[' is a JSON array; an application/json one always is (a lone object there gets "body must be a json array").
func batchIsNDJSON(contentType, body []byte) bool {
	switch {
	case hasPrefixFold(contentType, typeNDJSON):
		return true
	case len(contentType) == 0 || hasPrefixFold(contentType, typeTextPlain):
		return decode.StartsWithObject(body)
	}
	return false
}

var typeNDJSON, typeTextPlain = []byte("application/x-ndjson"), []byte("text/plain")

func hasPrefixFold(b, prefix []byte) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], prefix)
}

func appendItemError(dst []byte, i int, ferr *decode.FieldError) []byte {
	if len(dst) > 0 {
		dst = append(dst, ',')
	}
	dst = append(dst, `{"index":`...)
	dst = strconv.AppendInt(dst, int64(i), 10)
	dst = append(dst, `,"error":`...)
	dst = httpx.AppendJSONString(dst, ferr.Msg)
	if ferr.Field != "" {
		dst = append(dst, `,"field":`...)
		dst = httpx.AppendJSONString(dst, ferr.Field)
	}
	return append(dst, '}')
}

// errsPool holds the buffers of batch error lists (at most MaxItemErrors entries of ~100 bytes each).
var errsPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// gif is the smallest transparent 1×1 GIF.
var gif = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

// The pixel's caching header, in fasthttp's canonical form for SetCanonical: Set would normalise and check the name on every
// pixel.
var (
	hdrCacheControl = []byte("Cache-Control")
	valPixelCache   = []byte("no-store, no-cache, must-revalidate")
)

// unknownPixel answers PixelRoute, which only names without a static route reach: names of no event type.
func unknownPixel(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetCanonical(hdrCacheControl, valPixelCache)
	rejected[reasonInvalid].Inc()
	httpx.WriteError(ctx, fasthttp.StatusBadRequest, "unknown event in path", "event")
}

// pixelOf is the handler of the static route of one event type (Register).
func (h *Handlers) pixelOf(typ event.Type) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) { h.servePixel(ctx, typ) }
}

// PixelRoute is the pixel route's pattern, and the route label its static routes share (RouteLabel).
const PixelRoute = "/t/{event}"

// RouteLabel is server.Options.RouteLabel for the ingest routes: the static pixel routes (/t/impression, /t/firstQuartile, …) are
// counted as PixelRoute, as they were when pixels had only that route; every other route is labelled with its pattern.
func RouteLabel(method, pattern string) string {
	if name, ok := strings.CutPrefix(pattern, "/t/"); ok && method == fasthttp.MethodGet && event.ParseType([]byte(name)).Valid() {
		return PixelRoute
	}
	return pattern
}

func (h *Handlers) servePixel(ctx *fasthttp.RequestCtx, typ event.Type) {
	ctx.Response.Header.SetCanonical(hdrCacheControl, valPixelCache)
	e := eventPool.Get().(*event.Event)
	defer eventPool.Put(e)
	e.Reset()
	stampReceived(ctx, e)
	if !h.accept(ctx, e, h.Decoder.DecodePixel(ctx.URI().QueryString(), typ, e)) {
		return
	}
	ctx.SetContentType("image/gif")
	ctx.SetBody(gif)
}

// clickRedirect records a click and sends the browser to the ad's target. When the pipeline refuses the click (overload) the user is
// still redirected — breaking the advertiser's landing page costs more than one uncounted click — and the miss is counted in
// adtracker_click_redirects_unrecorded_total, never silently.
//
// With sv (the serve id of adtracker's own VAST ClickThrough) the click's event id is derived from (serve, click), so however often
// a viewer clicks one served ad it is one click, like its one impression; every click is still redirected. A trusted stitcher's
// X-Device-IP that is not an address is ignored here (the click is recorded with the request's address) rather than refused: the
// redirect must not break.
func (h *Handlers) clickRedirect(ctx *fasthttp.RequestCtx) {
	s, _ := ctx.UserValue("id").(string)
	id, ok := decode.ParseAdID([]byte(s))
	if !ok {
		httpx.WriteError(ctx, fasthttp.StatusNotFound, "unknown ad", "id")
		return
	}
	ad, found := h.Catalog.Lookup(id)
	if !found || !ad.Accepts || ad.TargetURL == "" {
		httpx.WriteError(ctx, fasthttp.StatusNotFound, "unknown ad", "id")
		return
	}
	e := eventPool.Get().(*event.Event)
	defer eventPool.Put(e)
	e.Reset()
	e.Type = event.TypeClick
	e.AdID = id
	stampReceived(ctx, e)
	now := h.Decoder.Received(e.ReceiveTime) // the request's time, as on the routes that decode
	e.EventTime, e.ReceiveTime = now, now
	if v := ctx.QueryArgs().Peek("vid"); decode.ValidID(v) {
		e.SetViewerID(v)
	}
	if v := ctx.QueryArgs().Peek("sv"); decode.ValidServeID(v) {
		e.ID = decode.ServeEventID(v, event.TypeClick, 0)
		e.Flags |= event.FlagClientID
	}
	if !h.fill(ctx, e, nil) { // the catalogue was checked above
		e.IP = h.Proxies.ClientIP(ctx)
		decode.SetUserAgent(e, ctx.Request.Header.UserAgent())
	}
	if err := h.enqueue(ctx, e, false); err != nil {
		clicksUnrecorded.Inc()
	} else {
		accepted[event.TypeClick].Inc()
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("Location", ad.TargetURL)
	ctx.SetStatusCode(fasthttp.StatusFound)
}
