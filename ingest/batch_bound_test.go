package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/httpx"
	"github.com/adtracker/adtracker/internal/testenv"
)

// junkBody is n bytes of "1\n": every line is an item that is valid JSON but not an object, the cheapest item a client can send.
func junkBody(n int) []byte { return bytes.Repeat([]byte("1\n"), n/2) }

func batchCtx(body []byte, contentType string) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/events")
	req.Header.SetContentType(contentType)
	req.SetBody(body)
	ctx := new(fasthttp.RequestCtx)
	ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 5555}, nil)
	return ctx
}

func boundHandlers(maxItems int) *Handlers {
	return &Handlers{Decoder: &decode.Decoder{Now: func() time.Time { return hNow }, Limits: decode.Limits{MaxBatchItems: maxItems}}, Queue: nopQueue{},
		Catalog: fakeCatalog{1: {Accepts: true}}, Proxies: &httpx.Proxies{}, IDs: event.NewIDs()}
}

// Sixteen 1 MiB junk bodies at once, as a hostile client sends them: every answer stays small (it used to list every item, 34 MB
// each), whether the batch is refused whole (more items than ingest.max_batch_items) or decoded item by item.
func TestJunkBatchAnswersAreBounded(t *testing.T) {
	const maxAnswer = 256 << 10
	for _, tc := range []struct {
		name     string
		maxItems int
		status   int
	}{{"over max_batch_items", 0, 413}, {"under a raised max_batch_items", 1 << 20, 400}} {
		t.Run(tc.name, func(t *testing.T) {
			h := boundHandlers(tc.maxItems)
			var wg sync.WaitGroup
			for g := 0; g < 16; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					body, ct := junkBody(1<<20), "application/x-ndjson"
					if g%2 == 1 { // the same junk as a JSON array
						body, ct = append(append([]byte{'['}, bytes.ReplaceAll(body[:len(body)-1], []byte("\n"), []byte(","))...), ']'), "application/json"
					}
					ctx := batchCtx(body, ct)
					h.batch(ctx)
					if n := len(ctx.Response.Body()); n > maxAnswer {
						t.Errorf("%s: answer is %d bytes, want at most %d", ct, n, maxAnswer)
					}
					if ctx.Response.StatusCode() != tc.status {
						t.Errorf("%s: status %d, want %d: %.300s", ct, ctx.Response.StatusCode(), tc.status, ctx.Response.Body())
					}
				}(g)
			}
			wg.Wait()
		})
	}
}

// A batch over the limit is refused whole before anything is enqueued, naming the limit; one at the limit is served.
func TestBatchItemLimit(t *testing.T) {
	q := &fakeQueue{}
	h := boundHandlers(3)
	h.Queue = q
	item := `{"type":"start","ad_id":1}`
	for _, tc := range []struct {
		body, ct string
		status   int
	}{
		{"[" + strings.Repeat(item+",", 3) + item + "]", "application/json", 413},
		{strings.Repeat(item+"\n", 4), "application/x-ndjson", 413},
		{strings.Repeat(item+"\n\n\r\n", 3) + "\n", "application/x-ndjson", 202}, // blank lines are not items
		{"[" + strings.Repeat(item+",", 2) + item + "]", "application/json", 202},
	} {
		before := len(q.events)
		ctx := batchCtx([]byte(tc.body), tc.ct)
		h.batch(ctx)
		if ctx.Response.StatusCode() != tc.status {
			t.Fatalf("%s %q: status %d %s", tc.ct, tc.body, ctx.Response.StatusCode(), ctx.Response.Body())
		}
		if tc.status == 413 {
			var got struct{ Error, Field string }
			if err := json.Unmarshal(ctx.Response.Body(), &got); err != nil || got.Field != "body" ||
				!strings.Contains(got.Error, "ingest.max_batch_items") || !strings.Contains(got.Error, "3") {
				t.Fatalf("413 body %s (%v)", ctx.Response.Body(), err)
			}
			if len(q.events) != before {
				t.Fatalf("%d events enqueued from a refused batch", len(q.events)-before)
			}
		}
	}
}

// Per-item errors are listed for the first MaxItemErrors items; the rest are counted.
func TestBatchErrorsListedForFirstItemsOnly(t *testing.T) {
	q := &fakeQueue{}
	h := boundHandlers(0)
	h.Queue = q
	var b strings.Builder
	for i := 0; i < 250; i++ {
		switch i % 5 {
		case 0:
			b.WriteString(`{"type":"start","ad_id":1}`)
		case 1:
			b.WriteString(`{"type":"start","ad_id":99}`) // unknown ad: refused by the handler, not the decoder
		case 2:
			b.WriteString(`{"type":"start","ad_id":`) // broken line
		default:
			b.WriteString("7")
		}
		b.WriteByte('\n')
	}
	ctx := batchCtx([]byte(b.String()), "application/x-ndjson")
	h.batch(ctx)
	var got struct {
		Accepted, Rejected int
		Omitted            int `json:"errors_omitted"`
		Errors             []struct {
			Index        int
			Error, Field string
		}
	}
	if err := json.Unmarshal(ctx.Response.Body(), &got); err != nil || ctx.Response.StatusCode() != 202 {
		t.Fatalf("%d %s (%v)", ctx.Response.StatusCode(), ctx.Response.Body(), err)
	}
	if got.Accepted != 50 || got.Rejected != 200 || len(got.Errors) != 80 || got.Omitted != 120 || len(q.events) != 50 {
		t.Fatalf("accepted %d rejected %d listed %d omitted %d enqueued %d", got.Accepted, got.Rejected, len(got.Errors), got.Omitted, len(q.events))
	}
	for _, e := range got.Errors {
		if e.Index >= decode.MaxItemErrors || e.Error == "" || e.Field == "" {
			t.Fatalf("listed error %+v", e)
		}
	}
	if got.Errors[0].Index != 1 || got.Errors[0].Error != "unknown ad_id" || !strings.HasPrefix(got.Errors[1].Error, "invalid json") {
		t.Fatalf("first errors %+v", got.Errors[:2])
	}
}

// The handler's allocations for a body of junk do not grow with its item count.
func TestJunkBatchAllocsDoNotGrowWithItems(t *testing.T) {
	h := boundHandlers(1 << 20)
	allocs := func(items int) float64 {
		ctx := batchCtx(junkBody(2*items), "application/x-ndjson")
		h.batch(ctx)
		return testing.AllocsPerRun(5, func() {
			ctx.Response.Reset()
			h.batch(ctx)
		})
	}
	// Per-item allocations would make the large body cost ~200,000 more; a few are allowed for pooled buffers a GC emptied (the
	// race detector's runs collect often).
	small, large := allocs(1000), allocs(200_000)
	if large > small+4 {
		t.Fatalf("%v allocations for 1000 junk items, %v for 200000", small, large)
	}
}

// BenchmarkJunkBatch is the cost of one junk item ("1\n") through the batch handler: the body is 1 MiB, so ns/op ÷ 524288 is the
// time per item, and allocs/op the allocations of the whole request.
func BenchmarkJunkBatch(b *testing.B) {
	for _, ct := range []string{"application/x-ndjson", "application/json"} {
		b.Run(ct[strings.IndexByte(ct, '/')+1:], func(b *testing.B) {
			h := boundHandlers(1 << 20)
			body := junkBody(1 << 20)
			if ct == "application/json" {
				body = append(append([]byte{'['}, bytes.ReplaceAll(body[:len(body)-1], []byte("\n"), []byte(","))...), ']')
			}
			ctx := batchCtx(body, ct)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				ctx.Response.Reset()
				h.batch(ctx)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(body)/2), "ns/item")
		})
	}
}

// fullAfter accepts n events, then refuses every one as a full queue would.
type fullAfter struct{ n int }

func (q *fullAfter) Enqueue(*event.Event) error {
	if q.n == 0 {
		return errors.New("ingest queue full")
	}
	q.n--
	return nil
}

// A batch the queue refuses part-way counts every event it did not take in adtracker_events_rejected_total{reason="overload"} —
// the refused one and all after it, which the 503 asks the client to resend — not one per request.
func TestOverloadCountsRefusedEvents(t *testing.T) {
	h := boundHandlers(1000)
	h.Queue = &fullAfter{n: 3}
	var body []byte
	for range 10 {
		body = append(body, `{"type":"impression","ad_id":1}`+"\n"...)
	}
	before := testenv.CounterValue(t, rejected[reasonOverload])
	ctx := batchCtx(body, "application/x-ndjson")
	h.batch(ctx)
	if ctx.Response.StatusCode() != fasthttp.StatusServiceUnavailable {
		t.Fatalf("status %d, body %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if got := testenv.CounterValue(t, rejected[reasonOverload]) - before; got != 7 {
		t.Fatalf("overload counted %v events, want the 7 the queue did not take", got)
	}
}
