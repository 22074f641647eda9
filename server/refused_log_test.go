package server

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A refused request (4xx) leaves an info line carrying its request id, route, status and the error answered, so a client can find
// why by its X-Request-ID; answered requests leave none.
func TestRefusedRequestsAreLoggedWithRequestID(t *testing.T) {
	ts := newTestServer(t, Options{PublicReads: true}, sampleRoutes)
	request(ts.h, "192.0.2.1", "GET", "/ads/42")
	request(ts.h, "192.0.2.1", "POST", "/ads/click")
	if n := ts.logs.FilterMessage("request refused").Len(); n != 0 {
		t.Fatalf("answered requests logged %d refused lines", n)
	}
	for _, c := range []struct {
		method, uri, id string
		status          int
		body            string
	}{
		{"GET", "/nope", "req-404", 404, "no such route"},
		{"DELETE", "/ads/click", "req-405", 405, "method not allowed"},
	} {
		request(ts.h, "192.0.2.1", c.method, c.uri, "X-Request-ID", c.id)
		entries := ts.logs.FilterMessage("request refused").Filter(func(e observer.LoggedEntry) bool {
			return fmt.Sprint(e.ContextMap()["request_id"]) == c.id
		}).All()
		if len(entries) != 1 {
			t.Fatalf("%s %s: %d refused lines with request id %s; all logs: %+v", c.method, c.uri, len(entries), c.id, ts.logs.All())
		}
		e := entries[0]
		m := e.ContextMap()
		if e.Level != zapcore.InfoLevel || m["status"] != int64(c.status) || m["path"] != c.uri ||
			!strings.Contains(fmt.Sprint(m["response"]), c.body) {
			t.Fatalf("%s %s logged %v %+v", c.method, c.uri, e.Level, m)
		}
	}
}

// A flood of bad requests must not flood the log: at most RefusedLogPerSecond lines a second.
func TestRefusedRequestsLogIsBounded(t *testing.T) {
	ts := newTestServer(t, Options{PublicReads: true}, sampleRoutes)
	start := time.Now()
	const n = 500
	for i := 0; i < n; i++ {
		request(ts.h, "192.0.2.1", "GET", "/nope")
	}
	// Each second the loop touched may hold its own RefusedLogPerSecond lines.
	seconds := int(time.Since(start)/time.Second) + 2
	got := ts.logs.FilterMessage("request refused").FilterField(zap.Int("status", 404)).Len()
	if got < 1 || got > RefusedLogPerSecond*seconds {
		t.Fatalf("%d refused requests logged %d lines, want 1..%d", n, got, RefusedLogPerSecond*seconds)
	}
}

// BenchmarkRefusedRequest is a flood of 404s with a real JSON logger: past the second's RefusedLogPerSecond lines a refused
// request costs the sampler's check only, no allocation.
func BenchmarkRefusedRequest(b *testing.B) {
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel)
	s := New(Options{PublicReads: true, Log: zap.New(core)})
	sampleRoutes(s)
	h := s.Handler()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI("/nope")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx.Response.Reset()
		h(&ctx)
	}
}
