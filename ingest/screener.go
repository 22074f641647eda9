package ingest

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/ingest/event"
)

// Screener judges an event right before it is enqueued (package ingest/screen implements it): it sets the invalid-traffic
// reason (event.IVT) and the enrichment fields (device, OS, browser, country). It sees the filled event — the viewer's address
// and user agent after trusted proxies and SSAI headers — and the request, whose headers say whether it is a prefetch.
type Screener interface {
	Screen(ctx *fasthttp.RequestCtx, e *event.Event)
	// Settle tells the screener whether the queue took e: a click refused with 503 is retried by its client, so the screener
	// must forget it rather than count the retry as a duplicate.
	Settle(e *event.Event, stored bool)
}

// enqueue screens e (when Handlers.Screen is set) and hands it to the queue; held is true inside a HoldingEnqueuer's Hold.
func (h *Handlers) enqueue(ctx *fasthttp.RequestCtx, e *event.Event, held bool) error {
	if h.Screen == nil {
		return h.put(ctx, e, held)
	}
	h.Screen.Screen(ctx, e)
	err := h.put(ctx, e, held)
	h.Screen.Settle(e, err == nil)
	return err
}

// put hands e to the queue. A queue that can wait for room gets the request's deadline: the same for every item of a batch, so a
// request waits EnqueueWait at most in all.
func (h *Handlers) put(ctx *fasthttp.RequestCtx, e *event.Event, held bool) error {
	var deadline time.Time // zero: refused at once when the ring is full
	if h.EnqueueWait > 0 {
		deadline = requestTime(ctx).Add(h.EnqueueWait)
	}
	switch {
	case held:
		return h.holdQ.EnqueueHeld(e, deadline)
	case h.waitQ != nil && !deadline.IsZero():
		return h.waitQ.EnqueueBy(e, deadline)
	}
	return h.Queue.Enqueue(e)
}
