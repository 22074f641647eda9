package ingest

import (
	"errors"
	"testing"
	"time"

	"github.com/fasthttp/router"
	dto "github.com/prometheus/client_model/go"

	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/httpx"
)

// holdingQueue is a waitingQueue a batch can hold: it records every call, so a test sees which path each event took.
type holdingQueue struct {
	waitingQueue
	closing  bool // Hold refuses, and every event is refused with errClosing
	holds    int
	released []int
	held     []time.Time // EnqueueHeld's deadlines
}

var errClosing = errors.New("closing")

func (q *holdingQueue) Hold() bool {
	if q.closing {
		return false
	}
	q.holds++
	return true
}

func (q *holdingQueue) Release(n int) { q.released = append(q.released, n) }

func (q *holdingQueue) EnqueueHeld(e *event.Event, deadline time.Time) error {
	if len(q.released) == q.holds {
		panic("EnqueueHeld outside Hold")
	}
	q.held = append(q.held, deadline)
	return q.fakeQueue.Enqueue(e)
}

func (q *holdingQueue) Enqueue(e *event.Event) error {
	if q.closing {
		return errClosing
	}
	return q.fakeQueue.Enqueue(e)
}

func acceptedCount(t *testing.T, typ event.Type) float64 {
	t.Helper()
	var m dto.Metric
	if err := accepted[typ].Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// A batch holds a queue that can be held once for all of its items (one announcement per request, not per event) and releases
// it with the number it enqueued; the accepted counters still count every event by type. One event is not held, and a batch the
// queue will not hold (closing) goes the per-event way and is refused as before.
func TestBatchHoldsQueueOnce(t *testing.T) {
	newHandlers := func(q *holdingQueue, wait time.Duration) *router.Router {
		h := &Handlers{Decoder: &decode.Decoder{Now: func() time.Time { return hNow }}, Queue: q,
			Catalog: fakeCatalog{1: {Accepts: true}}, Proxies: &httpx.Proxies{}, IDs: event.NewIDs(), EnqueueWait: wait}
		r := router.New()
		h.Register(r)
		return r
	}
	body := `{"type":"start","ad_id":1}` + "\n" + `{"type":"click","ad_id":1}` + "\n" + `{"type":"start","ad_id":7}` + "\n" +
		`{"type":"start","ad_id":1}` + "\n"

	for _, wait := range []time.Duration{0, time.Second} {
		q := &holdingQueue{}
		r := newHandlers(q, wait)
		starts, clicks := acceptedCount(t, event.TypeStart), acceptedCount(t, event.TypeClick)
		rep := do(r, "POST", "/events", "application/x-ndjson", body)
		if rep.status != 202 || len(q.events) != 3 {
			t.Fatalf("wait %v: %d %s, %d events queued", wait, rep.status, rep.body, len(q.events))
		}
		if q.holds != 1 || len(q.released) != 1 || q.released[0] != 3 || len(q.held) != 3 || len(q.deadlines) != 0 {
			t.Fatalf("wait %v: %d holds, released %v, %d held enqueues, %d per-event waits; want 1 hold released with 3, 3 held"+
				" enqueues, none per event", wait, q.holds, q.released, len(q.held), len(q.deadlines))
		}
		for _, d := range q.held {
			if d.IsZero() != (wait == 0) {
				t.Fatalf("wait %v: deadline %v", wait, d)
			}
		}
		if got := acceptedCount(t, event.TypeStart) - starts; got != 2 {
			t.Fatalf("accepted starts moved by %v, want 2", got)
		}
		if got := acceptedCount(t, event.TypeClick) - clicks; got != 1 {
			t.Fatalf("accepted clicks moved by %v, want 1", got)
		}
		// One event: the per-event way, no hold.
		if rep := do(r, "POST", "/ads/click", "application/json", `{"ad_id":1}`); rep.status != 202 || q.holds != 1 {
			t.Fatalf("one event: %d %s, %d holds", rep.status, rep.body, q.holds)
		}
	}

	q := &holdingQueue{closing: true}
	rep := do(newHandlers(q, 0), "POST", "/events", "application/x-ndjson", body)
	if rep.status != 503 || len(q.events) != 0 || len(q.released) != 0 {
		t.Fatalf("closing queue: %d %s, %d queued, released %v", rep.status, rep.body, len(q.events), q.released)
	}
}
