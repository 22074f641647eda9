package loadgen

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The progress lines and the summary use one word for events a server answered 503: "refused", counted in events (never
// "errors", which read as lost data); requests without an answer are "no-answer".
func TestProgressAndSummaryCallRefusalsRefused(t *testing.T) {
	line := progressLine(3*time.Second, 100, 45000, 5000, 2, 1500, 2_500_000)
	for _, want := range []string{"45000 acked ev/s", "5000 refused ev/s", "no-answer 2"} {
		if !strings.Contains(line, want) {
			t.Fatalf("progress line %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "error") {
		t.Fatalf("progress line %q says error", line)
	}

	// A server whose queue is always full: every event is refused, in the result and the summary alike.
	url := startServer(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString(`{"error":"ingest queue full","retry_from_index":0,"accepted":0,"rejected":0,"errors":[]}`)
	})
	res, err := Run(context.Background(), Config{URL: url, Mode: ModeBatch, Batch: 50, NDJSON: true, Conns: 2, Count: 500,
		Backoff: -1, Traffic: TrafficConfig{Ads: []uint64{1}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 500 || res.Refused != 500 || res.Acked != 0 {
		t.Fatalf("--count 500 against a full queue: sent %d, refused %d, acked %d; want 500, 500, 0", res.Events, res.Refused, res.Acked)
	}
	var buf bytes.Buffer
	res.Summary().WriteText(&buf)
	if !strings.Contains(buf.String(), "500 refused") || !strings.Contains(buf.String(), "refused: answered non-2xx, not stored") {
		t.Fatalf("summary:\n%s", buf.String())
	}
}
